"""A frozen copy of the cash-flow forecast's functions as they were at commit 84f8f61, before
they were made cheaper: the reference the new ones must equal, byte for byte
(tests/unit/test_forecast_sameness.py, bench/forecast_days.py). Do not change it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction

from ledger.calendar import IntervalUnit, period_boundary
from projections.forecast_book import HORIZON_DAYS, Book
from projections.forecast_model import (
    ANY,
    BANDS,
    OUTCOME_DAYS,
    Z_95,
    Estimate,
    Item,
    Probabilities,
    Probability,
    Schedule,
    Scheduled,
    Settlement,
    _round_decimal,
    days_past_due,
    midnight,
    round_half_up,
)


def band_of(days_past_due: int) -> str:
    """The days-past-due band: current (not past due), 1-30, 31-60, 61-90, 91+."""
    name = BANDS[0][0]
    for band, lower in BANDS:
        if days_past_due >= lower:
            name = band
    return name


def open_minor(item: Item, settlements: Iterable[Settlement], at: datetime) -> int:
    """What the item still owed at `at` (settlements at or before `at` deducted)."""
    return item.amount_minor - sum(s.amount_minor for s in settlements if s.settled_at <= at)


def observe(
    items: Sequence[Item], settled: dict[tuple[str, str], list[Settlement]], as_of: datetime
) -> Probabilities:
    """Collection rates by (kind, band), (any kind, band) and (any, any), from outcomes known at
    `as_of`: each item that entered a band open, and whose outcome is known, is one observation
    of its open amount then and the cash collected after it within OUTCOME_DAYS."""
    totals: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0])
    for item in items:
        if item.issued_at > as_of:
            continue
        own = settled.get(item.key, [])
        resolved_at = _resolved_at(item, own)
        for band, entered in _entries(item, as_of):
            observation = _observation(item, own, entered, resolved_at, as_of)
            if observation is None:
                continue
            for key in ((item.payment_method_kind, band), (ANY, band), (ANY, ANY)):
                total = totals[key]
                total[0] += 1
                total[1] += observation[0]
                total[2] += observation[1]
    return Probabilities({key: Probability(*key, *total) for key, total in totals.items()})


def _entries(item: Item, as_of: datetime) -> list[tuple[str, datetime]]:
    due_day = item.due_as_of(as_of).astimezone(UTC).date()
    entries = [(BANDS[0][0], item.issued_at)]
    entries += [(band, midnight(due_day + timedelta(days=lower))) for band, lower in BANDS[1:]]
    return [(band, entered) for band, entered in entries if entered <= as_of]


def _resolved_at(item: Item, own: Sequence[Settlement]) -> datetime | None:
    """When the item's open balance reached zero, if it did."""
    remaining = item.amount_minor
    for settlement in sorted(own, key=lambda s: s.settled_at):
        remaining -= settlement.amount_minor
        if remaining <= 0:
            return settlement.settled_at
    return None


def _observation(
    item: Item,
    own: Sequence[Settlement],
    entered: datetime,
    resolved_at: datetime | None,
    as_of: datetime,
) -> tuple[int, int] | None:
    """(open amount on entering the band, cash collected after), or None when not observed."""
    open_then = open_minor(item, own, entered)
    if open_then <= 0:
        return None
    horizon = entered + timedelta(days=OUTCOME_DAYS)
    if not ((resolved_at is not None and resolved_at <= as_of) or horizon <= as_of):
        return None  # the outcome is not known yet
    until = min(horizon, as_of)
    collected = sum(
        s.amount_minor for s in own if s.how == "cash" and entered < s.settled_at <= until
    )
    return open_then, min(collected, open_then)


def scheduled_amounts(
    items: Sequence[Item],
    settled: dict[tuple[str, str], list[Settlement]],
    schedules: Sequence[Schedule],
    as_of: datetime,
    days: int,
) -> tuple[list[Scheduled], list[Scheduled]]:
    """(amounts due on each day from the as-of day for `days` days, amounts already past due)."""
    first, end = as_of.astimezone(UTC).date(), as_of.astimezone(UTC).date() + timedelta(days=days)
    upcoming: list[Scheduled] = []
    overdue: list[Scheduled] = []
    for item in items:
        if item.issued_at > as_of:
            continue
        owed = open_minor(item, settled.get(item.key, []), as_of)
        if owed <= 0:
            continue
        due_day = item.due_as_of(as_of).astimezone(UTC).date()
        if due_day >= first:
            if due_day < end:
                upcoming.append(Scheduled(due_day, owed, item.payment_method_kind, "current"))
        else:
            band = band_of(days_past_due(item.due_as_of(as_of), first))
            overdue.append(Scheduled(first, owed, item.payment_method_kind, band))
    for schedule in schedules:
        upcoming += future_invoices(schedule, first, end)
    return upcoming, overdue


def future_invoices(schedule: Schedule, first: date, end: date) -> list[Scheduled]:
    """The invoices a subscription will issue by its terms, due from `first` to before `end`.

    Cycles not yet invoiced start at its anchor (the trial's end, the start, or the last
    resume), every interval; a cycle starting at or after a scheduled cancellation is not
    invoiced; an announced price applies from the first cycle starting on or after its date.
    A cycle due before `first` (the clock has not invoiced it yet) is left out.
    """
    if schedule.status != "ACTIVE":
        return []
    anchor = schedule.anchor or schedule.trial_ends_at or schedule.started_at
    unit = IntervalUnit(schedule.interval_unit)
    found: list[Scheduled] = []
    cycle = schedule.cycles_invoiced
    while True:
        start = period_boundary(anchor, unit, schedule.interval_count, cycle - schedule.cycle_base)
        due_day = (start + timedelta(days=schedule.days_until_due)).astimezone(UTC).date()
        if due_day >= end or (schedule.cancel_at is not None and start >= schedule.cancel_at):
            return found
        if due_day >= first:
            found.append(
                Scheduled(
                    due_day, _price_at(schedule, start), schedule.payment_method_kind, "current"
                )
            )
        cycle += 1


def _price_at(schedule: Schedule, start: datetime) -> int:
    announced = schedule.announced_price_minor
    since = schedule.announced_from
    if announced is not None and since is not None and start >= since:
        return announced
    return schedule.price_minor


def estimate(amounts: Iterable[Scheduled], probabilities: Probabilities) -> Estimate:
    """Sum of the amounts, and of each weighted by its group's rate, with a 95% band.

    Each amount is taken as collected whole with its group's probability p, independently of
    the others: the expected sum is sum(a p), its variance sum(a^2 p (1 - p)), and the band
    the expectation -/+ 1.96 standard deviations (normal approximation), kept within
    [0, scheduled]. All three are rounded half up to the minor unit after summing.
    """
    scheduled, mean, variance, count = 0, Fraction(0), Fraction(0), 0
    for amount in amounts:
        rate = probabilities.group_for(amount.payment_method_kind, amount.band).rate
        scheduled += amount.amount_minor
        mean += amount.amount_minor * rate
        variance += amount.amount_minor**2 * rate * (1 - rate)
        count += 1
    spread = (Decimal(variance.numerator) / Decimal(variance.denominator)).sqrt() * Z_95
    centre = Decimal(mean.numerator) / Decimal(mean.denominator)
    return Estimate(
        scheduled,
        round_half_up(mean),
        max(0, _round_decimal(centre - spread)),
        min(scheduled, _round_decimal(centre + spread)),
        count,
    )


def forecast_days(
    book: Book, as_of: datetime, days: int = HORIZON_DAYS
) -> tuple[dict[date, Estimate], Estimate, Probabilities]:
    """The forecast made at `as_of`: an estimate per day, the past-due items', the rates."""
    probabilities = observe(book.items, book.settled, as_of)
    upcoming, overdue = scheduled_amounts(
        book.items, book.settled, book.schedules_as_of(as_of), as_of, days
    )
    by_day: dict[date, list[Scheduled]] = defaultdict(list)
    for amount in upcoming:
        by_day[amount.day].append(amount)
    first = as_of.astimezone(UTC).date()
    nothing = estimate([], probabilities)
    estimates = {}
    for n in range(days):
        day = first + timedelta(days=n)
        estimates[day] = estimate(by_day[day], probabilities) if day in by_day else nothing
    return estimates, estimate(overdue, probabilities), probabilities
