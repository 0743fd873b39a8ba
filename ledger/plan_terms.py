"""The terms a subscriber accepts: a catalogue plan's, with what the command sets, or custom ones.

A Subscribe asks for terms (`TermsAsked`): a plan, and the terms it sets itself. Against a
catalogue plan, a price or trial it sets is negotiated and wins; a currency or interval
unlike the plan's is refused. Outside the catalogue, the command must give the terms.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from ledger.account_state import CancellationPolicy, Terms
from ledger.calendar import IntervalUnit
from ledger.errors import MissingValue, RuleViolation
from ledger.plans import Plan, PlanRetired, UnknownPlan


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
        return cls(**{f.name: getattr(terms, f.name) for f in fields(cls)})


def terms_for(asked: TermsAsked, plan: Plan | None) -> Terms:
    """The terms a subscriber accepts: the plan's current version, with what `asked` sets.

    Without a catalogue plan (`plan` None), `asked` must set price, currency and interval.
    """
    if plan is None:
        return _custom_terms(asked)
    _check_open(plan)
    for field, wanted, offered in (
        ("currency", asked.currency, plan.currency),
        ("interval_unit", asked.interval_unit, plan.interval_unit),
        ("interval_count", asked.interval_count, plan.interval_count),
    ):
        if wanted is not None and wanted != offered:
            raise TermsDifferFromPlan(
                f"plan {plan.plan_id!r} bills {_billing(plan)}; {field} {wanted!r} would make "
                f"it another plan: leave {field} out, or define a plan with it",
                field=field,
            )
    return _accepted(
        asked,
        price_minor=plan.price_minor if asked.price_minor is None else asked.price_minor,
        currency=plan.currency,
        interval_unit=plan.interval_unit,
        interval_count=plan.interval_count,
        trial_days=plan.trial_days if asked.trial_days is None else asked.trial_days,
        plan_version=plan.version,
    )


def _custom_terms(asked: TermsAsked) -> Terms:
    missing = [
        name
        for name in ("price_minor", "currency", "interval_unit")
        if getattr(asked, name) is None
    ]
    if len(missing) == 3:  # the command takes every term from a plan it expects to exist
        raise UnknownPlan(
            f"plan {asked.plan_id!r} is not in the catalogue: define it with DefinePlan (and "
            "wait for its result) before subscribing to it, or give price_minor, currency "
            "and interval_unit for a custom plan",
            field="plan_id",
        )
    if missing:
        raise MissingValue(
            f"plan {asked.plan_id!r} is not in the catalogue, so the command must give "
            f"{', '.join(missing)}; or define the plan first with DefinePlan",
            field=missing[0],
        )
    assert asked.price_minor is not None and asked.currency is not None
    assert asked.interval_unit is not None
    return _accepted(
        asked,
        price_minor=asked.price_minor,
        currency=asked.currency,
        interval_unit=asked.interval_unit,
        interval_count=1 if asked.interval_count is None else asked.interval_count,
        trial_days=0 if asked.trial_days is None else asked.trial_days,
    )


def _accepted(asked: TermsAsked, **billing: Any) -> Terms:
    """Terms with `billing` (price, currency, interval, trial and plan version) decided, and
    the rest as `asked`: the days until due, the cancellation policy, the incentive."""
    return Terms(
        plan_id=asked.plan_id,
        days_until_due=asked.days_until_due,
        cancellation_policy=asked.cancellation_policy,
        early_payment_discount_bp=asked.early_payment_discount_bp,
        early_payment_days=asked.early_payment_days,
        **billing,
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
            raise UnknownPlan(
                f"plan {plan_id!r} is not in the catalogue: define it with DefinePlan (and "
                "wait for its result) first, or give price_minor for a custom plan",
                field="plan_id",
            )
        return price_minor, None
    _check_open(plan)
    billing = (plan.currency, plan.interval_unit, plan.interval_count)
    if billing != (current.currency, current.interval_unit, current.interval_count):
        raise TermsDifferFromPlan(
            f"plan {plan.plan_id!r} bills {_billing(plan)}, but the subscription bills "
            f"{current.interval_count} {current.interval_unit} in {current.currency}; a plan "
            "change keeps the currency and interval: cancel and subscribe anew instead",
            field="plan_id",
        )
    return (plan.price_minor if price_minor is None else price_minor), plan.version


def _check_open(plan: Plan) -> None:
    """Refuse a retired plan to a new subscriber or a plan change."""
    if plan.retired:
        raise PlanRetired(f"plan {plan.plan_id!r} is retired and takes no new subscribers")


def _billing(plan: Plan) -> str:
    """How the plan bills, for messages: `1 MONTH in EUR`."""
    return f"{plan.interval_count} {plan.interval_unit} in {plan.currency}"


class TermsDifferFromPlan(RuleViolation):
    """The command sets a currency or interval other than its catalogue plan's."""

    code = "terms_differ_from_plan"
