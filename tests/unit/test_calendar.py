"""Specification of billing periods: boundaries by day, month and year, anchored on the start."""

from __future__ import annotations

import calendar
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.calendar import IntervalUnit, period_boundary

DAY, MONTH, YEAR = IntervalUnit.DAY, IntervalUnit.MONTH, IntervalUnit.YEAR

anchors = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 12, 31), timezones=st.just(UTC)
)
units = st.sampled_from(IntervalUnit)
counts = st.integers(min_value=1, max_value=24)
cycles = st.integers(min_value=0, max_value=60)


def at(year: int, month: int, day: int) -> datetime:
    """Half past nine UTC on the given day."""
    return datetime(year, month, day, 9, 30, tzinfo=UTC)


def boundaries(anchor: datetime, unit: IntervalUnit, count: int, how_many: int) -> list[datetime]:
    """The starts of the first `how_many` cycles."""
    return [period_boundary(anchor, unit, count, cycle) for cycle in range(how_many)]


class TestCycleZero:
    """Cycle 0 starts at the anchor itself."""

    @pytest.mark.parametrize("unit", list(IntervalUnit))
    def test_cycle_zero_is_the_anchor(self, unit: IntervalUnit) -> None:
        """Whatever the unit and count, the first period starts at the anchor."""
        assert period_boundary(at(2024, 1, 31), unit, 3, 0) == at(2024, 1, 31)


class TestDays:
    """Daily intervals add whole days."""

    def test_each_cycle_adds_count_days(self) -> None:
        """A fortnightly plan renews every 14 days."""
        assert boundaries(at(2024, 1, 10), DAY, 14, 3) == [
            at(2024, 1, 10),
            at(2024, 1, 24),
            at(2024, 2, 7),
        ]

    def test_days_run_through_a_leap_day(self) -> None:
        """28 February 2024 plus one day is the 29th, plus two is 1 March."""
        assert boundaries(at(2024, 2, 28), DAY, 1, 3) == [
            at(2024, 2, 28),
            at(2024, 2, 29),
            at(2024, 3, 1),
        ]


class TestMonths:
    """Monthly intervals keep the anchor's day, clamped to the end of shorter months."""

    def test_a_mid_month_anchor_keeps_its_day(self) -> None:
        """Anchored on the 15th, every period starts on the 15th, across the new year."""
        assert boundaries(at(2023, 11, 15), MONTH, 1, 4) == [
            at(2023, 11, 15),
            at(2023, 12, 15),
            at(2024, 1, 15),
            at(2024, 2, 15),
        ]

    def test_the_31st_is_clamped_in_short_months_and_restored_after(self) -> None:
        """31 January renews on 28 February, then on 31 March again, then on 30 April."""
        assert boundaries(at(2023, 1, 31), MONTH, 1, 5) == [
            at(2023, 1, 31),
            at(2023, 2, 28),
            at(2023, 3, 31),
            at(2023, 4, 30),
            at(2023, 5, 31),
        ]

    def test_the_31st_of_january_renews_on_the_29th_of_february_in_a_leap_year(self) -> None:
        """2024 is a leap year, so February's last day is the 29th."""
        assert boundaries(at(2024, 1, 31), MONTH, 1, 3) == [
            at(2024, 1, 31),
            at(2024, 2, 29),
            at(2024, 3, 31),
        ]

    def test_the_30th_returns_to_the_30th_after_february(self) -> None:
        """Clamping never drifts: 30 January, 28 February, 30 March."""
        assert boundaries(at(2023, 1, 30), MONTH, 1, 3) == [
            at(2023, 1, 30),
            at(2023, 2, 28),
            at(2023, 3, 30),
        ]

    def test_a_quarterly_plan_counts_three_months_from_the_anchor(self) -> None:
        """30 November, then 29 February (leap year), then 30 May."""
        assert boundaries(at(2023, 11, 30), MONTH, 3, 3) == [
            at(2023, 11, 30),
            at(2024, 2, 29),
            at(2024, 5, 30),
        ]

    def test_the_time_of_day_and_time_zone_are_kept(self) -> None:
        """Only the date moves: a period starts at the anchor's time, in UTC."""
        anchor = datetime(2024, 1, 31, 23, 59, 59, 123000, tzinfo=UTC)
        assert period_boundary(anchor, MONTH, 1, 1) == datetime(
            2024, 2, 29, 23, 59, 59, 123000, tzinfo=UTC
        )


class TestYears:
    """Yearly intervals keep the anchor's month and day, clamping 29 February."""

    def test_a_leap_day_anchor_renews_on_the_28th_until_the_next_leap_year(self) -> None:
        """29 February 2024 renews on 28 February 2025-2027 and on 29 February 2028."""
        assert boundaries(at(2024, 2, 29), YEAR, 1, 5) == [
            at(2024, 2, 29),
            at(2025, 2, 28),
            at(2026, 2, 28),
            at(2027, 2, 28),
            at(2028, 2, 29),
        ]

    def test_a_biennial_plan_counts_two_years_per_cycle(self) -> None:
        """Every two years from 1 March 2023."""
        assert boundaries(at(2023, 3, 1), YEAR, 2, 3) == [
            at(2023, 3, 1),
            at(2025, 3, 1),
            at(2027, 3, 1),
        ]


class TestInvariants:
    """Properties that hold for every anchor, unit, count and cycle."""

    @given(anchor=anchors, unit=units, count=counts, cycle=cycles)
    def test_each_period_starts_after_the_previous_one(
        self, anchor: datetime, unit: IntervalUnit, count: int, cycle: int
    ) -> None:
        """Periods are never empty and never overlap."""
        assert period_boundary(anchor, unit, count, cycle) < period_boundary(
            anchor, unit, count, cycle + 1
        )

    @given(anchor=anchors, count=counts, cycle=cycles)
    def test_a_monthly_boundary_is_the_anchor_day_or_the_last_of_its_month(
        self, anchor: datetime, count: int, cycle: int
    ) -> None:
        """The day is the anchor's, clamped, and count * cycle months after the anchor's month."""
        boundary = period_boundary(anchor, MONTH, count, cycle)
        months_later = (boundary.year - anchor.year) * 12 + boundary.month - anchor.month
        assert months_later == count * cycle
        last_day = calendar.monthrange(boundary.year, boundary.month)[1]
        assert boundary.day == min(anchor.day, last_day)
        assert boundary.timetz() == anchor.timetz()

    @given(anchor=anchors, count=counts, cycle=cycles)
    def test_a_year_is_twelve_months(self, anchor: datetime, count: int, cycle: int) -> None:
        """YEAR n is MONTH 12n, boundary for boundary."""
        assert period_boundary(anchor, YEAR, count, cycle) == period_boundary(
            anchor, MONTH, 12 * count, cycle
        )

    @given(anchor=anchors, count=counts, cycle=cycles)
    def test_a_day_interval_is_exactly_count_days(
        self, anchor: datetime, count: int, cycle: int
    ) -> None:
        """Days never clamp: cycle k starts k * count * 24 hours after the anchor."""
        assert period_boundary(anchor, DAY, count, cycle) - anchor == timedelta(days=count * cycle)
