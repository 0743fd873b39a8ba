"""`ledger projections rebuild`: read models built again from the whole history, beside the live ones.

The history is read from billing.events when the topic still holds all of it (its earliest
offsets are 0 and it holds at least as many messages as the store has events), else from the
event store, which always does; `source` forces one (runtime/history.py reads both). Stored
events become the records the relay encodes, as the projector's decoding returns them. The
events are applied to new tables in the PostgreSQL schema REBUILD_SCHEMA; each table is then compared
with the live one by a checksum of its rows; a difference is reported by table and key. With
`swap`, the rebuilt tables replace the live ones in one transaction, after the events stored
meanwhile are applied under a lock that holds the projector back.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from eventsourcing.persistence import Mapper, Notification
from psycopg import sql

from infra.kafka import KafkaClients
from infra.postgres import connect
from ledger.application import BillingLedger
from projections.projector import Projection, catch_up, pending_work
from runtime.history import Event, Page, open_history, store_pages, stored_events_of
from wire.codec import AvroCodec

REBUILD_SCHEMA = "read_models_rebuild"
Progress = Callable[[int, int], None]  # (messages read, messages in the history)
CATCH_UP_STEP = 32  # deferred work done between two reports of its progress


@dataclass
class Outcome:
    """What a rebuild found: events applied, their rate, and the tables that differ."""

    events: int
    seconds: float
    differences: dict[str, list[str]] = field(default_factory=dict)  # table -> keys differing
    swapped: bool = False
    source: str = "store"  # where the history was read: events (billing.events) or store

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
    source: str = "auto",
    kafka: KafkaClients | None = None,
    deferred_progress: Progress | None = None,
) -> Outcome:
    """Rebuild `models` into REBUILD_SCHEMA from the history, compare, and swap in if asked.

    `source`: `events` (billing.events, on the broker `kafka` reaches), `store`, or `auto`:
    the topic when it holds the whole history, else the store (always without `kafka`).
    `progress` is told (messages read, messages in all) after each page; `deferred_progress`
    (units done, units in all) as the work the pages deferred is done (the forecast
    snapshots' days).
    """
    started = time.monotonic()
    history = open_history(ledger, database_url, source, kafka)
    with connect(database_url) as connection:
        live = live_schema(connection)
        _fresh_schema(connection, models)
        events = _apply(connection, models, history.pages(), progress, deferred_progress)
        outcome = Outcome(events, time.monotonic() - started, source=history.name)
        outcome.differences = compare(connection, models, live)
        if swap:
            _swap(ledger, connection, models, history.covers, live)
            outcome.swapped = True
    return outcome


def with_requirements(
    models: Sequence[Projection], registry: Sequence[Projection]
) -> list[Projection]:
    """`models` and the models whose tables they read (`requires`), in the registry's order."""
    names = {model.name for model in models}
    for model in models:
        names |= set(getattr(model, "requires", ()))
    return [model for model in registry if model.name in names]


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


def _apply(
    connection: psycopg.Connection[Any],
    models: Sequence[Projection],
    pages: Iterator[Page],
    progress: Progress | None,
    deferred_progress: Progress | None = None,
) -> int:
    """Apply every page of events to `models`, a transaction each, then the work they deferred
    (the forecast snapshots, each day made once); answer the events applied."""
    count, pages_done = 0, 0
    for page in pages:
        with connection.transaction(), connection.cursor() as cursor:
            _use_rebuild_schema(connection)
            apply_page(cursor, models, page.events)
            pages_done += 1
            if pages_done & (pages_done - 1) == 0:
                _analyze(cursor, models)
        count += len(page.events)
        if progress is not None:
            progress(page.done, page.total)
    with connection.transaction(), connection.cursor() as cursor:
        _use_rebuild_schema(connection)
        total, done = pending_work(cursor, models), 0
        while step := catch_up(cursor, models, CATCH_UP_STEP):
            done += step
            if deferred_progress is not None:
                deferred_progress(done, max(total, done))
            if step < CATCH_UP_STEP:
                break
    return count


def apply_page(
    cursor: psycopg.Cursor[Any], models: Sequence[Projection], events: Sequence[Event]
) -> None:
    """Apply the events to each model as the projector applies one batch."""
    for model in models:
        model.apply_batch(cursor, events)


def apply_notifications(
    cursor: psycopg.Cursor[Any],
    models: Sequence[Projection],
    mapper: Mapper[Any],
    notifications: Iterable[Notification],
    codec: AvroCodec,
) -> int:
    """Apply stored events to `models` as one batch, as the projector would; answer how many
    were billing.events events (not receipts)."""
    events = stored_events_of(mapper, notifications, codec)
    apply_page(cursor, models, events)
    return len(events)


def _analyze(cursor: psycopg.Cursor[Any], models: Sequence[Projection]) -> None:
    """Statistics of the new tables as they grow (after 1, 2, 4, ... pages): without them
    PostgreSQL plans the per-account lookups of a batch as scans of whole tables."""
    tables = sql.SQL(", ").join(sql.Identifier(t) for model in models for t in model.tables)
    cursor.execute(sql.SQL("ANALYZE {}").format(tables))


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
    events stored after notification `position`, holding the projector back meanwhile."""
    tables = [t for model in models for t in model.tables]
    live = sql.SQL(", ").join(sql.Identifier(schema, t) for t in tables)
    with connection.transaction():
        connection.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(live))
        _use_rebuild_schema(connection)
        with connection.cursor() as cursor:
            for page in store_pages(ledger, position):
                apply_page(cursor, models, page.events)
            catch_up(cursor, models)
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
