"""`ledger report forecast`: the cash-flow forecast per day and currency, read from the read models.

`forecast_report` answers the report's sections as rows; `runtime/report_format.py` prints
them. The method is in `runtime/forecast_model.py`; docs/read-models.md states it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg

from runtime.forecast_model import (
    Estimate,
    Item,
    Probabilities,
    Schedule,
    Scheduled,
    Settlement,
    estimate,
    midnight,
    observe,
    scheduled_amounts,
)

HORIZON_DAYS = 90
ACCURACY_DAYS = 30  # past days whose forecast is set against what was collected
LEAD_DAYS = 7  # a past day is judged by the forecast made this many days before it

Row = dict[str, Any]


@dataclass(frozen=True)
class Book:
    """What the forecast's read model holds for one currency up to a time."""

    items: list[Item]
    settled: dict[tuple[str, str], list[Settlement]]
    versions: list[tuple[datetime, int, tuple[str, str], Schedule]]

    def schedules_as_of(self, as_of: datetime) -> list[Schedule]:
        """Each subscription's latest version at `as_of`."""
        latest: dict[tuple[str, str], Schedule] = {}
        for valid_from, _, key, schedule in self.versions:  # ordered by (valid_from, version)
            if valid_from <= as_of:
                latest[key] = schedule
        return list(latest.values())


def load_book(connection: psycopg.Connection[Any], currency: str, as_of: datetime) -> Book:
    """The items, settlements and subscription versions of `currency` known at `as_of`."""
    items = [
        Item(*row)
        for row in connection.execute(
            "SELECT account_id, item_id, issued_at, amount_minor, due_at, accelerated_at, "
            "accelerated_due_at, payment_method_kind FROM forecast_items "
            "WHERE currency = %s AND issued_at <= %s ORDER BY account_id, item_id",
            (currency, as_of),
        )
    ]
    settled: dict[tuple[str, str], list[Settlement]] = defaultdict(list)
    for row in connection.execute(
        "SELECT s.account_id, s.item_id, s.how, s.settled_at, s.amount_minor "
        "FROM forecast_settlements s JOIN forecast_items i USING (account_id, item_id) "
        "WHERE i.currency = %s AND s.settled_at <= %s "
        "ORDER BY s.settled_at, s.account_id, s.account_version, s.item_id, s.how",
        (currency, as_of),
    ):
        settlement = Settlement(*row)
        settled[(settlement.account_id, settlement.item_id)].append(settlement)
    versions = [
        (row[0], row[1], (row[2], row[3]), Schedule(*row[4:]))
        for row in connection.execute(
            "SELECT v.valid_from, v.account_version, v.account_id, v.subscription_id, "
            "v.price_minor, v.interval_unit, v.interval_count, v.days_until_due, v.started_at, "
            "v.trial_ends_at, v.anchor, v.cycle_base, v.cycles_invoiced, v.status, v.cancel_at, "
            "v.announced_price_minor, v.announced_from, "
            "COALESCE(a.default_method_kind, 'none') FROM subscription_versions v "
            "LEFT JOIN forecast_accounts a USING (account_id) "
            "WHERE v.currency = %s AND v.valid_from <= %s "
            "ORDER BY v.valid_from, v.account_version, v.account_id, v.subscription_id",
            (currency, as_of),
        )
    ]
    return Book(items, dict(settled), versions)


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
    estimates = {
        first + timedelta(days=n): estimate(
            by_day.get(first + timedelta(days=n), []), probabilities
        )
        for n in range(days)
    }
    return estimates, estimate(overdue, probabilities), probabilities


def collected_by_day(book: Book, first: date, end: date) -> dict[date, int]:
    """Cash collected on each day from `first` to before `end`."""
    collected: dict[date, int] = defaultdict(int)
    for own in book.settled.values():
        for settlement in own:
            day = settlement.settled_at.astimezone(UTC).date()
            if settlement.how == "cash" and first <= day < end:
                collected[day] += settlement.amount_minor
    return collected


def accuracy(
    book: Book, as_of: datetime, days: int = ACCURACY_DAYS, lead_days: int = LEAD_DAYS
) -> tuple[list[Row], float | None]:
    """Each of the `days` days before the as-of day: the expected inflow the forecast made
    `lead_days` before it gave, and the cash collected; with the mean absolute percentage
    error over the days that collected something (None when none did)."""
    today = as_of.astimezone(UTC).date()
    first = today - timedelta(days=days)
    collected = collected_by_day(book, first, today)
    rows: list[Row] = []
    errors: list[float] = []
    for n in range(days):
        day = first + timedelta(days=n)
        made_at = midnight(day - timedelta(days=lead_days))
        expected = forecast_days(book, made_at, lead_days + 1)[0][day].expected_minor
        actual = collected.get(day, 0)
        error = abs(expected - actual) / actual * 100 if actual else None
        if error is not None:
            errors.append(error)
        rows.append(
            {
                "day": day.isoformat(),
                "forecast_made_at": made_at.isoformat(),
                "expected_minor": expected,
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


def latest_business_time(connection: psycopg.Connection[Any]) -> datetime | None:
    """The latest business time the forecast's read model knows: the default as-of."""
    row = connection.execute(
        "SELECT GREATEST((SELECT max(issued_at) FROM forecast_items), "
        "(SELECT max(settled_at) FROM forecast_settlements), "
        "(SELECT max(valid_from) FROM subscription_versions))"
    ).fetchone()
    return None if row is None else row[0]


def forecast_report(
    connection: psycopg.Connection[Any],
    as_of: datetime | None = None,
    currency: str | None = None,
    days: int = HORIZON_DAYS,
) -> dict[str, list[Row]]:
    """The report's sections: days, past_due, probabilities, accuracy (rows per currency)."""
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
        rows, mape = accuracy(book, as_of)
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
