"""The cash-flow forecast method: rates by group with fallback, the band, future invoices, accuracy
on a synthetic history with known collection probabilities."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from fractions import Fraction

from projections.forecast_model import (
    MIN_OBSERVATIONS,
    Item,
    Probabilities,
    Probability,
    Schedule,
    Scheduled,
    Settlement,
    band_of,
    estimate,
    future_invoices,
    observe,
    scheduled_amounts,
)

AS_OF = datetime(2026, 7, 1, tzinfo=UTC)


def item(
    item_id: str, issued: datetime, amount: int, kind: str = "credit_card", due_days: int = 14
) -> Item:
    """An invoice issued at `issued`, due `due_days` later, on account acc-1."""
    return Item(
        "acc-1", item_id, issued, amount, issued + timedelta(days=due_days), None, None, kind
    )


def schedule(**overrides: object) -> Schedule:
    """A monthly subscription at 15.00 started 2026-06-10, one cycle invoiced, due in 14 days."""
    base: dict[str, object] = {
        "price_minor": 1500,
        "interval_unit": "MONTH",
        "interval_count": 1,
        "days_until_due": 14,
        "started_at": datetime(2026, 6, 10, 9, 0, tzinfo=UTC),
        "trial_ends_at": None,
        "anchor": None,
        "cycle_base": 0,
        "cycles_invoiced": 1,
        "status": "ACTIVE",
        "cancel_at": None,
        "announced_price_minor": None,
        "announced_from": None,
        "payment_method_kind": "credit_card",
    }
    return Schedule(**(base | overrides))  # type: ignore[arg-type]


class TestBands:
    """Days past due fall in the accounts-receivable convention's bands."""

    def test_band_edges(self) -> None:
        """0 is current, 1 and 30 are 1-30, 31 is 31-60, 90 is 61-90, 91 is 91+."""
        assert [band_of(d) for d in (0, 1, 30, 31, 60, 61, 90, 91, 400)] == [
            "current", "1-30", "1-30", "31-60", "31-60", "61-90", "61-90", "91+", "91+",
        ]  # fmt: skip


class TestEstimate:
    """Expected inflow weights each amount by its group's rate; the band is a normal approximation."""

    def test_hand_worked_day(self) -> None:
        """1,000 and 3,000 at p = 3/4: expected 3,000; sd sqrt(10^7 x 3/16) = 1,369.31; band 316-4,000."""
        rates = Probabilities(
            {("credit_card", "current"): Probability("credit_card", "current", 40, 10_000, 7_500)}
        )
        day = date(2026, 7, 2)
        result = estimate(
            [
                Scheduled(day, 1000, "credit_card", "current"),
                Scheduled(day, 3000, "credit_card", "current"),
            ],
            rates,
        )
        # 3000 - 1.96 x 1369.306 = 316.16 -> 316; 3000 + 2683.84 = 5683.84, capped at the 4,000 scheduled.
        assert (result.scheduled_minor, result.expected_minor, result.at_risk_minor) == (
            4000,
            3000,
            1000,
        )
        assert (result.low_minor, result.high_minor) == (316, 4000)

    def test_expected_is_rounded_half_up_once_per_day(self) -> None:
        """Three amounts of 1 at p = 1/2 make 1.5, rounded to 2 (not 0.5 rounded three times)."""
        rates = Probabilities({("*", "*"): Probability("*", "*", 100, 2, 1)})
        day = date(2026, 7, 2)
        assert estimate([Scheduled(day, 1, "sepa", "current")] * 3, rates).expected_minor == 2


class TestFallback:
    """A group with fewer observations than the floor gives way to a broader one."""

    def test_small_group_falls_back_to_its_band_then_to_all(self) -> None:
        """29 observations of a kind are not enough: the band's rate is used; then everything's."""
        small = Probability("paypal", "current", MIN_OBSERVATIONS - 1, 100, 10)
        band = Probability("*", "current", 200, 1000, 900)
        everything = Probability("*", "*", 300, 2000, 1000)
        rates = Probabilities(
            {("paypal", "current"): small, ("*", "current"): band, ("*", "*"): everything}
        )
        assert rates.group_for("paypal", "current") is band
        assert rates.group_for("paypal", "1-30") is everything

    def test_no_history_counts_every_amount_as_collected(self) -> None:
        """Without any observation the rate is 1: expected equals scheduled, nothing at risk."""
        assert Probabilities({}).group_for("card", "current").rate == Fraction(1)


class TestObservations:
    """Only outcomes known at the as-of time are observed; open amounts are those on entering a band."""

    def test_paid_written_off_and_unresolved_items(self) -> None:
        """Paid 1,000 in cash and 1,000 written off are observed (rate 1/2); an open young item is not."""
        issued = datetime(2026, 5, 1, tzinfo=UTC)
        items = [
            item("a", issued, 1000),
            item("b", issued, 1000),
            item("c", datetime(2026, 6, 20, tzinfo=UTC), 500),
        ]
        settled = {
            ("acc-1", "a"): [Settlement("acc-1", "a", "cash", issued + timedelta(days=3), 1000)],
            ("acc-1", "b"): [
                Settlement("acc-1", "b", "write_off", issued + timedelta(days=60), 1000)
            ],
        }
        groups = observe(items, settled, AS_OF).groups
        current = groups[("credit_card", "current")]
        assert (current.observations, current.open_minor, current.collected_minor) == (
            2,
            2000,
            1000,
        )
        # b entered 1-30 (due 15 May, band from 16 May) open and was never collected in cash
        assert groups[("credit_card", "1-30")].collected_minor == 0

    def test_later_settlements_are_unknown_to_an_earlier_forecast(self) -> None:
        """As of the day before the payment the item is open and not yet observed."""
        issued = datetime(2026, 5, 1, tzinfo=UTC)
        settled = {
            ("acc-1", "a"): [Settlement("acc-1", "a", "cash", issued + timedelta(days=3), 1000)]
        }
        assert observe([item("a", issued, 1000)], settled, issued + timedelta(days=2)).groups == {}


class TestFutureInvoices:
    """A subscription's coming invoices follow its terms."""

    def test_monthly_cycles_due_in_the_horizon(self) -> None:
        """Cycles start 10 Jul, 10 Aug, 10 Sep; due 24 Jul, 24 Aug, 24 Sep, inside 90 days from 1 Jul."""
        found = future_invoices(schedule(), date(2026, 7, 1), date(2026, 9, 29))
        assert [(s.day, s.amount_minor) for s in found] == [
            (date(2026, 7, 24), 1500), (date(2026, 8, 24), 1500), (date(2026, 9, 24), 1500)
        ]  # fmt: skip

    def test_announced_price_and_scheduled_cancellation(self) -> None:
        """20.00 from 1 Aug applies from the 10 Aug cycle; a cancellation at 10 Sep ends the cycles."""
        found = future_invoices(
            schedule(
                announced_price_minor=2000,
                announced_from=datetime(2026, 8, 1, tzinfo=UTC),
                cancel_at=datetime(2026, 9, 10, 9, 0, tzinfo=UTC),
            ),
            date(2026, 7, 1),
            date(2026, 9, 29),
        )
        assert [(s.day, s.amount_minor) for s in found] == [
            (date(2026, 7, 24), 1500),
            (date(2026, 8, 24), 2000),
        ]

    def test_trial_end_starts_the_cycles_and_a_pause_stops_them(self) -> None:
        """A 30-day trial ending 10 Jul bills its first cycle then, due 24 Jul; paused: nothing."""
        trial = schedule(cycles_invoiced=0, trial_ends_at=datetime(2026, 7, 10, 9, 0, tzinfo=UTC))
        assert [s.day for s in future_invoices(trial, date(2026, 7, 1), date(2026, 8, 1))] == [
            date(2026, 7, 24)
        ]
        assert future_invoices(schedule(status="PAUSED"), date(2026, 7, 1), date(2026, 9, 29)) == []


def synthetic_history(
    seed: int, true_rates: dict[str, float]
) -> tuple[list[Item], dict[tuple[str, str], list[Settlement]]]:
    """800 invoices per kind issued Jan-Feb 2025, each paid in full in cash with its kind's true
    probability (else left open), and 200 per kind open and due in July-September 2026."""
    rng = random.Random(seed)
    items: list[Item] = []
    settled: dict[tuple[str, str], list[Settlement]] = {}
    for kind, rate in true_rates.items():
        for n in range(800):
            issued = datetime(2025, 1, 1, tzinfo=UTC) + timedelta(hours=rng.randrange(60 * 24))
            history = item(f"{kind}-h{n}", issued, rng.randrange(1000, 5001), kind)
            items.append(history)
            if rng.random() < rate:
                paid_at = issued + timedelta(days=rng.randrange(1, 40))
                settled[history.key] = [
                    Settlement("acc-1", history.item_id, "cash", paid_at, history.amount_minor)
                ]
        for n in range(200):
            issued = AS_OF - timedelta(days=rng.randrange(0, 10))
            items.append(
                item(
                    f"{kind}-f{n}",
                    issued,
                    rng.randrange(1000, 5001),
                    kind,
                    due_days=rng.randrange(14, 90),
                )
            )
    return items, settled


class TestSyntheticHistory:
    """On a history with known collection probabilities the expected inflow lands near the truth."""

    def test_expected_inflow_within_three_percent_of_the_truth(self) -> None:
        """Cards collect 90%, bank transfers 60%: the forecast's expected inflow is within 3% of
        sum(amount x true probability) of the open invoices, and that truth lies within the band."""
        true_rates = {"credit_card": 0.9, "bank_transfer": 0.6}
        items, settled = synthetic_history(7, true_rates)
        upcoming, overdue = scheduled_amounts(items, settled, [], AS_OF, 90)
        rates = observe(items, settled, AS_OF)
        # the unpaid history is still open, 91+ days past due, and was never collected there
        assert {a.band for a in overdue} == {"91+"}
        assert estimate(overdue, rates).expected_minor == 0
        result = estimate(upcoming, rates)
        truth = sum(a.amount_minor * true_rates[a.payment_method_kind] for a in upcoming)
        assert abs(result.expected_minor - truth) / truth < 0.03
        assert result.low_minor <= truth <= result.high_minor
        print(
            f"expected {result.expected_minor}, truth {truth:.0f}, band {result.low_minor}-{result.high_minor}"
        )
        for kind, rate in true_rates.items():
            observed = rates.groups[(kind, "current")]
            assert abs(float(observed.rate) - rate) < 0.05
