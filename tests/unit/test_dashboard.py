"""The dashboard page built from hand-made read-model rows, without a browser."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest

from demo.chart_kit import major
from demo.dashboard import CHARTS, amount, charts, page
from demo.dashboard_data import CurrencyBook, Dashboard

AS_OF = datetime(2026, 3, 20, 12, 0, tzinfo=UTC)


def monthly(period: str, start: int, end: int, **movements: int) -> dict[str, Any]:
    """A `monthly` metrics row: MRR from `start` to `end`, with its movements."""
    return {
        "period": period,
        "mrr_start_minor": start,
        "mrr_minor": end,
        "new_minor": 0,
        "expansion_minor": 0,
        "contraction_minor": 0,
        "churn_minor": 0,
        "reactivation_minor": 0,
        "active_subscriptions": 3,
        "active_customers": 2,
    } | movements


def forecast_day(day: str, scheduled: int, expected: int) -> dict[str, Any]:
    """A `days` forecast row."""
    return {
        "day": day,
        "scheduled_minor": scheduled,
        "expected_minor": expected,
        "low_minor": expected // 2,
        "high_minor": scheduled,
        "amounts": 1,
    }


def full_book() -> CurrencyBook:
    """A EUR book with rows for every chart and one delinquent account."""
    return CurrencyBook(
        "EUR",
        metrics={
            "monthly": [
                monthly("2026-02", 0, 123_456, new_minor=123_456),
                monthly("2026-03", 123_456, 120_000, new_minor=1_544, churn_minor=5_000),
            ],
            "charges": [
                {
                    "month": "2026-02",
                    "payment_method_kind": "credit_card",
                    "charged_minor": 1000,
                    "first_attempt_minor": 900,
                    "recovered_after_retries_minor": 50,
                },
            ],
            "dunning": [
                {
                    "month": "2026-03",
                    "overdue_minor": 500,
                    "recovered_minor": 250,
                    "recovery_rate_pct": 50.0,
                    "entered_dunning": 2,
                    "recovered": 1,
                }
            ],
            "renegotiations": [
                {"month": "2026-03", "outcome": "defaulted", "plans": 1, "amount_minor": 900}
            ],
            "feedback": [
                {
                    "month": "2026-02",
                    "responses": 4,
                    "average_score": 6.5,
                    "net_score": -25.0,
                    "churn_pct": 50.0,
                }
            ],
        },
        forecast={
            "days": [forecast_day("2026-03-20", 10_000, 9_000), forecast_day("2026-03-21", 0, 0)],
            "past_due": [{"scheduled_minor": 500, "expected_minor": 100}],
            "accuracy": [
                {"day": "2026-03-19", "expected_minor": 800, "collected_minor": 1000},
                {"day": "mean", "absolute_percentage_error": 20.0},
            ],
            "probabilities": [
                {
                    "payment_method_kind": "credit_card",
                    "band": "current",
                    "observations": 40,
                    "probability": 0.9,
                }
            ],
        },
        aging={
            "current_minor": 1_000,
            "past_due_1_30_minor": 250,
            "past_due_31_60_minor": 0,
            "past_due_61_90_minor": 0,
            "past_due_91_plus_minor": 750,
            "open_minor": 2_000,
        },
        delinquent=[
            {
                "account_id": "acc-<1>",
                "customer_reference": "crm-1",
                "status": "in_dunning",
                "overdue_minor": 1_000,
                "open_minor": 2_000,
                "days_past_due": 95,
                "dunning_stage": 3,
                "failed_attempts": 2,
                "next_action": "final_action",
                "next_action_at": datetime(2026, 3, 25, tzinfo=UTC),
            }
        ],
    )


def figures_of(html: str) -> list[dict[str, Any]]:
    """The figures the page hands to plotly."""
    found = re.search(r'<script type="application/json" id="dashboard-charts">(.*?)</script>', html)
    assert found
    return list(json.loads(found.group(1)))


class TestAmounts:
    """Amounts are shown in major units from the integer, per currency."""

    @pytest.mark.parametrize(
        ("amount_minor", "currency", "shown"),
        [
            (123_456_789, "EUR", "1,234,567.89 EUR"),
            (-5, "EUR", "-0.05 EUR"),
            (1_234_567, "JPY", "1,234,567 JPY"),
            (1_234_567, "BHD", "1,234.567 BHD"),
        ],
    )
    def test_major_units_with_the_currency_digits(
        self, amount_minor: int, currency: str, shown: str
    ) -> None:
        """The minor digits of each currency, thousands separated, the code after."""
        assert amount(amount_minor, currency) == shown

    def test_charts_draw_major_units(self) -> None:
        """A chart's value is the amount in major units (for drawing only)."""
        assert major(12_345, "EUR") == 123.45
        assert major(12_345, "JPY") == 12_345


class TestPage:
    """The page: headline figures, one section per currency, charts or their empty states."""

    def test_headline_figures(self) -> None:
        """MRR and its change this month, actives, receivable, overdue, expected inflow."""
        html = page(Dashboard(AS_OF, (full_book(),)))
        for shown in (
            "1,200.00 EUR",
            "-34.56 EUR this month",
            "20.00 EUR",
            "10.00 EUR",
            "50.0% of receivable",
            "90.00 EUR",
            "of 100.00 EUR scheduled",
        ):
            assert shown in html
        assert "20 Mar 2026, 12:00 UTC" in html

    def test_every_chart_has_a_figure_and_no_empty_state(self) -> None:
        """With rows for each chart, each chart has a figure with traces and a div to draw in."""
        html = page(Dashboard(AS_OF, (full_book(),)))
        figures = figures_of(html)
        assert len(figures) == len(CHARTS)
        assert all(figure["figure"]["data"] for figure in figures)
        assert all(f'id="{figure["id"]}"' in html for figure in figures)
        assert "data-empty" not in html

    def test_charts_without_rows_say_so(self) -> None:
        """A currency with no rows has no figure: each chart shows why instead."""
        empty = CurrencyBook("JPY")
        assert [chart.figure for chart in charts(empty)] == [None] * len(CHARTS)
        html = page(Dashboard(AS_OF, (empty,)))
        assert figures_of(html) == []
        assert html.count('class="empty"') == len(CHARTS) + 1  # and the delinquency table
        assert "No debt has been renegotiated yet." in html

    def test_one_section_per_currency(self) -> None:
        """Two currencies: two labelled sections, amounts never mixed."""
        html = page(Dashboard(AS_OF, (full_book(), CurrencyBook("JPY"))))
        assert '<h2 class="currency">EUR</h2>' in html
        assert '<h2 class="currency">JPY</h2>' in html
        assert "0 JPY" in html

    def test_delinquent_accounts_are_escaped(self) -> None:
        """The table shows the account as text, with its next action and its date."""
        html = page(Dashboard(AS_OF, (full_book(),)))
        assert "acc-&lt;1&gt;" in html and "acc-<1>" not in html
        assert "final action on 25 Mar 2026" in html

    def test_self_contained(self) -> None:
        """No script, style or image is loaded from elsewhere; plotly.js is inline."""
        html = page(Dashboard(AS_OF, (full_book(),)))
        assert re.search(r"<(script|link|img)[^>]+(src|href)=\"(?!data:)", html) is None
        assert "Plotly.newPlot" in html

    def test_before_any_data(self) -> None:
        """Read models without an account: a page that says what to do."""
        html = page(Dashboard(None, ()))
        assert "ledger demo" in html
        assert figures_of(html) == []
