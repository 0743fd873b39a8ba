"""The plan catalogue: plans defined once, revised in versions, retired; and the terms they give.

A plan is its own aggregate, keyed by `plan_id`. Subscribing to a defined plan takes the
price, currency, interval and trial of the plan's current version, unless the Subscribe sets
them: a negotiated price or trial overrides the plan's, while a currency or interval that
differs from the plan's is refused (that would be another plan). A Subscribe naming a plan
that is not in the catalogue is a custom plan and must carry all of its terms. A revision
changes what new subscribers get; existing subscribers keep the terms they accepted, and a
new price reaches them only through an announced price change (see pricing.py).
"""

from __future__ import annotations

from datetime import datetime
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate

from ledger.account import MAX_TRIAL_DAYS
from ledger.calendar import IntervalUnit
from ledger.errors import RuleViolation, check_range, check_text
from ledger.ids import name_uuid
from ledger.money import check_amount, check_currency

_PLAN_NAMESPACE = uuid5(NAMESPACE_URL, "billing-ledger:plan")
MAX_PLAN_ID_CHARS = 200
MAX_PLAN_NAME_CHARS = 200
MAX_INTERVAL_COUNT = 1000


def plan_uuid(plan_id: str) -> UUID:
    """The event-store id of the catalogue plan named `plan_id` by upstream systems."""
    return name_uuid(_PLAN_NAMESPACE, plan_id)


class Plan(Aggregate):
    """A plan in the catalogue: what new subscribers to it pay, and how often."""

    class Defined(Aggregate.Created):
        """The plan was added to the catalogue."""

        command_id: str
        plan_id: str
        name: str
        price_minor: int
        currency: str
        interval_unit: IntervalUnit
        interval_count: int
        trial_days: int

    class Revised(Aggregate.Event):
        """New subscribers get this price, trial and name from now on; others keep theirs."""

        command_id: str
        plan_id: str
        name: str
        price_minor: int
        trial_days: int
        previous_price_minor: int

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, Plan)
            aggregate.name = self.name
            aggregate.price_minor = self.price_minor
            aggregate.trial_days = self.trial_days

    class Retired(Aggregate.Event):
        """The plan takes no new subscribers; existing subscriptions go on."""

        command_id: str
        plan_id: str

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, Plan)
            aggregate.retired = True

    def __init__(
        self,
        command_id: str,
        plan_id: str,
        name: str,
        price_minor: int,
        currency: str,
        interval_unit: IntervalUnit,
        interval_count: int,
        trial_days: int,
    ) -> None:
        del command_id  # recorded on the event only
        self.plan_id = plan_id
        self.name = name
        self.price_minor = price_minor
        self.currency = currency
        self.interval_unit = interval_unit
        self.interval_count = interval_count
        self.trial_days = trial_days
        self.retired = False

    @classmethod
    def define(
        cls,
        *,
        command_id: str,
        issued_at: datetime,
        plan_id: str,
        name: str,
        price_minor: int,
        currency: str,
        interval_unit: IntervalUnit,
        interval_count: int,
        trial_days: int,
    ) -> Plan:
        """A new plan, after checking every term."""
        check_text("plan_id", plan_id, MAX_PLAN_ID_CHARS)
        check_text("name", name, MAX_PLAN_NAME_CHARS, required=False)
        check_amount(price_minor, field="price_minor")
        check_currency(currency)
        check_range("interval_count", interval_count, 1, MAX_INTERVAL_COUNT)
        check_range("trial_days", trial_days, 0, MAX_TRIAL_DAYS)
        return cls._create(
            cls.Defined,
            id=plan_uuid(plan_id),
            timestamp=issued_at,
            command_id=command_id,
            plan_id=plan_id,
            name=name,
            price_minor=price_minor,
            currency=currency,
            interval_unit=interval_unit,
            interval_count=interval_count,
            trial_days=trial_days,
        )

    def revise(
        self,
        *,
        command_id: str,
        issued_at: datetime,
        price_minor: int,
        trial_days: int | None,
        name: str | None,
    ) -> None:
        """Give new subscribers another price (and trial or name); None keeps the current one."""
        self._check_open("RevisePlan")
        check_amount(price_minor, field="price_minor")
        trial_days = self.trial_days if trial_days is None else trial_days
        check_range("trial_days", trial_days, 0, MAX_TRIAL_DAYS)
        name = self.name if name is None else check_text("name", name, MAX_PLAN_NAME_CHARS)
        if (price_minor, trial_days, name) == (self.price_minor, self.trial_days, self.name):
            raise PlanUnchanged(
                f"plan {self.plan_id!r} already has price_minor {price_minor}, trial_days "
                f"{trial_days} and this name; a revision must change something",
                field="price_minor",
            )
        self.trigger_event(
            self.Revised,
            timestamp=issued_at,
            command_id=command_id,
            plan_id=self.plan_id,
            name=name,
            price_minor=price_minor,
            trial_days=trial_days,
            previous_price_minor=self.price_minor,
        )

    def retire(self, *, command_id: str, issued_at: datetime) -> None:
        """Take no new subscribers to this plan."""
        self._check_open("RetirePlan")
        self.trigger_event(
            self.Retired, timestamp=issued_at, command_id=command_id, plan_id=self.plan_id
        )

    def _check_open(self, command_type: str) -> None:
        if self.retired:
            raise PlanRetired(
                f"plan {self.plan_id!r} is retired; {command_type} cannot change it",
                field="plan_id",
            )


class UnknownPlan(RuleViolation):
    """The command names a plan that is not in the catalogue."""

    code = "unknown_plan"


class PlanAlreadyDefined(RuleViolation):
    """DefinePlan names a plan that is in the catalogue already."""

    code = "plan_already_defined"


class PlanRetired(RuleViolation):
    """The plan is retired: no new subscribers, no changes."""

    code = "plan_retired"

    def __init__(self, message: str, *, field: str | None = "plan_id") -> None:
        super().__init__(message, field=field)


class PlanUnchanged(RuleViolation):
    """A revision would leave the plan as it is."""

    code = "plan_unchanged"
