"""Subscription metrics from subscription_versions: MRR, its movements, churn and cohorts.

Pure functions; docs/read-models.md ("Metrics") states each definition. A subscription's MRR
at a time is that of its latest version valid before it; a customer is an account, and a
customer's MRR the sum of its subscriptions'. Movements compare each customer's MRR at the
start and the end of a period (ChartMogul's convention), so a customer who keeps another
subscription contracts instead of churning, and movements always add up to the change of MRR.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

LIVE = ("ACTIVE", "PAUSED")  # a subscription not cancelled: its customer is not a lost logo
INVOLUNTARY = "cancelled_for_nonpayment"


@dataclass(frozen=True)
class Version:
    """One row of subscription_versions, as the metrics read it."""

    valid_from: datetime
    account_version: int
    account_id: str
    subscription_id: str
    mrr_minor: int
    status: str
    cause: str


@dataclass(frozen=True)
class Movements:
    """MRR at a period's start and end, and the change by cause, in minor units."""

    start_minor: int = 0
    new_minor: int = 0
    expansion_minor: int = 0
    contraction_minor: int = 0
    churn_minor: int = 0
    reactivation_minor: int = 0
    end_minor: int = 0


class Timeline:
    """Every subscription's versions in business-time order, read at any instant."""

    def __init__(self, versions: Sequence[Version]) -> None:
        self.versions = sorted(versions, key=lambda v: (v.valid_from, v.account_version))

    def before(self, instant: datetime) -> dict[tuple[str, str], Version]:
        """Each subscription's latest version valid before `instant`."""
        state: dict[tuple[str, str], Version] = {}
        for version in self.versions:
            if version.valid_from >= instant:
                break
            state[(version.account_id, version.subscription_id)] = version
        return state

    def first_paying(self) -> dict[str, datetime]:
        """When each customer first had MRR."""
        first: dict[str, datetime] = {}
        for version in self.versions:
            if version.mrr_minor > 0:
                first.setdefault(version.account_id, version.valid_from)
        return first


def customer_mrr(state: dict[tuple[str, str], Version]) -> dict[str, int]:
    """Each customer's MRR in a state (customers without MRR left out)."""
    mrr: dict[str, int] = defaultdict(int)
    for version in state.values():
        if version.mrr_minor:
            mrr[version.account_id] += version.mrr_minor
    return dict(mrr)


def movements(start: dict[str, int], end: dict[str, int], paid_before: set[str]) -> Movements:
    """The MRR change from `start` to `end` by cause, per customer.

    From none to some: new, or reactivation for a customer who had MRR before the period;
    from some to none: churn; up: expansion; down: contraction.
    """
    totals: dict[str, int] = defaultdict(int)
    for customer in start.keys() | end.keys():
        before, after = start.get(customer, 0), end.get(customer, 0)
        if before == 0:
            totals["reactivation" if customer in paid_before else "new"] += after
        elif after == 0:
            totals["churn"] += before
        elif after > before:
            totals["expansion"] += after - before
        else:
            totals["contraction"] += before - after
    return Movements(
        sum(start.values()),
        totals["new"],
        totals["expansion"],
        totals["contraction"],
        totals["churn"],
        totals["reactivation"],
        sum(end.values()),
    )


def churn_rates(m: Movements) -> tuple[float | None, float | None]:
    """(gross, net) MRR churn in percent of the start MRR: gross = (churn + contraction) /
    start, net = (churn + contraction - expansion) / start; None without start MRR."""
    if m.start_minor == 0:
        return None, None
    lost = m.churn_minor + m.contraction_minor
    return (
        round(100 * lost / m.start_minor, 2),
        round(100 * (lost - m.expansion_minor) / m.start_minor, 2),
    )


def lost_logos(start: dict[str, int], end_state: dict[tuple[str, str], Version]) -> tuple[int, int]:
    """(voluntary, involuntary) churned customers: paying at the start, and at the end with no
    subscription left that is not cancelled; involuntary when the last cancellation was the
    dunning's final action (cancelled for non-payment)."""
    by_customer: dict[str, list[Version]] = defaultdict(list)
    for version in end_state.values():
        by_customer[version.account_id].append(version)
    voluntary = involuntary = 0
    for customer in start:
        own = by_customer.get(customer, [])
        if any(version.status in LIVE for version in own):
            continue
        last = max(own, key=lambda v: (v.valid_from, v.account_version))
        if last.cause == INVOLUNTARY:
            involuntary += 1
        else:
            voluntary += 1
    return voluntary, involuntary


def period_row(timeline: Timeline, label: str, start: datetime, end: datetime) -> dict[str, Any]:
    """The metrics of the period [start, end): MRR movements, actives, churn rates and logos."""
    end_state = timeline.before(end)
    start_mrr, end_mrr = customer_mrr(timeline.before(start)), customer_mrr(end_state)
    paid_before = {c for c, t in timeline.first_paying().items() if t < start}
    m = movements(start_mrr, end_mrr, paid_before)
    gross, net = churn_rates(m)
    voluntary, involuntary = lost_logos(start_mrr, end_state)
    return {
        "period": label,
        "mrr_start_minor": m.start_minor,
        "new_minor": m.new_minor,
        "expansion_minor": m.expansion_minor,
        "contraction_minor": m.contraction_minor,
        "churn_minor": m.churn_minor,
        "reactivation_minor": m.reactivation_minor,
        "mrr_minor": m.end_minor,
        "active_subscriptions": sum(1 for v in end_state.values() if v.mrr_minor > 0),
        "active_customers": len(end_mrr),
        "gross_mrr_churn_pct": gross,
        "net_mrr_churn_pct": net,
        "churned_customers_voluntary": voluntary,
        "churned_customers_involuntary": involuntary,
        "logo_churn_pct": (
            round(100 * (voluntary + involuntary) / len(start_mrr), 2) if start_mrr else None
        ),
    }


def cohort_rows(
    timeline: Timeline, month_starts: Sequence[datetime], as_of: datetime
) -> list[dict[str, Any]]:
    """Retention by monthly cohort: the customers who first had MRR in a month, and how many
    of them, with how much MRR, still pay at the end of each month since (the last month is
    cut at `as_of`). Rates are against the cohort's size and its MRR at its first month's end."""
    first = timeline.first_paying()
    rows: list[dict[str, Any]] = []
    ends = [*month_starts[1:], None]
    for index, cohort_start in enumerate(month_starts):
        cohort_end = ends[index] or as_of
        members = {c for c, t in first.items() if cohort_start <= t < cohort_end}
        if not members:
            continue
        base_mrr = sum(
            v for c, v in customer_mrr(timeline.before(cohort_end)).items() if c in members
        )
        for later_start, later_end in zip(month_starts[index:], ends[index:], strict=True):
            paying = {
                c: v
                for c, v in customer_mrr(timeline.before(later_end or as_of)).items()
                if c in members
            }
            rows.append(
                {
                    "cohort": cohort_start.strftime("%Y-%m"),
                    "month": later_start.strftime("%Y-%m"),
                    "cohort_customers": len(members),
                    "retained_customers": len(paying),
                    "logo_retention_pct": round(100 * len(paying) / len(members), 2),
                    "mrr_minor": sum(paying.values()),
                    "mrr_retention_pct": (
                        round(100 * sum(paying.values()) / base_mrr, 2) if base_mrr else None
                    ),
                }
            )
    return rows
