"""The metrics' definitions, each against a published worked example or a figure worked by hand."""

from __future__ import annotations

from datetime import UTC, datetime

from projections.subscriptions import monthly_minor
from runtime.metrics_model import (
    Movements,
    Timeline,
    Version,
    churn_rates,
    cohort_rows,
    movements,
    period_row,
)

JAN = datetime(2026, 1, 1, tzinfo=UTC)
FEB = datetime(2026, 2, 1, tzinfo=UTC)
MAR = datetime(2026, 3, 1, tzinfo=UTC)


def version(
    at: datetime,
    number: int,
    account: str,
    mrr: int,
    status: str = "ACTIVE",
    cause: str = "invoiced",
    sub: str = "sub-1",
) -> Version:
    """A subscription version of `account` from `at`."""
    return Version(at, number, account, sub, mrr, status, cause)


class TestMonthlyNormalisation:
    """MRR is the price normalised to a month: yearly / 12, every N days x 30 / N."""

    def test_published_example_100_monthly_and_50_yearly(self) -> None:
        """100 subscriptions at 100.00 a month and 50 at 600.00 a year: MRR 12,500.00."""
        mrr = 100 * monthly_minor(10_000, "MONTH", 1) + 50 * monthly_minor(60_000, "YEAR", 1)
        assert mrr == 1_250_000

    def test_quarterly_every_14_days_and_rounding(self) -> None:
        """90.00 a quarter is 30.00; 14.00 every 14 days is 30.00; 100.01 a year is 8.33 (8.334)."""
        assert monthly_minor(9_000, "MONTH", 3) == 3_000
        assert monthly_minor(1_400, "DAY", 14) == 3_000
        assert monthly_minor(10_001, "YEAR", 1) == 833
        assert monthly_minor(1_001, "MONTH", 2) == 501  # 500.5 rounds half up


class TestChurnRates:
    """Gross MRR churn counts churn and contraction; net takes expansion off."""

    def test_published_example(self) -> None:
        """Start 100, churn 10, contraction 10, expansion 10: gross 20%, net 10%."""
        m = Movements(
            start_minor=100, churn_minor=10, contraction_minor=10, expansion_minor=10, end_minor=90
        )
        assert churn_rates(m) == (20.0, 10.0)

    def test_no_start_mrr_has_no_rate(self) -> None:
        """A period starting without MRR has no churn rate."""
        assert churn_rates(Movements(new_minor=50, end_minor=50)) == (None, None)


class TestMovements:
    """Each customer's MRR at the start and end of a period gives one cause."""

    def test_every_cause(self) -> None:
        """a new, b reactivated, c churned, d expanded by 5, e contracted by 3."""
        start = {"c": 40, "d": 10, "e": 10}
        end = {"a": 20, "b": 30, "d": 15, "e": 7}
        m = movements(start, end, paid_before={"b", "c", "d", "e"})
        assert m == Movements(60, 20, 5, 3, 40, 30, 72)
        assert (
            m.start_minor
            + m.new_minor
            + m.expansion_minor
            + m.reactivation_minor
            - (m.contraction_minor + m.churn_minor)
            == m.end_minor
        )


class TestPeriods:
    """A month's row from the versions: churn dated at the end, contraction for a kept subscription."""

    def test_customer_keeping_another_subscription_contracts(self) -> None:
        """acc-1 cancels one of two 10.00 subscriptions in February: contraction 10.00, no churn,
        no lost logo; acc-2 cancels its only one (15.00) through dunning: churn, involuntary."""
        timeline = Timeline(
            [
                version(JAN, 2, "acc-1", 1000, sub="a"),
                version(JAN, 3, "acc-1", 1000, sub="b"),
                version(JAN, 2, "acc-2", 1500),
                version(
                    datetime(2026, 2, 10, tzinfo=UTC), 9, "acc-1", 0, "CANCELLED", "cancelled", "b"
                ),
                version(
                    datetime(2026, 2, 20, tzinfo=UTC),
                    7,
                    "acc-2",
                    0,
                    "CANCELLED",
                    "cancelled_for_nonpayment",
                ),
            ]
        )
        row = period_row(timeline, "2026-02", FEB, MAR)
        assert (
            row["mrr_start_minor"],
            row["contraction_minor"],
            row["churn_minor"],
            row["mrr_minor"],
        ) == (
            3500,
            1000,
            1500,
            1000,
        )
        assert (row["churned_customers_voluntary"], row["churned_customers_involuntary"]) == (0, 1)
        assert (row["active_subscriptions"], row["active_customers"]) == (1, 1)
        # gross (1500 + 1000) / 3500 = 71.43%; logo churn 1 of 2 customers
        assert (row["gross_mrr_churn_pct"], row["logo_churn_pct"]) == (71.43, 50.0)

    def test_trial_has_no_mrr_until_its_first_invoice(self) -> None:
        """Subscribed in a trial on 5 Jan (no MRR), first invoiced 4 Feb: new MRR in February."""
        timeline = Timeline(
            [
                version(datetime(2026, 1, 5, tzinfo=UTC), 2, "acc-1", 0, cause="subscribed"),
                version(datetime(2026, 2, 4, tzinfo=UTC), 3, "acc-1", 2000),
            ]
        )
        assert period_row(timeline, "2026-01", JAN, FEB)["new_minor"] == 0
        assert period_row(timeline, "2026-02", FEB, MAR)["new_minor"] == 2000

    def test_a_pause_churns_mrr_but_not_the_logo_and_resuming_reactivates(self) -> None:
        """Paused in February: MRR churn, no lost logo; resumed in March: reactivation."""
        timeline = Timeline(
            [
                version(JAN, 2, "acc-1", 1000),
                version(datetime(2026, 2, 3, tzinfo=UTC), 3, "acc-1", 0, "PAUSED", "paused"),
                version(datetime(2026, 3, 3, tzinfo=UTC), 4, "acc-1", 1000, cause="resumed"),
            ]
        )
        february = period_row(timeline, "2026-02", FEB, MAR)
        assert (february["churn_minor"], february["churned_customers_voluntary"]) == (1000, 0)
        march = period_row(timeline, "2026-03", MAR, datetime(2026, 4, 1, tzinfo=UTC))
        assert (march["reactivation_minor"], march["new_minor"]) == (1000, 0)


class TestCohorts:
    """Retention by the month a customer first paid."""

    def test_january_cohort_in_february(self) -> None:
        """Two January customers (10.00, 30.00); the 10.00 one churns in February: 50% of logos,
        75% of MRR retained."""
        timeline = Timeline(
            [
                version(datetime(2026, 1, 3, tzinfo=UTC), 2, "acc-1", 1000),
                version(datetime(2026, 1, 9, tzinfo=UTC), 2, "acc-2", 3000),
                version(datetime(2026, 2, 9, tzinfo=UTC), 5, "acc-1", 0, "CANCELLED", "cancelled"),
            ]
        )
        rows = cohort_rows(timeline, [JAN, FEB], MAR)
        assert [
            (r["month"], r["retained_customers"], r["logo_retention_pct"], r["mrr_retention_pct"])
            for r in rows
        ] == [
            ("2026-01", 2, 100.0, 100.0),
            ("2026-02", 1, 50.0, 75.0),
        ]
