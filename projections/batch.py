"""How a projection takes a batch of events: all at once, or one event at a time.

The projector and `ledger projections rebuild` hand each projection a batch (`apply_batch`);
a projection that writes its rows once per batch keeps them in memory meanwhile and writes
each table with one statement (`upsert`), and one that writes per event loops (`EachEvent`).
A batch of one event is how the projector isolates an event a projection fails to apply.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import psycopg
from psycopg import sql

Event = tuple[str, dict[str, Any]]  # (event type, decoded billing.events record)


class EachEvent:
    """A projection that writes each event as it comes: its batch is its events in order."""

    def apply(self, cursor: psycopg.Cursor[Any], event_type: str, record: dict[str, Any]) -> None:
        """Apply one decoded event."""
        raise NotImplementedError

    def apply_batch(self, cursor: psycopg.Cursor[Any], events: Sequence[Event]) -> None:
        """Apply the events in order, their statements sent without waiting for each answer."""
        with cursor.connection.pipeline():
            for event_type, record in events:
                self.apply(cursor, event_type, record)


class Batched:
    """A projection that writes a batch at once: one event is a batch of one."""

    def apply_batch(self, cursor: psycopg.Cursor[Any], events: Sequence[Event]) -> None:
        """Apply the events in order, writing each table once."""
        raise NotImplementedError

    def apply(self, cursor: psycopg.Cursor[Any], event_type: str, record: dict[str, Any]) -> None:
        """Apply one decoded event."""
        self.apply_batch(cursor, [(event_type, record)])


def upsert(
    cursor: psycopg.Cursor[Any],
    table: str,
    columns: dict[str, str],
    key: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    replace: bool = True,
) -> None:
    """Write `rows` (values in the order of `columns`, name -> PostgreSQL type) in one statement.

    A row whose `key` exists replaces it (`replace`) or is left out. The rows are sent as one
    array per column, so the statement is the same whatever the batch's size, in binary:
    psycopg dumps a long list that way ~10x faster than as text.
    """
    rows = list(rows)
    if not rows:
        return
    names = sql.SQL(", ").join(map(sql.Identifier, columns))
    arrays = sql.SQL(", ").join(
        sql.SQL("%b::{}[]").format(sql.SQL(kind)) for kind in columns.values()
    )
    updates = [c for c in columns if c not in key]
    action: sql.Composable = sql.SQL("DO NOTHING")
    if replace and updates:
        action = sql.SQL("DO UPDATE SET {}").format(
            sql.SQL(", ").join(
                sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c)) for c in updates
            )
        )
    statement = sql.SQL(
        "INSERT INTO {table} ({names}) SELECT * FROM unnest({arrays}) ON CONFLICT ({key}) {action}"
    ).format(
        table=sql.Identifier(table),
        names=names,
        arrays=arrays,
        key=sql.SQL(", ").join(map(sql.Identifier, key)),
        action=action,
    )
    cursor.execute(statement, [list(values) for values in zip(*rows, strict=True)])


def select_rows(
    cursor: psycopg.Cursor[Any],
    table: str,
    columns: dict[str, str],
    id_column: str,
    keys: set[tuple[str, str]],
) -> dict[tuple[str, str], dict[str, Any]]:
    """The stored rows of `table` whose (account_id, `id_column`) is among `keys`, by key; the
    first two of `columns` must be those two."""
    if not keys:
        return {}
    accounts, ids = zip(*sorted(keys), strict=True)
    cursor.execute(
        sql.SQL(
            "SELECT {names} FROM {table} t JOIN unnest(%s::text[], %s::text[]) k(account, id) "
            "ON t.account_id = k.account AND t.{id} = k.id"
        ).format(
            names=sql.SQL(", ").join(sql.Identifier("t", c) for c in columns),
            table=sql.Identifier(table),
            id=sql.Identifier(id_column),
        ),
        (list(accounts), list(ids)),
    )
    return keyed(cursor.fetchall(), columns)


def keyed(
    fetched: list[tuple[Any, ...]], columns: dict[str, str]
) -> dict[tuple[str, str], dict[str, Any]]:
    """Rows fetched in the order of `columns`, as dicts keyed by their first two values."""
    return {(row[0], row[1]): dict(zip(columns, row, strict=True)) for row in fetched}


def newer_row(
    rows: dict[Any, dict[str, Any]], key: Any, record: dict[str, Any]
) -> dict[str, Any] | None:
    """The row of `key` if the event is newer than it (by account version), now at the
    event's version; None if there is no such row or the event was applied to it already
    (as `UPDATE ... WHERE account_version < %s`)."""
    row = rows.get(key)
    if row is None or row["account_version"] >= record["account_version"]:
        return None
    row["account_version"] = record["account_version"]
    return row
