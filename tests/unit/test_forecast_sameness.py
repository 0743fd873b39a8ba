"""The forecast's functions, made cheaper, give what they gave before: the same estimates, rates
and amounts, in the same order, as the frozen copy in tests/unit/forecast_reference.py, over
generated histories (acceleration, cancellations, announced prices, trials, partial and late
settlements, kinds that change, empty days), one time at a time or a run of days sharing a memo."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from projections.forecast_book import Book, forecast_days
from projections.forecast_history import Changes, History
from projections.forecast_model import (
    ANY,
    BANDS,
    Item,
    Memo,
    Probabilities,
    Probability,
    Schedule,
    Scheduled,
    Settlement,
    estimate,
    future_invoices,
    midnight,
    observe,
    scheduled_amounts,
)
from tests.unit import forecast_reference as reference

START = datetime(2026, 1, 1, tzinfo=UTC)
KINDS = ("credit_card", "sepa_debit", "none")
ZONES = (UTC, timezone(timedelta(hours=-5)), timezone(timedelta(hours=9, minutes=30)))


@st.composite
def moments(draw: st.DrawFn, within_days: int = 200) -> datetime:
    """A time within `within_days` of START, in one of a few time zones."""
    hours = draw(st.integers(0, within_days * 24))
    hours -= draw(st.sampled_from((0, hours % 24)))  # often a midnight: bands start at one
    moment = START + timedelta(hours=hours, minutes=draw(st.sampled_from((0, 0, 30))))
    return moment.astimezone(draw(st.sampled_from(ZONES)))


@st.composite
def items(draw: st.DrawFn, n: int) -> list[tuple[Item, list[Settlement]]]:
    """An item, sometimes accelerated, with settlements: partial, whole, over, late or none;
    and copies of it on other accounts, so that a kind's groups may have enough observations."""
    issued = draw(moments(120))
    amount = draw(st.integers(1, 50_000))
    due = issued + timedelta(days=draw(st.integers(-3, 40)))
    accelerated_at = accelerated_due = None
    if draw(st.booleans()):
        accelerated_at = issued + timedelta(days=draw(st.integers(0, 60)), hours=7)
        accelerated_due = draw(st.none() | st.just(accelerated_at + timedelta(days=3)))
    item = Item(
        "acc",
        f"inv-{n}",
        issued,
        amount,
        due,
        accelerated_at,
        accelerated_due,
        draw(st.sampled_from(KINDS)),
    )
    settlements = [
        Settlement(
            "acc",
            item.item_id,
            draw(st.sampled_from(("cash", "cash", "credit", "write_off"))),
            issued + timedelta(days=draw(st.integers(0, 250)), hours=draw(st.integers(0, 23))),
            draw(st.integers(1, amount)),
        )
        for _ in range(draw(st.integers(0, 3)))
    ]
    accounts = [f"acc-{(n + copy) % 16}" for copy in range(draw(st.sampled_from((1, 1, 2, 15))))]
    return [
        (replace(item, account_id=account), [replace(s, account_id=account) for s in settlements])
        for account in accounts
    ]


@st.composite
def schedules(draw: st.DrawFn) -> Schedule:
    """A subscription's version: any unit, trials, anchors on a 31st, cancellations, prices."""
    started = draw(moments(150))
    base = draw(st.integers(0, 2))
    announced_from = draw(st.none() | moments(250))
    return Schedule(
        draw(st.integers(0, 10_000)),
        draw(st.sampled_from(("DAY", "MONTH", "MONTH", "YEAR"))),
        draw(st.integers(1, 3)),
        draw(st.integers(0, 30)),
        started,
        draw(st.none() | st.just(started + timedelta(days=14))),
        draw(st.none() | st.just(datetime(2026, 1, 31, 12, tzinfo=UTC)) | moments(150)),
        base,
        base + draw(st.integers(0, 3)),
        draw(st.sampled_from(("ACTIVE", "ACTIVE", "PAUSED", "CANCELED"))),
        draw(st.none() | moments(250)),
        None if announced_from is None else draw(st.integers(0, 20_000)),
        announced_from,
        draw(st.sampled_from(KINDS)),
    )


def changes(draw: st.DrawFn) -> Changes:
    """A kind as it changed: a few times in order, a kind from each."""
    times = sorted(draw(st.lists(moments(200), max_size=3)))
    return Changes(times, [draw(st.sampled_from(KINDS)) for _ in times])


@st.composite
def histories(draw: st.DrawFn) -> History:
    """A currency's rows: items, their settlements in time order, versions, changing kinds."""
    drawn = [copy for n in range(draw(st.integers(0, 30))) for copy in draw(items(n))]
    settlements = sorted((s for _, own in drawn for s in own), key=lambda s: s.settled_at)
    versions = sorted(
        (
            (draw(moments(200)), version, (f"acc-{n % 3}", f"sub-{n}"), draw(schedules()))
            for n in range(draw(st.integers(0, 8)))
            for version in range(draw(st.integers(1, 3)))
        ),
        key=lambda row: (row[0], row[1]),
    )
    attempts = {item.key: changes(draw) for item, _ in drawn if draw(st.booleans())}
    defaults = {f"acc-{n}": changes(draw) for n in range(16) if draw(st.booleans())}
    return History([item for item, _ in drawn], attempts, settlements, versions, defaults)


def outcome(forecast: tuple[Any, Any, Probabilities]) -> list[Any]:
    """A forecast as plain values in order: the days' estimates, the past-due one, the rates."""
    estimates, overdue, probabilities = forecast
    return [list(estimates.items()), overdue, list(probabilities.groups.items())]


def whole_book(history: History) -> Book:
    """Every row of the history, later settlements and versions included."""
    settled: dict[tuple[str, str], list[Settlement]] = {}
    for settlement in history.settlements:
        settled.setdefault((settlement.account_id, settlement.item_id), []).append(settlement)
    return Book(history.items, settled, history.versions)


class TestSameAsBefore:
    """The cheaper forecast equals the one it replaced, value for value and in the same order."""

    @settings(max_examples=80, deadline=None)
    @given(history=histories(), first=st.integers(0, 200), days=st.integers(1, 25))
    def test_a_run_of_days_sharing_a_memo(self, history: History, first: int, days: int) -> None:
        """Each day's forecast from its book, as make_days makes them, equals the reference's."""
        memo = Memo()
        for n in range(days):
            as_of = midnight(START.date() + timedelta(days=first + n))
            book = history.as_of(as_of)
            assert outcome(forecast_days(book, as_of, 30, memo)) == outcome(
                reference.forecast_days(book, as_of, 30)
            )

    @settings(max_examples=80, deadline=None)
    @given(history=histories(), times=st.lists(moments(260), min_size=1, max_size=6))
    def test_any_times_in_any_order(self, history: History, times: list[datetime]) -> None:
        """Times not at midnight, going back and forth, with one memo or none, equal too."""
        memo = Memo()
        for as_of in times:
            book = history.as_of(as_of)
            expected = outcome(reference.forecast_days(book, as_of, 40))
            assert outcome(forecast_days(book, as_of, 40, memo)) == expected
            assert outcome(forecast_days(book, as_of, 40)) == expected

    @settings(max_examples=80, deadline=None)
    @given(history=histories(), as_of=moments(260))
    def test_rows_known_after_the_time_are_left_out(
        self, history: History, as_of: datetime
    ) -> None:
        """Given settlements and versions later than the time, each function equals its reference."""
        book, memo = whole_book(history), Memo()
        schedules = book.schedules_as_of(as_of)
        rates = observe(book.items, book.settled, as_of, memo)
        assert list(rates.groups.items()) == list(
            reference.observe(book.items, book.settled, as_of).groups.items()
        )
        amounts = scheduled_amounts(book.items, book.settled, schedules, as_of, 60, memo)
        assert amounts == reference.scheduled_amounts(
            book.items, book.settled, schedules, as_of, 60
        )
        for found in amounts:
            assert estimate(found, rates) == reference.estimate(found, rates)
        first = as_of.astimezone(UTC).date()
        for schedule in schedules:
            for end in (first, first + timedelta(days=45), first + timedelta(days=400)):
                assert future_invoices(schedule, first, end) == reference.future_invoices(
                    schedule, first, end
                )

    @settings(max_examples=200, deadline=None)
    @given(
        amounts=st.lists(
            st.builds(
                Scheduled,
                st.just(date(2026, 3, 1)),
                st.integers(0, 10**9),
                st.sampled_from(KINDS),
                st.sampled_from([band for band, _ in BANDS]),
            ),
            max_size=30,
        ),
        groups=st.lists(
            st.tuples(
                st.sampled_from((*KINDS, ANY)),
                st.sampled_from([ANY] + [band for band, _ in BANDS]),
                st.integers(0, 60),
                st.integers(0, 10**7),
                st.integers(0, 10**7),
            ),
            max_size=20,
        ),
    )
    def test_estimates_with_any_rates(
        self, amounts: list[Scheduled], groups: list[tuple[str, str, int, int, int]]
    ) -> None:
        """With groups of any size and rate, narrow ones with enough observations among them."""
        rates = Probabilities(
            {
                (kind, band): Probability(kind, band, n, opened, min(collected, opened))
                for kind, band, n, opened, collected in groups
            }
        )
        assert estimate(amounts, rates) == reference.estimate(amounts, rates)

    def test_an_empty_book(self) -> None:
        """No rows: every day empty, no past-due amounts, no rates."""
        book, as_of = Book([], {}, []), midnight(date(2026, 3, 1))
        assert outcome(forecast_days(book, as_of)) == outcome(reference.forecast_days(book, as_of))
