"""Reading the event store for audits: one consistent snapshot, events streamed by position.

Every read happens in one REPEATABLE READ, READ ONLY transaction, so a batch committed
while an audit runs is either wholly in its view (events and head) or not at all.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from uuid import UUID

import psycopg
from psycopg.sql import SQL, Identifier

from infra.batch_heads import BatchHeadsTable, SealedHead, head_from_row
from infra.postgres import connect, heads_table_name

EVENTS_TABLE = "billing_events"
TRACKING_TABLE = "billing_tracking"
MIGRATION_ROW = "__migration__"  # the library's own row in the tracking table
FETCH_ROWS = 5000


# One row of the events table: position (notification id), topic, originator id and
# version, state. A plain tuple: verify reads a million of them.
EventRow = tuple[int, str, UUID, int, bytes]


class Snapshot:
    """A read-only, consistent view of the event store, its batch heads and its positions."""

    def __init__(self, connection: psycopg.Connection[Any], schema: str = "public") -> None:
        self.connection = connection
        self.schema = schema
        self.heads_table = BatchHeadsTable(schema, heads_table_name(EVENTS_TABLE))

    def _name(self, table: str) -> Any:
        return SQL("{}.{}").format(Identifier(self.schema), Identifier(table))

    def heads(self, after_batch: int = 0) -> Iterator[SealedHead]:
        """The batch heads after `after_batch`, in batch order."""
        statement = self.heads_table.select_statement + SQL(" WHERE batch > %s ORDER BY batch")
        with self.connection.cursor(name="heads", binary=True) as cursor:
            cursor.itersize = FETCH_ROWS
            cursor.execute(statement, (after_batch,))
            for row in cursor:
                yield head_from_row(row)

    def head(self, batch: int) -> SealedHead | None:
        """The head of batch `batch`, if stored."""
        statement = self.heads_table.select_statement + SQL(" WHERE batch = %s")
        row = self.connection.execute(statement, (batch,)).fetchone()
        return None if row is None else head_from_row(row)

    def last_head(self) -> SealedHead | None:
        """The latest batch head, if any."""
        row = self.connection.execute(self.heads_table.last_statement).fetchone()
        return None if row is None else head_from_row(row)

    def head_hashes(self, up_to_batch: int) -> list[bytes]:
        """The stored hashes of heads 1 to `up_to_batch`, in batch order."""
        statement = SQL("SELECT head_hash FROM {} WHERE batch <= %s ORDER BY batch").format(
            self._name(self.heads_table.table)
        )
        rows = self.connection.execute(statement, (up_to_batch,), binary=True).fetchall()
        return [bytes(row[0]) for row in rows]

    def events(self, after_position: int = 0, up_to: int | None = None) -> Iterator[EventRow]:
        """The stored events after `after_position` (up to `up_to`), by position."""
        statement = SQL(
            "SELECT notification_id, topic, originator_id, originator_version, state FROM {} "
            "WHERE notification_id > %s AND notification_id <= %s ORDER BY notification_id"
        ).format(self._name(EVENTS_TABLE))
        with self.connection.cursor(name="events", binary=True) as cursor:
            cursor.itersize = FETCH_ROWS
            cursor.execute(statement, (after_position, up_to if up_to is not None else 2**62))
            yield from cursor

    def canonical_events(self, after_position: int = 0) -> Iterator[tuple[int, bytes]]:
        """(position, canonical bytes) of the stored events after `after_position`, by position.

        The server puts the bytes together from the row's columns exactly as
        infra.batch_heads.event_bytes does (docs/audit.md), so that verify hashes on one core
        while PostgreSQL reads and concatenates on the other; the tests check both agree.
        """
        statement = SQL(
            "SELECT notification_id, 'BLE1'::bytea || int4send(octet_length(topic)) "
            "|| convert_to(topic, 'UTF8') || uuid_send(originator_id) "
            "|| int8send(originator_version) || int4send(length(state)) || state "
            "FROM {} WHERE notification_id > %s ORDER BY notification_id"
        ).format(self._name(EVENTS_TABLE))
        with self.connection.cursor(name="canonical", binary=True) as cursor:
            cursor.itersize = FETCH_ROWS
            cursor.execute(statement, (after_position,))
            yield from cursor

    def event_at(self, originator_id: UUID, originator_version: int) -> EventRow | None:
        """The stored event `originator_version` of aggregate `originator_id`, if any."""
        statement = SQL(
            "SELECT notification_id, topic, originator_id, originator_version, state FROM {} "
            "WHERE originator_id = %s AND originator_version = %s"
        ).format(self._name(EVENTS_TABLE))
        row = self.connection.execute(
            statement, (originator_id, originator_version), binary=True
        ).fetchone()
        return None if row is None else (row[0], row[1], row[2], row[3], bytes(row[4]))

    def event_at_position(self, position: int) -> EventRow | None:
        """The stored event at notification id `position`, if any."""
        return next(self.events(after_position=position - 1, up_to=position), None)

    def head_holding(self, position: int) -> SealedHead | None:
        """The head of the batch that holds the event at `position`, if any."""
        statement = self.heads_table.select_statement + SQL(
            " WHERE last_position >= %s AND event_count > 0 ORDER BY batch LIMIT 1"
        )
        row = self.connection.execute(statement, (position,)).fetchone()
        return None if row is None else head_from_row(row)

    def event_keys(self) -> Iterator[tuple[UUID, int]]:
        """Every stored event's aggregate id and version, by position."""
        statement = SQL(
            "SELECT originator_id, originator_version FROM {} ORDER BY notification_id"
        ).format(self._name(EVENTS_TABLE))
        with self.connection.cursor(name="keys", binary=True) as cursor:
            cursor.itersize = FETCH_ROWS * 4
            cursor.execute(statement)
            yield from cursor

    def positions(self) -> dict[str, int]:
        """The Kafka positions in the tracking table, by name (without the library's own row)."""
        statement = SQL("SELECT application_name, notification_id FROM {}").format(
            self._name(TRACKING_TABLE)
        )
        rows = self.connection.execute(statement).fetchall()
        return {name: offset for name, offset in rows if name != MIGRATION_ROW}


@contextmanager
def snapshot(database_url: str) -> Iterator[Snapshot]:
    """A consistent read-only view of the store at `database_url`, for the block's duration."""
    with connect(database_url) as connection:
        connection.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        connection.read_only = True
        with connection.transaction():
            # Only the server's own functions and operators: a function or operator of the same
            # name created in another schema must not stand in for them.
            connection.execute("SET LOCAL search_path TO pg_catalog")
            yield Snapshot(connection)
