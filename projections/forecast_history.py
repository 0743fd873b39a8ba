"""The forecast's rows of one currency up to a time, read once, as they stood at any time before.

`load_book` reads the tables once per as-of time; making many days' snapshots at once
(projections/snapshot_days.py) reads them once up to the last day with the payment method
kinds as they changed (`load_history`), and `History.as_of` answers the same `Book` as
`load_book` would for each earlier time (tests/integration/test_forecast_and_metrics.py
checks they are equal).
"""

from __future__ import annotations

from bisect import bisect_right
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, TypeVar

from projections.forecast_book import (
    ISSUE_KIND,
    ITEMS,
    SETTLEMENTS,
    VERSIONS,
    Book,
    Database,
)
from projections.forecast_model import Item, Schedule, Settlement

Key = TypeVar("Key")

# Each item's charge attempts and each account's default kinds as they changed, in the order
# load_book's subqueries take the last of (time, then account version).
_ATTEMPTS = (
    "SELECT k.account_id, k.item_id, k.attempted_at, k.kind FROM forecast_attempt_kinds k "
    "JOIN forecast_items i USING (account_id, item_id) "
    "WHERE i.currency = %(currency)s AND k.attempted_at <= %(as_of)s "
    "ORDER BY k.account_id, k.item_id, k.attempted_at, k.account_version"
)
_DEFAULTS = (
    "SELECT d.account_id, d.valid_from, d.kind FROM forecast_default_kinds d "
    "WHERE d.valid_from <= %(as_of)s AND d.account_id IN "
    "(SELECT v.account_id FROM subscription_versions v WHERE v.currency = %(currency)s) "
    "ORDER BY d.account_id, d.valid_from, d.account_version"
)


@dataclass(frozen=True)
class Changes:
    """A value as it changed: its times in order and the value from each."""

    times: list[datetime]
    values: list[str]

    def at(self, moment: datetime) -> str | None:
        """The value in force at `moment` (the last set at or before it); None before any."""
        n = bisect_right(self.times, moment)
        return self.values[n - 1] if n else None


@dataclass(frozen=True)
class History:
    """A currency's rows up to a time, with the kinds as they changed."""

    items: list[Item]  # each with the kind it is charged with if never attempted
    attempts: dict[tuple[str, str], Changes]  # item -> kinds of its charge attempts
    settlements: list[Settlement]
    versions: list[tuple[datetime, int, tuple[str, str], Schedule]]
    defaults: dict[str, Changes]  # account -> its default payment method kinds
    # (row's index, kind) -> the row with that kind: made once, not again for every day
    _with_kind: dict[tuple[int, str], Any] = field(default_factory=dict, compare=False, repr=False)

    def as_of(self, as_of: datetime) -> Book:
        """The rows known at `as_of`, as `load_book` reads them."""
        items = [
            self._item(n, item, as_of)
            for n, item in enumerate(self.items)
            if item.issued_at <= as_of
        ]
        settled: dict[tuple[str, str], list[Settlement]] = defaultdict(list)
        for settlement in self.settlements:
            if settlement.settled_at <= as_of:
                settled[(settlement.account_id, settlement.item_id)].append(settlement)
        kinds: dict[str, str] = {}  # each account's default kind at as_of, found once
        versions = []
        for n, (valid_from, version, key, schedule) in enumerate(self.versions):
            if valid_from <= as_of:
                kind = kinds.get(key[0]) or kinds.setdefault(key[0], self._kind(key, as_of))
                versions.append((valid_from, version, key, self._schedule(n, schedule, kind)))
        return Book(items, dict(settled), versions)

    def _item(self, n: int, item: Item, as_of: datetime) -> Item:
        """Item `n` with the kind of its last charge attempt by `as_of`, if any."""
        attempts = self.attempts.get(item.key)
        attempted = attempts.at(as_of) if attempts else None
        if attempted is None:
            return item
        made: Item | None = self._with_kind.get((n, attempted))
        if made is None:
            made = self._with_kind[(n, attempted)] = replace(item, payment_method_kind=attempted)
        return made

    def _schedule(self, n: int, schedule: Schedule, kind: str) -> Schedule:
        """Version `n`'s schedule charged with `kind` (the same object for the same kind)."""
        key = (-1 - n, kind)  # negative: apart from the items' indices
        made: Schedule | None = self._with_kind.get(key)
        if made is None:
            made = self._with_kind[key] = replace(schedule, payment_method_kind=kind)
        return made

    def _kind(self, key: tuple[str, str], as_of: datetime) -> str:
        """The subscription's account's default kind at `as_of`."""
        defaults = self.defaults.get(key[0])
        kind = defaults.at(as_of) if defaults else None
        return "none" if kind is None else kind


def load_history(database: Database, currency: str, until: datetime) -> History:
    """The rows of `currency` known at `until`, to be seen as of any time up to it."""
    params = {"currency": currency, "as_of": until}
    # the kind an item never charged is charged with: its default's when it was issued
    issue_kind = f"COALESCE({ISSUE_KIND}, 'none')"
    items = [
        Item(*row) for row in database.execute(ITEMS.format(kind=issue_kind), params).fetchall()
    ]
    settlements = [Settlement(*row) for row in database.execute(SETTLEMENTS, params).fetchall()]
    versions = [
        (row[0], row[1], (row[2], row[3]), Schedule(*row[4:]))
        for row in database.execute(VERSIONS.format(kind=", 'none'"), params).fetchall()
    ]
    attempts = database.execute(_ATTEMPTS, params).fetchall()
    defaults = database.execute(_DEFAULTS, params).fetchall()
    return History(
        items,
        _changes(((row[0], row[1]), row[2], row[3]) for row in attempts),
        settlements,
        versions,
        _changes((row[0], row[1], row[2]) for row in defaults),
    )


def _changes(rows: Iterable[tuple[Key, datetime, str]]) -> dict[Key, Changes]:
    """(key, time, value) rows in order, as each key's Changes."""
    found: dict[Key, Changes] = {}
    for key, moment, value in rows:
        changes = found.setdefault(key, Changes([], []))
        changes.times.append(moment)
        changes.values.append(value)
    return found
