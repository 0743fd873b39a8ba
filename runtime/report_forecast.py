"""`ledger report forecast`: the cash-flow forecast per day and currency, read from the read models.

`forecast_report` answers the report's sections as rows; `runtime/report_output.py` prints
them. The method is in `projections/forecast_model.py`, the forecast as of a time in
`projections/forecast_book.py`; the accuracy section reads the forecasts stored each day
(`projections/forecast_snapshots.py`). docs/read-models.md states the method.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from projections.forecast_book import HORIZON_DAYS, forecast_days, load_book
from projections.forecast_model import Estimate, Probabilities, midnight
from projections.snapshot_days import SETTLE_DAYS
from runtime.reports import latest_business_time

ACCURACY_DAYS = 30  # past days whose forecast is set against what was collected
LEAD_DAYS = 7  # a past day is judged by the forecast made this many days before it

Row = dict[str, Any]


def accuracy(
    connection: psycopg.Connection[Any],
    currency: str,
    as_of: datetime,
    days: int = ACCURACY_DAYS,
    lead_days: int = LEAD_DAYS,
) -> tuple[list[Row], float | None]:
    """Each of the `days` days before the as-of day: the expected inflow the forecast stored
    `lead_days` before it gave (None without a snapshot, or while it is pending: made again
    once the projector catches up), and the cash collected; with the
    mean absolute percentage error over the days that had both and collected something."""
    today = as_of.astimezone(UTC).date()
    first = today - timedelta(days=days)
    # A day has a forecast if a snapshot was made `lead_days` before it and is not pending
    # (the projector has not made it since events changed it); no row there: 0.
    expected = dict(
        connection.execute(
            "SELECT d::date, COALESCE(s.expected_minor, 0) FROM generate_series(%(first)s::date, "
            "%(today)s::date - 1, '1 day') d JOIN forecast_snapshot_range r "
            "ON r.currency = %(currency)s AND d::date - %(lead)s > r.first_day "
            "AND d::date - %(lead)s <= r.last_day - %(settle)s "
            "LEFT JOIN forecast_snapshot_pending p ON p.currency = r.currency "
            "LEFT JOIN forecast_snapshots s ON s.currency = %(currency)s AND s.day = d::date "
            "AND s.made_on = d::date - %(lead)s "
            "WHERE p.pending_from IS NULL OR d::date - %(lead)s < p.pending_from",
            {
                "first": first,
                "today": today,
                "currency": currency,
                "lead": lead_days,
                "settle": SETTLE_DAYS,
            },
        ).fetchall()
    )
    collected = dict(
        connection.execute(
            "SELECT (s.settled_at AT TIME ZONE 'UTC')::date, sum(s.amount_minor) "
            "FROM forecast_settlements s JOIN forecast_items i USING (account_id, item_id) "
            "WHERE i.currency = %s AND s.how = 'cash' AND s.settled_at >= %s "
            "AND s.settled_at < %s GROUP BY 1",
            (currency, midnight(first), midnight(today)),
        ).fetchall()
    )
    rows: list[Row] = []
    errors: list[float] = []
    for n in range(days):
        day = first + timedelta(days=n)
        forecast, actual = expected.get(day), int(collected.get(day, 0))
        error = abs(forecast - actual) / actual * 100 if actual and forecast is not None else None
        if error is not None:
            errors.append(error)
        rows.append(
            {
                "day": day.isoformat(),
                "forecast_made_at": midnight(day - timedelta(days=lead_days)).isoformat(),
                "expected_minor": forecast,
                "collected_minor": actual,
                "absolute_percentage_error": None if error is None else round(error, 2),
            }
        )
    return rows, (round(sum(errors) / len(errors), 2) if errors else None)


def currencies(connection: psycopg.Connection[Any]) -> list[str]:
    """Every currency the forecast's read model holds, in order."""
    rows = connection.execute(
        "SELECT currency FROM forecast_items UNION SELECT currency FROM subscription_versions "
        "ORDER BY 1"
    )
    return [row[0] for row in rows]


def forecast_report(
    connection: psycopg.Connection[Any],
    as_of: datetime | None = None,
    currency: str | None = None,
    days: int = HORIZON_DAYS,
) -> dict[str, list[Row]]:
    """The report's sections: days, past_due, probabilities, accuracy (rows per currency)."""
    # The latest account event's time, not a subscription version's: a cancellation's
    # version is valid from the end of its period, which may lie ahead.
    as_of = as_of or latest_business_time(connection)
    sections: dict[str, list[Row]] = {
        "days": [],
        "past_due": [],
        "probabilities": [],
        "accuracy": [],
    }
    if as_of is None:
        return sections
    for code in [currency] if currency else currencies(connection):
        book = load_book(connection, code, as_of)
        estimates, overdue, probabilities = forecast_days(book, as_of, days)
        sections["days"] += [
            _estimate_row(code, day.isoformat(), e) for day, e in estimates.items()
        ]
        sections["past_due"].append(_estimate_row(code, as_of.isoformat(), overdue))
        sections["probabilities"] += _probability_rows(code, probabilities)
        rows, mape = accuracy(connection, code, as_of)
        sections["accuracy"] += [{"currency": code} | row for row in rows]
        sections["accuracy"].append(
            {"currency": code, "day": "mean", "absolute_percentage_error": mape}
        )
    return sections


def _estimate_row(currency: str, day: str, e: Estimate) -> Row:
    return {
        "currency": currency,
        "day": day,
        "scheduled_minor": e.scheduled_minor,
        "expected_minor": e.expected_minor,
        "at_risk_minor": e.at_risk_minor,
        "low_minor": e.low_minor,
        "high_minor": e.high_minor,
        "amounts": e.amounts,
    }


def _probability_rows(currency: str, probabilities: Probabilities) -> Sequence[Row]:
    return [
        {
            "currency": currency,
            "payment_method_kind": p.payment_method_kind,
            "band": p.band,
            "observations": p.observations,
            "open_minor": p.open_minor,
            "collected_minor": p.collected_minor,
            "probability": round(float(p.rate), 4),
        }
        for _, p in sorted(probabilities.groups.items())
    ]
