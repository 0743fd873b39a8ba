"""`ledger report metrics`: MRR, churn, retention, charges, dunning, renegotiation and feedback.

`metrics_report` answers the report's sections as rows, per currency, as of a business time;
`runtime/report_output.py` prints them. docs/read-models.md ("Metrics") states each definition.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from projections.forecast_model import midnight
from runtime.metrics_model import LIVE, Timeline, Version, cohort_rows, period_row
from runtime.reports import latest_business_time

DAILY_DAYS = 31  # the daily section covers the days up to the as-of day

Row = dict[str, Any]


def load_timeline(connection: psycopg.Connection[Any], currency: str, as_of: datetime) -> Timeline:
    """The subscription versions of `currency` valid from `as_of` or before."""
    rows = connection.execute(
        "SELECT valid_from, account_version, account_id, subscription_id, mrr_minor, status, cause "
        "FROM subscription_versions WHERE currency = %s AND valid_from <= %s",
        (currency, as_of),
    )
    return Timeline([Version(*row) for row in rows])


def month_starts(first: datetime, as_of: datetime) -> list[datetime]:
    """The first instant (UTC) of every month from `first`'s to `as_of`'s."""
    month = first.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    starts = []
    while month <= as_of:
        starts.append(month)
        month = (month + timedelta(days=32)).replace(day=1)
    return starts


def mrr_sections(
    timeline: Timeline, as_of: datetime, days: int = DAILY_DAYS
) -> dict[str, list[Row]]:
    """Monthly and daily MRR rows (the current month and day cut at `as_of`), and cohorts."""
    if not timeline.versions:
        return {"monthly": [], "daily": [], "cohorts": []}
    until = as_of + timedelta(microseconds=1)  # what happened at `as_of` is in
    months = month_starts(timeline.versions[0].valid_from, as_of)
    month_ends = [*months[1:], until]
    monthly = [
        period_row(timeline, start.strftime("%Y-%m"), start, min(end, until))
        for start, end in zip(months, month_ends, strict=True)
    ]
    today = as_of.astimezone(UTC).date()
    daily = []
    for n in range(days - 1, -1, -1):
        start = midnight(today - timedelta(days=n))
        end = min(start + timedelta(days=1), until)
        daily.append(period_row(timeline, start.date().isoformat(), start, end))
    return {"monthly": monthly, "daily": daily, "cohorts": cohort_rows(timeline, months, until)}


def charge_rows(connection: psycopg.Connection[Any], currency: str, as_of: datetime) -> list[Row]:
    """Charge success per month of the first attempt and payment-method kind, by volume."""
    rows = connection.execute(
        "SELECT to_char(first_attempt_at AT TIME ZONE 'UTC', 'YYYY-MM'), payment_method_kind, "
        "count(*), sum(amount_minor)::bigint, "
        "COALESCE(sum(amount_minor) FILTER (WHERE failed_attempts = 0 AND paid_at <= %s), 0)::bigint, "
        "COALESCE(sum(amount_minor) FILTER (WHERE failed_attempts > 0 AND paid_at <= %s), 0)::bigint "
        "FROM metrics_invoices WHERE currency = %s AND first_attempt_at <= %s "
        "GROUP BY 1, 2 ORDER BY 1, 2",
        (as_of, as_of, currency, as_of),
    )
    return [
        {
            "month": month,
            "payment_method_kind": kind,
            "charged_invoices": count,
            "charged_minor": charged,
            "first_attempt_minor": first,
            "recovered_after_retries_minor": recovered,
            "first_attempt_success_pct": _pct(first, charged),
            "recovered_after_retries_pct": _pct(recovered, charged),
        }
        for month, kind, count, charged, first, recovered in rows
    ]


def dunning_rows(connection: psycopg.Connection[Any], currency: str, as_of: datetime) -> list[Row]:
    """Dunning recovery per month an invoice went past due: paid in full since, by amount."""
    rows = connection.execute(
        "SELECT to_char(overdue_at AT TIME ZONE 'UTC', 'YYYY-MM'), count(*), sum(overdue_minor)::bigint, "
        "count(*) FILTER (WHERE paid_at <= %s), "
        "COALESCE(sum(overdue_minor) FILTER (WHERE paid_at <= %s), 0)::bigint "
        "FROM metrics_invoices WHERE currency = %s AND overdue_at <= %s GROUP BY 1 ORDER BY 1",
        (as_of, as_of, currency, as_of),
    )
    return [
        {
            "month": month,
            "entered_dunning": count,
            "overdue_minor": overdue,
            "recovered": recovered,
            "recovered_minor": recovered_minor,
            "recovery_rate_pct": _pct(recovered_minor, overdue),
        }
        for month, count, overdue, recovered, recovered_minor in rows
    ]


def renegotiation_rows(
    connection: psycopg.Connection[Any], currency: str, as_of: datetime
) -> list[Row]:
    """Renegotiation plans per month agreed: defaulted, completed, in progress (at `as_of`)."""
    rows = connection.execute(
        "SELECT to_char(agreed_at AT TIME ZONE 'UTC', 'YYYY-MM'), CASE "
        "WHEN defaulted_at <= %s THEN 'defaulted' WHEN completed_at <= %s THEN 'completed' "
        "ELSE 'in_progress' END, count(*), sum(amount_minor)::bigint FROM metrics_renegotiations "
        "WHERE currency = %s AND agreed_at <= %s GROUP BY 1, 2 ORDER BY 1, 2",
        (as_of, as_of, currency, as_of),
    )
    return [
        {"month": month, "outcome": outcome, "plans": count, "amount_minor": amount}
        for month, outcome, count, amount in rows
    ]


def feedback_rows(
    connection: psycopg.Connection[Any], timeline: Timeline, currency: str, as_of: datetime
) -> list[Row]:
    """Feedback per month: average score, the 0-6 / 7-8 / 9-10 split and its net score, beside
    how many of the customers who answered that month have churned (no live subscription) by
    `as_of`."""
    rows = connection.execute(
        "SELECT to_char(f.recorded_at AT TIME ZONE 'UTC', 'YYYY-MM'), f.account_id, f.score "
        "FROM metrics_feedback f WHERE f.recorded_at <= %s AND f.account_id IN "
        "(SELECT account_id FROM subscription_versions WHERE currency = %s) ORDER BY 1, 2",
        (as_of, currency),
    ).fetchall()
    state = timeline.before(as_of + timedelta(microseconds=1))
    live = {v.account_id for v in state.values() if v.status in LIVE}
    churned = {v.account_id for v in state.values()} - live
    return [_feedback_row(month, rows, churned) for month in sorted({row[0] for row in rows})]


def _feedback_row(month: str, rows: Sequence[tuple[str, str, int]], churned: set[str]) -> Row:
    scores = [score for m, _, score in rows if m == month]
    customers = {account for m, account, _ in rows if m == month}
    detractors = sum(1 for s in scores if s <= 6)
    promoters = sum(1 for s in scores if s >= 9)
    lost = len(customers & churned)
    return {
        "month": month,
        "responses": len(scores),
        "average_score": round(sum(scores) / len(scores), 2),
        "detractors_0_6": detractors,
        "passives_7_8": len(scores) - detractors - promoters,
        "promoters_9_10": promoters,
        "net_score": round(100 * (promoters - detractors) / len(scores), 2),
        "customers": len(customers),
        "churned_customers": lost,
        "churn_pct": round(100 * lost / len(customers), 2),
    }


def _pct(part: int, whole: int | None) -> float | None:
    return round(100 * part / whole, 2) if whole else None


def metrics_report(
    connection: psycopg.Connection[Any],
    as_of: datetime | None = None,
    currency: str | None = None,
    days: int = DAILY_DAYS,
) -> dict[str, list[Row]]:
    """The report's sections, each row with its currency: monthly, daily, cohorts, charges,
    dunning, renegotiations, feedback."""
    # The latest account event's time, not a subscription version's: a cancellation's version
    # is valid from the end of its period, which may lie ahead.
    as_of = as_of or latest_business_time(connection)
    names = ("monthly", "daily", "cohorts", "charges", "dunning", "renegotiations", "feedback")
    sections: dict[str, list[Row]] = {name: [] for name in names}
    if as_of is None:
        return sections
    codes = (
        [currency]
        if currency
        else [
            row[0]
            for row in connection.execute(
                "SELECT DISTINCT currency FROM subscription_versions ORDER BY 1"
            )
        ]
    )
    for code in codes:
        timeline = load_timeline(connection, code, as_of)
        found = mrr_sections(timeline, as_of, days) | {
            "charges": charge_rows(connection, code, as_of),
            "dunning": dunning_rows(connection, code, as_of),
            "renegotiations": renegotiation_rows(connection, code, as_of),
            "feedback": feedback_rows(connection, timeline, code, as_of),
        }
        for name in names:
            sections[name] += [{"currency": code} | row for row in found[name]]
    return sections
