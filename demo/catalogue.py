"""The book's plan catalogue and its year: plans at the start, a revision mid-year, a price rise.

Catalogue commands happen at midnight on the first of a month, before any account command of
that month, so a driver that sends each month's catalogue first (and waits for its results)
keeps the order the book was decided in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from demo.desk import Desk

CURRENCY = "EUR"


@dataclass(frozen=True)
class PlanOffer:
    """A plan of the catalogue and how often new customers choose it."""

    plan_id: str
    name: str
    price_minor: int
    interval_unit: str
    trial_days: int
    weight: int


PLANS = (
    PlanOffer("starter-monthly", "Starter", 900, "MONTH", 0, 34),
    PlanOffer("pro-monthly", "Pro", 2900, "MONTH", 14, 34),
    PlanOffer("business-monthly", "Business", 7900, "MONTH", 0, 12),
    PlanOffer("pro-yearly", "Pro (yearly)", 29000, "YEAR", 0, 14),
    PlanOffer("starter-yearly", "Starter (yearly, legacy)", 9000, "YEAR", 0, 6),
)
# Monthly plans from the smallest up: an upgrade moves one step right, a downgrade one left.
MONTHLY_LADDER = ("starter-monthly", "pro-monthly", "business-monthly")
PRO_REVISED_PRICE_MINOR = 3200
STARTER_NEW_PRICE_MINOR = 1100
PRICE_RISE_NOTICE = timedelta(days=45)


@dataclass(frozen=True)
class CatalogueYear:
    """When the catalogue changes in a book of `months` months (1-based month numbers)."""

    months: int

    @property
    def revision_month(self) -> int:
        """The month Pro gets a new price for new subscribers and the legacy plan retires."""
        return max(2, self.months // 2 + 1)

    @property
    def price_rise_month(self) -> int:
        """The month Starter subscribers are told their price rises, with notice."""
        return max(2, (2 * self.months) // 3 + 1)

    def run(self, desk: Desk, month: int, start: datetime, retired: set[str]) -> None:
        """Send the catalogue commands of `month`, which starts at `start`."""
        if month == 1:
            for plan in PLANS:
                desk.send(
                    "DefinePlan",
                    start,
                    plan_id=plan.plan_id,
                    name=plan.name,
                    price_minor=plan.price_minor,
                    currency=CURRENCY,
                    interval_unit=plan.interval_unit,
                    interval_count=1,
                    trial_days=plan.trial_days,
                )
        if month == self.revision_month:
            _revise(desk, start, "pro-monthly", PRO_REVISED_PRICE_MINOR, trial_days=30)
            desk.send("RetirePlan", start, plan_id="starter-yearly")
            retired.add("starter-yearly")
        if month == self.price_rise_month:
            _revise(desk, start, "starter-monthly", STARTER_NEW_PRICE_MINOR)


def plan_weights(retired: set[str]) -> tuple[tuple[str, int], ...]:
    """The plans a new customer may choose now, with their weights."""
    return tuple((p.plan_id, p.weight) for p in PLANS if p.plan_id not in retired)


def _revise(
    desk: Desk, at: datetime, plan_id: str, price_minor: int, trial_days: int | None = None
) -> None:
    desk.send(
        "RevisePlan", at, plan_id=plan_id, price_minor=price_minor, trial_days=trial_days, name=None
    )
