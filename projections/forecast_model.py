"""The cash-flow forecast method: collection probabilities, scheduled and expected inflow, band.

Pure functions over the rows of the forecast's read model (docs/read-models.md, "Cash-flow
forecast", states the method). Everything is computed as of a business time from what was
known then; amounts stay integer minor units, probabilities are exact fractions until the
expected amounts are rounded half up to the minor unit, once per day and currency.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from fractions import Fraction

from ledger.calendar import IntervalUnit, period_boundary

BANDS = (("current", 0), ("1-30", 1), ("31-60", 31), ("61-90", 61), ("91+", 91))
ANY = "*"  # the group of every payment-method kind, or of every band
MIN_OBSERVATIONS = 30  # a group with fewer falls back to a broader one
OUTCOME_DAYS = 180  # an item still open this long after entering a band has its outcome
Z_95 = Decimal("1.96")  # the normal quantile of a two-sided 95% band


@dataclass(frozen=True)
class Item:
    """A receivable item: an invoice or installment, as forecast_items holds it."""

    account_id: str
    item_id: str
    issued_at: datetime
    amount_minor: int
    due_at: datetime
    accelerated_at: datetime | None
    accelerated_due_at: datetime | None
    payment_method_kind: str

    def due_as_of(self, as_of: datetime) -> datetime:
        """Its due date as known at `as_of` (a renegotiation default brings it forward)."""
        if self.accelerated_at is not None and self.accelerated_at <= as_of:
            return self.accelerated_due_at or self.due_at
        return self.due_at

    @property
    def key(self) -> tuple[str, str]:
        """Its account and item id: item ids are unique within an account only."""
        return self.account_id, self.item_id


@dataclass(frozen=True)
class Settlement:
    """What an item owes less from `settled_at` on; only `cash` is collected."""

    account_id: str
    item_id: str
    how: str
    settled_at: datetime
    amount_minor: int


@dataclass(frozen=True)
class Schedule:
    """A subscription's latest version at the as-of time, as subscription_versions holds it."""

    price_minor: int
    interval_unit: str
    interval_count: int
    days_until_due: int
    started_at: datetime
    trial_ends_at: datetime | None
    anchor: datetime | None
    cycle_base: int
    cycles_invoiced: int
    status: str
    cancel_at: datetime | None
    announced_price_minor: int | None
    announced_from: datetime | None
    payment_method_kind: str


@dataclass(frozen=True)
class Probability:
    """The collection rate observed for one group of payment-method kind and band."""

    payment_method_kind: str
    band: str
    observations: int
    open_minor: int
    collected_minor: int

    @property
    def rate(self) -> Fraction:
        """Collected over open amounts; 1 when nothing was observed."""
        return Fraction(self.collected_minor, self.open_minor) if self.open_minor else Fraction(1)


@dataclass(frozen=True)
class Scheduled:
    """One amount expected on a day: an open item, or an invoice a subscription will issue."""

    day: date
    amount_minor: int
    payment_method_kind: str
    band: str


@dataclass(frozen=True)
class Estimate:
    """Scheduled and expected inflow of a set of amounts, with the band around the expectation."""

    scheduled_minor: int
    expected_minor: int
    low_minor: int
    high_minor: int
    amounts: int

    @property
    def at_risk_minor(self) -> int:
        """Scheduled minus expected."""
        return self.scheduled_minor - self.expected_minor


class Probabilities:
    """The observed collection rates, with the fallback to broader groups."""

    def __init__(self, groups: dict[tuple[str, str], Probability]) -> None:
        self.groups = groups

    def group_for(self, payment_method_kind: str, band: str) -> Probability:
        """The narrowest group with enough observations: kind and band, band, then all."""
        for key in ((payment_method_kind, band), (ANY, band), (ANY, ANY)):
            group = self.groups.get(key)
            if group is not None and group.observations >= MIN_OBSERVATIONS:
                return group
        return self.groups.get((ANY, ANY)) or Probability(ANY, ANY, 0, 0, 0)


def band_of(days_past_due: int) -> str:
    """The days-past-due band: current (not past due), 1-30, 31-60, 61-90, 91+."""
    name = BANDS[0][0]
    for band, lower in BANDS:
        if days_past_due >= lower:
            name = band
    return name


def days_past_due(due_at: datetime, on: date) -> int:
    """Calendar days (UTC) from the due date to `on`; 0 when not past due."""
    return max(0, (on - due_at.astimezone(UTC).date()).days)


def midnight(day: date) -> datetime:
    """The start of a UTC calendar day."""
    return datetime.combine(day, time(), UTC)


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


def round_half_up(value: Fraction) -> int:
    """A non-negative exact amount rounded half up to the minor unit."""
    return (2 * value.numerator + value.denominator) // (2 * value.denominator)


def _round_decimal(value: Decimal) -> int:
    return int(value.to_integral_value(rounding="ROUND_HALF_UP"))
