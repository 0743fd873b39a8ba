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

from dataclasses import dataclass
from datetime import datetime
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate

from ledger.account import MAX_TRIAL_DAYS
from ledger.account_state import CancellationPolicy, Terms
from ledger.calendar import IntervalUnit
from ledger.errors import MissingValue, RuleViolation, check_range, check_text
from ledger.money import check_amount, check_currency

_PLAN_NAMESPACE = uuid5(NAMESPACE_URL, "billing-ledger:plan")
MAX_PLAN_ID_CHARS = 200
MAX_PLAN_NAME_CHARS = 200
MAX_INTERVAL_COUNT = 1000


def plan_uuid(plan_id: str) -> UUID:
    """The event-store id of the catalogue plan named `plan_id` by upstream systems."""
    return uuid5(_PLAN_NAMESPACE, plan_id)


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


@dataclass(frozen=True)
class TermsAsked:
    """The terms a Subscribe asks for: a plan, and terms set beside it (None: the plan's own)."""

    plan_id: str
    price_minor: int | None
    currency: str | None
    interval_unit: IntervalUnit | None
    interval_count: int | None
    trial_days: int | None
    days_until_due: int
    cancellation_policy: CancellationPolicy
    early_payment_discount_bp: int = 0
    early_payment_days: int = 0

    @classmethod
    def custom(cls, terms: Terms) -> TermsAsked:
        """Ask for exactly `terms`, as for a plan outside the catalogue."""
        return cls(
            plan_id=terms.plan_id,
            price_minor=terms.price_minor,
            currency=terms.currency,
            interval_unit=terms.interval_unit,
            interval_count=terms.interval_count,
            trial_days=terms.trial_days,
            days_until_due=terms.days_until_due,
            cancellation_policy=terms.cancellation_policy,
            early_payment_discount_bp=terms.early_payment_discount_bp,
            early_payment_days=terms.early_payment_days,
        )


def terms_for(asked: TermsAsked, plan: Plan | None) -> Terms:
    """The terms a subscriber accepts: the plan's current version, with what `asked` sets.

    Without a catalogue plan (`plan` None), `asked` must set price, currency and interval.
    """
    if plan is None:
        return _custom_terms(asked)
    if plan.retired:
        raise PlanRetired(f"plan {plan.plan_id!r} is retired and takes no new subscribers")
    for field, wanted, offered in (
        ("currency", asked.currency, plan.currency),
        ("interval_unit", asked.interval_unit, plan.interval_unit),
        ("interval_count", asked.interval_count, plan.interval_count),
    ):
        if wanted is not None and wanted != offered:
            raise TermsDifferFromPlan(
                f"plan {plan.plan_id!r} bills {plan.interval_count} {plan.interval_unit} in "
                f"{plan.currency}; {field} {wanted!r} would make it another plan: leave "
                f"{field} out, or define a plan with it",
                field=field,
            )
    return Terms(
        plan_id=plan.plan_id,
        price_minor=plan.price_minor if asked.price_minor is None else asked.price_minor,
        currency=plan.currency,
        interval_unit=plan.interval_unit,
        interval_count=plan.interval_count,
        trial_days=plan.trial_days if asked.trial_days is None else asked.trial_days,
        days_until_due=asked.days_until_due,
        cancellation_policy=asked.cancellation_policy,
        early_payment_discount_bp=asked.early_payment_discount_bp,
        early_payment_days=asked.early_payment_days,
        plan_version=plan.version,
    )


def _custom_terms(asked: TermsAsked) -> Terms:
    missing = [
        name
        for name in ("price_minor", "currency", "interval_unit")
        if getattr(asked, name) is None
    ]
    if missing:
        raise MissingValue(
            f"plan {asked.plan_id!r} is not in the catalogue, so the command must give "
            f"{', '.join(missing)}; or define the plan first with DefinePlan",
            field=missing[0],
        )
    assert asked.price_minor is not None and asked.currency is not None
    assert asked.interval_unit is not None
    return Terms(
        plan_id=asked.plan_id,
        price_minor=asked.price_minor,
        currency=asked.currency,
        interval_unit=asked.interval_unit,
        interval_count=1 if asked.interval_count is None else asked.interval_count,
        trial_days=0 if asked.trial_days is None else asked.trial_days,
        days_until_due=asked.days_until_due,
        cancellation_policy=asked.cancellation_policy,
        early_payment_discount_bp=asked.early_payment_discount_bp,
        early_payment_days=asked.early_payment_days,
    )


def price_for_change(
    plan: Plan | None, plan_id: str, price_minor: int | None, current: Terms
) -> tuple[int, int | None]:
    """The price and plan version a ChangePlan to `plan_id` moves a subscription on `current` to.

    A catalogue plan must bill like the current terms (same currency and interval); its price
    applies unless `price_minor` overrides it. Outside the catalogue, `price_minor` is needed.
    """
    if plan is None:
        if price_minor is None:
            raise MissingValue(
                f"plan {plan_id!r} is not in the catalogue, so ChangePlan must give "
                "price_minor; or define the plan first with DefinePlan",
                field="price_minor",
            )
        return price_minor, None
    if plan.retired:
        raise PlanRetired(f"plan {plan.plan_id!r} is retired and takes no new subscribers")
    billing = (plan.currency, plan.interval_unit, plan.interval_count)
    if billing != (current.currency, current.interval_unit, current.interval_count):
        raise TermsDifferFromPlan(
            f"plan {plan.plan_id!r} bills {plan.interval_count} {plan.interval_unit} in "
            f"{plan.currency}, but the subscription bills {current.interval_count} "
            f"{current.interval_unit} in {current.currency}; a plan change keeps the "
            "currency and interval: cancel and subscribe anew instead",
            field="plan_id",
        )
    return (plan.price_minor if price_minor is None else price_minor), plan.version


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


class TermsDifferFromPlan(RuleViolation):
    """The command sets a currency or interval other than its catalogue plan's."""

    code = "terms_differ_from_plan"
