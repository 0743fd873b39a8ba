"""The cash-flow forecast method: collection probabilities, scheduled and expected inflow, band.

Pure functions over the rows of the forecast's read model (docs/read-models.md, "Cash-flow
forecast", states the method). Everything is computed as of a business time from what was
known then; amounts stay integer minor units, probabilities are exact fractions until the
expected amounts are rounded half up to the minor unit, once per day and currency.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from fractions import Fraction
from itertools import accumulate
from operator import sub
from typing import TypeVar

from ledger.calendar import IntervalUnit, period_boundary

BANDS = (("current", 0), ("1-30", 1), ("31-60", 31), ("61-90", 61), ("91+", 91))
ANY = "*"  # the group of every payment-method kind, or of every band
MIN_OBSERVATIONS = 30  # a group with fewer falls back to a broader one
OUTCOME_DAYS = 180  # an item still open this long after entering a band has its outcome
Z_95 = Decimal("1.96")  # the normal quantile of a two-sided 95% band
_LOWERS = [lower for _, lower in BANDS]  # in ascending order

Key = TypeVar("Key")


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
        self._rates: dict[tuple[str, str], Fraction] = {}

    def group_for(self, payment_method_kind: str, band: str) -> Probability:
        """The narrowest group with enough observations: kind and band, band, then all."""
        for key in ((payment_method_kind, band), (ANY, band), (ANY, ANY)):
            group = self.groups.get(key)
            if group is not None and group.observations >= MIN_OBSERVATIONS:
                return group
        return self.groups.get((ANY, ANY)) or Probability(ANY, ANY, 0, 0, 0)

    def rate_for(self, payment_method_kind: str, band: str) -> Fraction:
        """The rate of `group_for`'s group, found once per kind and band."""
        key = (payment_method_kind, band)
        rate = self._rates.get(key)
        if rate is None:
            rate = self._rates[key] = self.group_for(payment_method_kind, band).rate
        return rate


def band_of(days_past_due: int) -> str:
    """The days-past-due band: current (not past due), 1-30, 31-60, 61-90, 91+."""
    return BANDS[max(0, bisect_right(_LOWERS, days_past_due) - 1)][0]


def days_past_due(due_at: datetime, on: date) -> int:
    """Calendar days (UTC) from the due date to `on`; 0 when not past due."""
    return max(0, (on - due_at.astimezone(UTC).date()).days)


def midnight(day: date) -> datetime:
    """The start of a UTC calendar day."""
    return datetime.combine(day, time(), UTC)


class ItemFacts:
    """What of an item and its settlements holds at every as-of time: its open amount as it
    changed, when it was resolved, and for each due date it may have, the bands it enters."""

    def __init__(self, item: Item, own: Sequence[Settlement]) -> None:
        self.item = item
        self.own = list(own)  # compared with the next time's: equal, the facts hold
        ordered = sorted(own, key=lambda s: s.settled_at)
        self.times = [s.settled_at for s in ordered]
        self.owed = list(
            accumulate((s.amount_minor for s in ordered), sub, initial=item.amount_minor)
        )
        self.cash = [(s.settled_at, s.amount_minor) for s in own if s.how == "cash"]
        self.resolved_at = _resolved_at(item, ordered)
        self.due_day = item.due_at.astimezone(UTC).date()
        self.entries = self._entries(self.due_day)
        self.accelerated_day, self.accelerated_entries = self.due_day, self.entries
        if item.accelerated_at is not None and item.accelerated_due_at is not None:
            self.accelerated_day = item.accelerated_due_at.astimezone(UTC).date()
            self.accelerated_entries = self._entries(self.accelerated_day)
        # from `final_from` on, every band was entered and its outcome is known: the item's
        # observations are the same at any later time
        last = self.entries if item.accelerated_at is None else self.accelerated_entries
        self.final_from = max(
            [item.issued_at, *(e.horizon for e in last)]
            + ([] if item.accelerated_at is None else [item.accelerated_at])
        )
        self.final = [
            (
                (item.payment_method_kind, e.band),
                e.open_minor,
                min(e.collected_by_horizon, e.open_minor),
            )
            for e in last
        ]

    def open_at(self, at: datetime) -> int:
        """What the item still owed at `at`."""
        return self.owed[bisect_right(self.times, at)]

    def due_day_as_of(self, as_of: datetime) -> date:
        """Its due day (UTC) as known at `as_of` (`Item.due_as_of`)."""
        accelerated_at = self.item.accelerated_at
        if accelerated_at is not None and accelerated_at <= as_of:
            return self.accelerated_day
        return self.due_day

    def entries_as_of(self, as_of: datetime) -> list[Entry]:
        """The bands it entered open with its due date as known at `as_of`, entered or not."""
        accelerated_at = self.item.accelerated_at
        if accelerated_at is not None and accelerated_at <= as_of:
            return self.accelerated_entries
        return self.entries

    def collected(self, entered: datetime, until: datetime) -> int:
        """The cash collected after `entered`, up to `until`."""
        return sum(amount for at, amount in self.cash if entered < at <= until)

    def _entries(self, due_day: date) -> list[Entry]:
        entries = [(BANDS[0][0], self.item.issued_at)]
        entries += [(band, midnight(due_day + timedelta(days=lower))) for band, lower in BANDS[1:]]
        found = []
        for band, entered in entries:
            open_then = self.open_at(entered)
            if open_then > 0:
                horizon = entered + timedelta(days=OUTCOME_DAYS)
                found.append(
                    Entry(band, entered, open_then, horizon, self.collected(entered, horizon))
                )
        return found


@dataclass(frozen=True)
class Entry:
    """An item entering a band open: when, its open amount then, when its outcome is known
    at the latest, and the cash collected by then."""

    band: str
    entered: datetime
    open_minor: int
    horizon: datetime
    collected_by_horizon: int


class Memo:
    """The facts of the items and subscriptions seen, kept for the next as-of times: a run of
    days' forecasts from one history computes each once, not once a day."""

    def __init__(self) -> None:
        self.items: dict[int, ItemFacts] = {}
        self.cycles: dict[int, Cycles] = {}

    def facts(self, item: Item, own: Sequence[Settlement]) -> ItemFacts:
        """The item's facts with its settlements `own` (made again if they are other ones)."""
        facts = self.items.get(id(item))
        if facts is None or facts.item is not item or facts.own != own:
            facts = self.items[id(item)] = ItemFacts(item, own)
        return facts

    def facts_as_of(
        self,
        items: Sequence[Item],
        settled: dict[tuple[str, str], list[Settlement]],
        as_of: datetime,
    ) -> list[ItemFacts]:
        """The facts of the items issued by `as_of`, in their order."""
        return [
            self.facts(item, settled.get((item.account_id, item.item_id), []))
            for item in items
            if item.issued_at <= as_of
        ]

    def cycles_of(self, schedule: Schedule) -> Cycles:
        """The subscription's future cycles by its terms."""
        cycles = self.cycles.get(id(schedule))
        if cycles is None or cycles.schedule is not schedule:
            cycles = self.cycles[id(schedule)] = Cycles(schedule)
        return cycles


def observe(
    items: Sequence[Item],
    settled: dict[tuple[str, str], list[Settlement]],
    as_of: datetime,
    memo: Memo | None = None,
) -> Probabilities:
    """Collection rates by (kind, band), (any kind, band) and (any, any), from outcomes known at
    `as_of`: each item that entered a band open, and whose outcome is known, is one observation
    of its open amount then and the cash collected after it within OUTCOME_DAYS."""
    return observed((memo or Memo()).facts_as_of(items, settled, as_of), as_of)


def observed(facts_issued: Iterable[ItemFacts], as_of: datetime) -> Probabilities:
    """`observe` from the facts of the items issued by `as_of`."""
    # summed by (kind, band) first; added to the broader groups in the order first seen
    by_kind: dict[tuple[str, str], list[int]] = {}
    for facts in facts_issued:
        if facts.final_from <= as_of:
            for key, opened, collected in facts.final:
                _add(by_kind, key, (1, opened, collected))
            continue
        known = facts.resolved_at is not None and facts.resolved_at <= as_of
        for entry in facts.entries_as_of(as_of):
            if entry.entered > as_of or not (known or entry.horizon <= as_of):
                continue  # not entered yet, or the outcome is not known yet
            if entry.horizon <= as_of:
                collected = entry.collected_by_horizon
            else:
                collected = facts.collected(entry.entered, as_of)
            key = (facts.item.payment_method_kind, entry.band)
            _add(by_kind, key, (1, entry.open_minor, min(collected, entry.open_minor)))
    totals: dict[tuple[str, str], list[int]] = {}
    for (kind, band), summed in by_kind.items():
        for key in ((kind, band), (ANY, band), (ANY, ANY)):
            _add(totals, key, summed)
    return Probabilities({key: Probability(*key, *total) for key, total in totals.items()})


def _resolved_at(item: Item, ordered: Sequence[Settlement]) -> datetime | None:
    """When the item's open balance reached zero, if it did (settlements in time order)."""
    remaining = item.amount_minor
    for settlement in ordered:
        remaining -= settlement.amount_minor
        if remaining <= 0:
            return settlement.settled_at
    return None


def scheduled_amounts(
    items: Sequence[Item],
    settled: dict[tuple[str, str], list[Settlement]],
    schedules: Sequence[Schedule],
    as_of: datetime,
    days: int,
    memo: Memo | None = None,
) -> tuple[list[Scheduled], list[Scheduled]]:
    """(amounts due on each day from the as-of day for `days` days, amounts already past due)."""
    memo = memo or Memo()
    return scheduled(memo.facts_as_of(items, settled, as_of), schedules, as_of, days, memo)


def scheduled(
    facts_issued: Iterable[ItemFacts],
    schedules: Sequence[Schedule],
    as_of: datetime,
    days: int,
    memo: Memo,
) -> tuple[list[Scheduled], list[Scheduled]]:
    """`scheduled_amounts` from the facts of the items issued by `as_of`."""
    first = as_of.astimezone(UTC).date()
    end = first + timedelta(days=days)
    upcoming: list[Scheduled] = []
    overdue: list[Scheduled] = []
    for facts in facts_issued:
        owed = facts.open_at(as_of)
        if owed <= 0:
            continue
        kind = facts.item.payment_method_kind
        due_day = facts.due_day_as_of(as_of)
        if due_day >= first:
            if due_day < end:
                upcoming.append(Scheduled(due_day, owed, kind, "current"))
        else:
            overdue.append(Scheduled(first, owed, kind, band_of((first - due_day).days)))
    for schedule in schedules:
        upcoming += memo.cycles_of(schedule).due(first, end)
    return upcoming, overdue


def future_invoices(schedule: Schedule, first: date, end: date) -> list[Scheduled]:
    """The invoices a subscription will issue by its terms, due from `first` to before `end`.

    Cycles not yet invoiced start at its anchor (the trial's end, the start, or the last
    resume), every interval; a cycle starting at or after a scheduled cancellation is not
    invoiced; an announced price applies from the first cycle starting on or after its date.
    A cycle due before `first` (the clock has not invoiced it yet) is left out.
    """
    return Cycles(schedule).due(first, end)


class Cycles:
    """A subscription's cycles not yet invoiced, by its terms: found as far as asked, kept."""

    def __init__(self, schedule: Schedule) -> None:
        self.schedule = schedule
        self.due_days: list[date] = []
        self.invoices: list[Scheduled] = []
        self.cycle = schedule.cycles_invoiced
        self.ended = schedule.status != "ACTIVE"  # no more cycles: not active, or cancelled
        self.anchor = schedule.anchor or schedule.trial_ends_at or schedule.started_at

    def due(self, first: date, end: date) -> list[Scheduled]:
        """The invoices due from `first` to before `end` (`future_invoices`)."""
        schedule = self.schedule
        unit = IntervalUnit(schedule.interval_unit)
        # due days never decrease from one cycle to the next, nor do starts
        while not self.ended and (not self.due_days or self.due_days[-1] < end):
            start = period_boundary(
                self.anchor, unit, schedule.interval_count, self.cycle - schedule.cycle_base
            )
            if schedule.cancel_at is not None and start >= schedule.cancel_at:
                self.ended = True
                break
            due_day = (start + timedelta(days=schedule.days_until_due)).astimezone(UTC).date()
            self.due_days.append(due_day)
            self.invoices.append(
                Scheduled(
                    due_day, _price_at(schedule, start), schedule.payment_method_kind, "current"
                )
            )
            self.cycle += 1
        return self.invoices[bisect_left(self.due_days, first) : bisect_left(self.due_days, end)]


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
    # the amounts and their squares summed as integers per rate, then weighted once per rate:
    # the fractions are exact, so the sums are the same as amount by amount
    by_group: dict[tuple[str, str], list[int]] = {}
    for amount in amounts:
        key = (amount.payment_method_kind, amount.band)
        total = by_group.get(key)
        if total is None:
            total = by_group[key] = [0, 0, 0]
        total[0] += amount.amount_minor
        total[1] += amount.amount_minor * amount.amount_minor
        total[2] += 1
    by_rate: dict[Fraction, list[int]] = {}
    for key, summed in by_group.items():
        _add(by_rate, probabilities.rate_for(*key), summed)
    mean, variance, scheduled, count = Fraction(0), Fraction(0), 0, 0
    for rate, (amounts_minor, squares, n) in by_rate.items():
        mean += amounts_minor * rate
        variance += squares * rate * (1 - rate)
        scheduled += amounts_minor
        count += n
    spread = (Decimal(variance.numerator) / Decimal(variance.denominator)).sqrt() * Z_95
    centre = Decimal(mean.numerator) / Decimal(mean.denominator)
    return Estimate(
        scheduled,
        round_half_up(mean),
        max(0, _round_decimal(centre - spread)),
        min(scheduled, _round_decimal(centre + spread)),
        count,
    )


def _add(totals: dict[Key, list[int]], key: Key, values: Iterable[int]) -> None:
    """Add `values` to the totals of `key` (zeros when first seen)."""
    total = totals.setdefault(key, [0, 0, 0])
    for n, value in enumerate(values):
        total[n] += value


def round_half_up(value: Fraction) -> int:
    """A non-negative exact amount rounded half up to the minor unit."""
    return (2 * value.numerator + value.denominator) // (2 * value.denominator)


def _round_decimal(value: Decimal) -> int:
    return int(value.to_integral_value(rounding="ROUND_HALF_UP"))
