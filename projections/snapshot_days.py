"""Making the forecast snapshots that applied events left pending, oldest first.

Applying events (projections/forecast_snapshots.py) only widens a currency's span of days and
records the earliest snapshot day they may change (`forecast_snapshot_pending`); the snapshots
are made here, later: with a budget per projector batch, when the projector is idle, and at the
end of a rebuild or reconcile. Each make reads the tables as they are then, and an event at or
before a pending day's time marks it pending again, so the stored snapshots end the same
whatever the order and batching of the events.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg

from projections.forecast_book import HORIZON_DAYS, Book, Database, forecast_days
from projections.forecast_history import load_history
from projections.forecast_model import Memo, midnight

SETTLE_DAYS = 7  # a day's snapshot waits until events 7 days later are seen
# Each currency pending: the first and last snapshot day to make (none if the last is before
# the first); parameter: SETTLE_DAYS.
_PENDING = (
    "SELECT p.currency, GREATEST(p.pending_from, r.first_day + 1) AS first_made_on, "
    "r.last_day - %s AS last_made_on "
    "FROM forecast_snapshot_pending p JOIN forecast_snapshot_range r USING (currency)"
)


def first_made_on(moment: datetime) -> date:
    """The first day whose snapshot, as of its 00:00 UTC, is at or after `moment`."""
    day = moment.astimezone(UTC).date()
    return day if midnight(day) >= moment else day + timedelta(days=1)


def mark_pending(cursor: psycopg.Cursor[Any], currency: str, made_on: date) -> None:
    """Record that the currency's snapshots from `made_on` on are to be made (again)."""
    cursor.execute(
        "INSERT INTO forecast_snapshot_pending VALUES (%s, %s) ON CONFLICT (currency) "
        "DO UPDATE SET pending_from = "
        "LEAST(forecast_snapshot_pending.pending_from, EXCLUDED.pending_from)",
        (currency, made_on),
    )


def make_pending(cursor: psycopg.Cursor[Any], budget: int | None = None) -> int:
    """Make pending snapshots, the currency pending longest first, at most `budget` days (all
    if None); answer how many were made. A currency another transaction is marking is left
    for later (its row is locked), so concurrent projectors never make the same day."""
    pending = cursor.execute(
        f"{_PENDING} ORDER BY p.pending_from, p.currency FOR UPDATE OF p SKIP LOCKED",
        (SETTLE_DAYS,),
    ).fetchall()
    made = 0
    for currency, start, end in pending:
        days = max(0, (end - start).days + 1)
        if budget is not None:
            days = min(days, budget - made)
        make_days(cursor, currency, start, days)
        made += days
        _leave_pending(cursor, currency, start + timedelta(days=days), end)
        if budget is not None and made >= budget:
            break
    return made


def _leave_pending(cursor: psycopg.Cursor[Any], currency: str, after: date, end: date) -> None:
    if after > end:
        cursor.execute("DELETE FROM forecast_snapshot_pending WHERE currency = %s", (currency,))
    else:
        cursor.execute(
            "UPDATE forecast_snapshot_pending SET pending_from = %s WHERE currency = %s",
            (after, currency),
        )


def pending_days(database: Database) -> int:
    """How many snapshot days are pending, over every currency."""
    row = database.execute(
        f"SELECT coalesce(sum(GREATEST(0, last_made_on - first_made_on + 1)), 0) "
        f"FROM ({_PENDING}) pending",
        (SETTLE_DAYS,),
    ).fetchone()
    return int(row[0]) if row else 0


def make_days(cursor: psycopg.Cursor[Any], currency: str, first: date, days: int) -> None:
    """Make the snapshots of `days` days from `first`, the tables read once for all of them."""
    if days <= 0:
        return
    history = load_history(cursor, currency, midnight(first + timedelta(days=days - 1)))
    memo = Memo()  # the days' books hold the same items and schedules: their facts made once
    for n in range(days):
        made_on = first + timedelta(days=n)
        _store(cursor, currency, made_on, history.as_of(midnight(made_on)), memo)


def _store(
    cursor: psycopg.Cursor[Any], currency: str, made_on: date, book: Book, memo: Memo
) -> None:
    """Store the forecast made at 00:00 UTC of `made_on` from `book` (its days with something
    scheduled), replacing any made before."""
    estimates = forecast_days(book, midnight(made_on), HORIZON_DAYS, memo)[0]
    cursor.execute(
        "DELETE FROM forecast_snapshots WHERE currency = %s AND made_on = %s", (currency, made_on)
    )
    rows = [
        (day, e.scheduled_minor, e.expected_minor, e.low_minor, e.high_minor, e.amounts)
        for day, e in estimates.items()
        if e.amounts
    ]
    if rows:
        cursor.execute(
            "INSERT INTO forecast_snapshots SELECT %s, %s, * FROM unnest(%s::date[], "
            "%s::bigint[], %s::bigint[], %s::bigint[], %s::bigint[], %s::integer[])",
            (currency, made_on, *map(list, zip(*rows, strict=True))),
        )
