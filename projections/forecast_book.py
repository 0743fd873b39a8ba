"""What the forecast's read model knew at a business time, and the forecast made from it.

`load_book` reads the rows of one currency as they stood at a time (items issued, settlements
made, subscription versions valid and payment method kinds in force by then); `forecast_days`
applies the method of `projections/forecast_model.py` to them. Both the report and the stored
snapshots (`projections/forecast_snapshots.py`) use them, so a snapshot is the report's
forecast as of the snapshot's time.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg

from projections.forecast_model import (
    Estimate,
    Item,
    Memo,
    Probabilities,
    Schedule,
    Scheduled,
    Settlement,
    estimate,
    observed,
    scheduled,
)

HORIZON_DAYS = 90

Database = psycopg.Connection[Any] | psycopg.Cursor[Any]

# The kind of the account's default method in force when the item was issued (NULL: none).
ISSUE_KIND = (
    "(SELECT d.kind FROM forecast_default_kinds d WHERE d.account_id = i.account_id "
    "AND d.valid_from <= i.issued_at ORDER BY d.valid_from DESC, d.account_version DESC LIMIT 1)"
)
# The kind an item is charged with at %(as_of)s: its last charge attempt by then, else the
# account's default method in force when it was issued; `none` without either.
_ITEM_KIND = (
    "COALESCE((SELECT k.kind FROM forecast_attempt_kinds k WHERE k.account_id = i.account_id "
    "AND k.item_id = i.item_id AND k.attempted_at <= %(as_of)s "
    f"ORDER BY k.attempted_at DESC, k.account_version DESC LIMIT 1), {ISSUE_KIND}, 'none')"
)
# The account's default kind at %(as_of)s: future invoices are charged with it.
_DEFAULT_KIND = (
    "COALESCE((SELECT d.kind FROM forecast_default_kinds d WHERE d.account_id = v.account_id "
    "AND d.valid_from <= %(as_of)s ORDER BY d.valid_from DESC, d.account_version DESC LIMIT 1), "
    "'none')"
)
# The currency's rows known at %(as_of)s, each statement in the order the forecast reads them;
# {kind} is the column the kind comes from (projections/forecast_history.py reads it apart).
ITEMS = (
    "SELECT i.account_id, i.item_id, i.issued_at, i.amount_minor, i.due_at, "
    "i.accelerated_at, i.accelerated_due_at, {kind} FROM forecast_items i "
    "WHERE i.currency = %(currency)s AND i.issued_at <= %(as_of)s "
    "ORDER BY i.account_id, i.item_id"
)
SETTLEMENTS = (
    "SELECT s.account_id, s.item_id, s.how, s.settled_at, s.amount_minor "
    "FROM forecast_settlements s JOIN forecast_items i USING (account_id, item_id) "
    "WHERE i.currency = %(currency)s AND s.settled_at <= %(as_of)s "
    "ORDER BY s.settled_at, s.account_id, s.account_version, s.item_id, s.how"
)
VERSIONS = (
    "SELECT v.valid_from, v.account_version, v.account_id, v.subscription_id, "
    "v.price_minor, v.interval_unit, v.interval_count, v.days_until_due, v.started_at, "
    "v.trial_ends_at, v.anchor, v.cycle_base, v.cycles_invoiced, v.status, v.cancel_at, "
    "v.announced_price_minor, v.announced_from{kind} "
    "FROM subscription_versions v "
    "WHERE v.currency = %(currency)s AND v.valid_from <= %(as_of)s "
    "ORDER BY v.valid_from, v.account_version, v.account_id, v.subscription_id"
)


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


def load_book(database: Database, currency: str, as_of: datetime) -> Book:
    """The items, settlements and subscription versions of `currency` known at `as_of`."""
    params = {"currency": currency, "as_of": as_of}
    items = [
        Item(*row) for row in database.execute(ITEMS.format(kind=_ITEM_KIND), params).fetchall()
    ]
    settled: dict[tuple[str, str], list[Settlement]] = defaultdict(list)
    for row in database.execute(SETTLEMENTS, params).fetchall():
        settlement = Settlement(*row)
        settled[(settlement.account_id, settlement.item_id)].append(settlement)
    versions = [
        (row[0], row[1], (row[2], row[3]), Schedule(*row[4:]))
        for row in database.execute(VERSIONS.format(kind=f", {_DEFAULT_KIND}"), params).fetchall()
    ]
    return Book(items, dict(settled), versions)


def forecast_days(
    book: Book, as_of: datetime, days: int = HORIZON_DAYS, memo: Memo | None = None
) -> tuple[dict[date, Estimate], Estimate, Probabilities]:
    """The forecast made at `as_of`: an estimate per day, the past-due items', the rates.

    Forecasts of several times from one history share a `memo`, so what does not change
    from one time to the next is computed once."""
    memo = memo or Memo()
    facts = memo.facts_as_of(book.items, book.settled, as_of)
    probabilities = observed(facts, as_of)
    upcoming, overdue = scheduled(facts, book.schedules_as_of(as_of), as_of, days, memo)
    by_day: dict[date, list[Scheduled]] = defaultdict(list)
    for amount in upcoming:
        by_day[amount.day].append(amount)
    first = as_of.astimezone(UTC).date()
    nothing = estimate([], probabilities)
    estimates = {}
    for n in range(days):
        day = first + timedelta(days=n)
        estimates[day] = estimate(by_day[day], probabilities) if day in by_day else nothing
    return estimates, estimate(overdue, probabilities), probabilities
