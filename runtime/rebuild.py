"""`ledger projections rebuild`: read models built again from the whole history, beside the live ones.

The history is read from the event store (it always holds all of it, whatever billing.events
still keeps), encoded and decoded exactly as the relay and the projector do, and applied to new
tables in the PostgreSQL schema REBUILD_SCHEMA. Each table is then compared with the live one
by a checksum of its rows; a difference is reported by table and key. With `swap`, the rebuilt
tables replace the live ones in one transaction, after the events stored meanwhile are applied
under a lock that holds the projector back.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from eventsourcing.persistence import Mapper, Notification
from psycopg import sql

from infra.postgres import connect
from ledger.application import BillingLedger
from projections.projector import Projection
from wire.codec import AvroCodec
from wire.event_records import outgoing

REBUILD_SCHEMA = "read_models_rebuild"
PAGE = 5000  # events per read of the store and per batch applied
Progress = Callable[[int, int], None]  # (events done, events in the store)


@dataclass
class Outcome:
    """What a rebuild found: events applied, their rate, and the tables that differ."""

    events: int
    seconds: float
    differences: dict[str, list[str]] = field(default_factory=dict)  # table -> keys differing
    swapped: bool = False

    @property
    def events_per_s(self) -> float:
        """Events applied per second of the rebuild."""
        return self.events / self.seconds if self.seconds else 0.0


def rebuild(
    ledger: BillingLedger,
    database_url: str,
    models: Sequence[Projection],
    *,
    swap: bool = False,
    progress: Progress | None = None,
) -> Outcome:
    """Rebuild `models` into REBUILD_SCHEMA from the store, compare, and swap in if asked."""
    started = time.monotonic()
    with connect(database_url) as connection:
        live = live_schema(connection)
        _fresh_schema(connection, models)
        position, events = _apply_history(ledger, connection, models, 0, progress)
        outcome = Outcome(events, time.monotonic() - started)
        outcome.differences = compare(connection, models, live)
        if swap:
            _swap(ledger, connection, models, position, live)
            outcome.swapped = True
    return outcome


def live_schema(connection: psycopg.Connection[Any]) -> str:
    """The schema the live read models are in: the first of the ledger user's search_path."""
    row = connection.execute("SELECT current_schema()::text").fetchone()
    connection.commit()
    assert row is not None and row[0], "no schema of the search_path exists"
    return str(row[0])


def _fresh_schema(connection: psycopg.Connection[Any], models: Sequence[Projection]) -> None:
    with connection.transaction():
        schema = sql.Identifier(REBUILD_SCHEMA)
        connection.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(schema))
        connection.execute(sql.SQL("CREATE SCHEMA {}").format(schema))
        _use_rebuild_schema(connection)
        for model in models:
            connection.execute(model.schema)


def _use_rebuild_schema(connection: psycopg.Connection[Any]) -> None:
    """Resolve the read models' unqualified names (tables, functions) in the rebuild schema."""
    connection.execute(
        sql.SQL("SET LOCAL search_path TO {}").format(sql.Identifier(REBUILD_SCHEMA))
    )


def _apply_history(
    ledger: BillingLedger,
    connection: psycopg.Connection[Any],
    models: Sequence[Projection],
    after: int,
    progress: Progress | None,
) -> tuple[int, int]:
    """Apply every stored event after notification `after`; answer the last id and the count."""
    codec = AvroCodec()
    total = ledger.recorder.max_notification_id() or 0
    position, count, pages = after, 0, 0
    for page in _pages(ledger, after):
        with connection.transaction(), connection.cursor() as cursor:
            _use_rebuild_schema(connection)
            count += apply_notifications(cursor, models, ledger.mapper, page, codec)
            pages += 1
            if pages & (pages - 1) == 0:
                _analyze(cursor, models)
        position = page[-1].id
        if progress is not None:
            progress(position, max(total, position))
    return position, count


def apply_notifications(
    cursor: psycopg.Cursor[Any],
    models: Sequence[Projection],
    mapper: Mapper[Any],
    notifications: Iterable[Notification],
    codec: AvroCodec,
) -> int:
    """Apply stored events to `models` as the projector would, as one batch: encoded as the
    relay publishes them and decoded again; answer how many were billing.events events (not
    receipts)."""
    events = []
    for notification in notifications:
        message = outgoing(mapper.to_domain_event(notification), notification.id, codec)
        decoded = codec.decode(message.value or b"")
        if decoded.schema_name.startswith("billing.events."):
            events.append((decoded.schema_name.rpartition(".")[2], decoded.record))
    for model in models:
        model.apply_batch(cursor, events)
    return len(events)


def _analyze(cursor: psycopg.Cursor[Any], models: Sequence[Projection]) -> None:
    """Statistics of the new tables as they grow (after 1, 2, 4, ... pages): without them
    PostgreSQL plans the per-account lookups of a batch as scans of whole tables."""
    tables = sql.SQL(", ").join(sql.Identifier(t) for model in models for t in model.tables)
    cursor.execute(sql.SQL("ANALYZE {}").format(tables))


def _pages(ledger: BillingLedger, after: int) -> Iterator[list[Any]]:
    while True:
        page = ledger.recorder.select_notifications(
            start=after, limit=PAGE, inclusive_of_start=False
        )
        if not page:
            return
        yield list(page)
        after = page[-1].id


def compare(
    connection: psycopg.Connection[Any], models: Sequence[Projection], schema: str
) -> dict[str, list[str]]:
    """Tables whose rebuilt rows differ from the live ones, with the first keys that differ."""
    differences = {}
    with connection.transaction():
        for table in (t for model in models for t in model.tables):
            live = sql.Identifier(schema, table)
            rebuilt = sql.Identifier(REBUILD_SCHEMA, table)
            if _checksum(connection, live) != _checksum(connection, rebuilt):
                differences[table] = _differing_keys(connection, live, rebuilt)
    return differences


def _checksum(connection: psycopg.Connection[Any], table: sql.Identifier) -> tuple[Any, ...]:
    query = sql.SQL(
        "SELECT count(*), md5(coalesce(string_agg(md5(t::text), '' ORDER BY md5(t::text)), '')) "
        "FROM {} t"
    ).format(table)
    row = connection.execute(query).fetchone()
    assert row is not None
    return tuple(row)


def _differing_keys(
    connection: psycopg.Connection[Any], live: sql.Identifier, rebuilt: sql.Identifier
) -> list[str]:
    """The first columns of up to 10 rows found in one table and not the other."""
    query = sql.SQL(
        "(SELECT 'live', t::text FROM {0} t EXCEPT SELECT 'live', t::text FROM {1} t) UNION ALL "
        "(SELECT 'rebuilt', t::text FROM {1} t EXCEPT SELECT 'rebuilt', t::text FROM {0} t) "
        "ORDER BY 2 LIMIT 10"
    ).format(live, rebuilt)
    return [
        f"{side}: {','.join(text.strip('()').split(',')[:2])}"
        for side, text in connection.execute(query).fetchall()
    ]


def _swap(
    ledger: BillingLedger,
    connection: psycopg.Connection[Any],
    models: Sequence[Projection],
    position: int,
    schema: str,
) -> None:
    """Replace the live tables with the rebuilt ones, in one transaction that first applies the
    events stored since the rebuild read the store, holding the projector back meanwhile."""
    tables = [t for model in models for t in model.tables]
    live = sql.SQL(", ").join(sql.Identifier(schema, t) for t in tables)
    with connection.transaction():
        connection.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(live))
        _apply_history(ledger, connection, models, position, None)
        connection.execute(sql.SQL("SET LOCAL search_path TO {}").format(sql.Identifier(schema)))
        for table in tables:
            connection.execute(
                sql.SQL("DROP TABLE {} CASCADE").format(sql.Identifier(schema, table))
            )
            connection.execute(
                sql.SQL("ALTER TABLE {} SET SCHEMA {}").format(
                    sql.Identifier(REBUILD_SCHEMA, table), sql.Identifier(schema)
                )
            )
        for model in models:  # its functions, now in the live schema, over the swapped tables
            connection.execute(model.schema)
        connection.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(REBUILD_SCHEMA)))
