"""The projector: reads billing.events and writes read-model rows with their Kafka positions.

Each batch's rows and the (topic, partition, offset) it applied are written in one
transaction; on assignment the projector resumes from those positions, kept per Kafka cluster.
Nothing on billing.events stops the projector: a record that is not an event is
dead-lettered, and an event a projection fails to apply is rolled back alone, recorded in
projection_failures and its account marked stale (projections.failures). Each projection
takes the batch's events at once (projections.batch) in one savepoint; if that fails, the
batch is applied again event by event, a savepoint each, to find the events that fail. An
event redelivered within a batch (the relay publishes at least once) is applied once: an
account's (or plan's) event whose version is not above one earlier in the batch is left out,
as the rows' own versions leave out one redelivered in a later batch. A projection may defer
work (the forecast snapshots: a `catch_up` method): the projector gives it a small budget after
each batch, in the batch's transaction, and a larger one in a transaction of its own whenever
a poll returns nothing, polling without waiting while work remains.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import psycopg
import structlog

from infra.faults import crash_point
from infra.kafka import (
    Consumer,
    Message,
    Outgoing,
    Partition,
    Producer,
    last_offsets,
)
from infra.kafka.tracked import TrackedLoop
from infra.postgres import Reconnecting, create_tables
from projections.batch import Event
from projections.failures import (
    FAILURES_SCHEMA,
    owner_of,
    record_failure,
    stale_accounts,
    version_of,
)
from wire.codec import AvroCodec, AvroError
from wire.dead_letters import dead_letter
from wire.event_records import EVENT_SCHEMAS

EVENT_SCHEMA_NAMES = frozenset(EVENT_SCHEMAS.values())

logger = structlog.get_logger(__name__)

# Deferred work (forecast snapshot days, tens of milliseconds each) done after each batch, and
# per transaction when a poll returns nothing. A burst from interleaved partitions marks early
# days again and again, so what a batch makes is mostly made again later: one day per batch
# only guarantees progress under sustained load; idle, a few days per transaction keep what
# arrives meanwhile waiting well under a second.
CATCH_UP_PER_BATCH = 1
CATCH_UP_WHEN_IDLE = 8

POSITIONS_TABLE = "projection_positions"
POSITIONS_SCHEMA = """
CREATE TABLE IF NOT EXISTS projection_positions (
    cluster_id text NOT NULL,
    projector text NOT NULL,
    topic text NOT NULL,
    partition integer NOT NULL,
    last_offset bigint NOT NULL,
    PRIMARY KEY (cluster_id, projector, topic, partition)
)"""


class Projection(Protocol):
    """A read model fed with decoded events inside the projector's transaction."""

    name: str
    tables: tuple[str, ...]  # every table the read model owns (grants, rebuild, reports)
    schema: str  # their DDL: CREATE TABLE IF NOT EXISTS ..., COMMENT ON ...

    def apply_batch(self, cursor: psycopg.Cursor[Any], events: Sequence[Event]) -> None: ...

    def apply(
        self, cursor: psycopg.Cursor[Any], event_type: str, record: dict[str, Any]
    ) -> None: ...


def catch_up(
    cursor: psycopg.Cursor[Any], projections: Sequence[Projection], budget: int | None = None
) -> int:
    """Let each projection that defers work (a `catch_up(cursor, budget)` method) do it, at
    most `budget` units in all (all of it if None); answer how many were done."""
    done = 0
    for projection in projections:
        hook = getattr(projection, "catch_up", None)
        if budget is not None and done >= budget:
            break
        if hook is not None:
            done += int(hook(cursor, None if budget is None else budget - done))
    return done


def pending_work(cursor: psycopg.Cursor[Any], projections: Sequence[Projection]) -> int:
    """The units of deferred work `catch_up` has left (a `pending(cursor)` method each)."""
    return sum(
        int(hook(cursor))
        for projection in projections
        if (hook := getattr(projection, "pending", None)) is not None
    )


class Projector:
    """Feeds every event of billing.events to its projections, one transaction per batch."""

    def __init__(
        self,
        name: str,
        projections: Sequence[Projection],
        consumer: Consumer,
        producer: Producer,
        codec: AvroCodec,
        database_url: str,
        cluster_id: str,
    ) -> None:
        self.name = name
        self.projections = projections
        self.consumer = consumer
        self.producer = producer
        self.codec = codec
        self.cluster_id = cluster_id
        self.loop = TrackedLoop("projector", consumer, self.stored_offset, self._apply, self._idle)
        self._behind = True  # deferred work may be left from before a restart
        self._database = Reconnecting(database_url, on_connect=self._create_tables)
        self._database.get()

    def _create_tables(self, connection: psycopg.Connection[Any]) -> None:
        schemas = (projection.schema for projection in self.projections)
        create_tables(connection, POSITIONS_SCHEMA, FAILURES_SCHEMA, *schemas)

    @property
    def connection(self) -> psycopg.Connection[Any]:
        """The projector's connection, reopened if the server dropped it."""
        return self._database.get()

    def close(self) -> None:
        """Close the projector's connection."""
        self._database.close()

    def stored_offset(self, partition: Partition) -> int | None:
        """The last offset of `partition` applied to the read models."""
        row = self.connection.execute(
            "SELECT last_offset FROM projection_positions "
            "WHERE cluster_id=%s AND projector=%s AND topic=%s AND partition=%s",
            (self.cluster_id, self.name, *partition),
        ).fetchone()
        self.connection.commit()
        return None if row is None else int(row[0])

    def subscribe(self, topics: Sequence[str]) -> None:
        """Join the consumer group; assigned partitions resume after their stored positions."""
        self.loop.subscribe(topics)

    def run_once(self, timeout_s: float = 0.5) -> int:
        """Apply one polled batch, or deferred work if none came; answer how many events it
        held. The poll does not wait while deferred work remains."""
        return self.loop.run_once(0.0 if self._behind else timeout_s)

    def catch_up(self) -> None:
        """Do all the projections' deferred work now, as idle polls would."""
        while self._behind:
            self._idle()

    def _idle(self) -> int:
        """Deferred work, a bounded share in a transaction of its own; no events applied."""
        connection = self.connection
        with connection.transaction(), connection.cursor() as cursor:
            done = self._catch_up(connection, cursor, CATCH_UP_WHEN_IDLE)
        self._behind = done >= CATCH_UP_WHEN_IDLE
        return 0

    def _catch_up(
        self, connection: psycopg.Connection[Any], cursor: psycopg.Cursor[Any], budget: int
    ) -> int:
        """Deferred work in a savepoint: a failure is logged and left for later, and never
        holds back the events (the rows it reads stay as the events left them)."""
        try:
            with connection.transaction():
                return catch_up(cursor, self.projections, budget)
        except Exception as error:
            if connection.broken or isinstance(error, psycopg.OperationalError):
                raise
            logger.exception("projector.catch_up.failed")
            return 0

    def _apply(self, messages: list[Message]) -> int:
        dead: list[Outgoing] = []
        connection = self.connection
        with connection.transaction(), connection.cursor() as cursor:
            stale = stale_accounts(cursor, self.name)
            events = self._events(messages, stale, dead)
            failed = self._apply_batch(connection, cursor, events, stale)
            # a budget used up means work is left: poll without waiting, to do it when idle
            self._behind = (
                self._catch_up(connection, cursor, CATCH_UP_PER_BATCH) >= CATCH_UP_PER_BATCH
            )
            crash_point("projector.mid_batch")
            if dead:
                self.producer.produce_batch(dead)
            self._store_positions(cursor, messages)
        logger.debug(
            "projector.applied", events=len(messages), dead_letters=len(dead), failed=failed
        )
        return len(messages)

    def _events(
        self, messages: list[Message], stale: set[str], dead: list[Outgoing]
    ) -> list[tuple[Message, str, dict[str, Any]]]:
        """The batch's events to apply: not dead letters, stale owners' or redeliveries."""
        events = []
        applied: dict[str, int] = {}  # owner -> the highest version met in the batch
        for message in messages:
            event = self._event(message, dead)
            if event is None:
                continue
            owner, version = owner_of(event[1]), version_of(event[1])
            if owner is not None and owner in stale:
                continue  # frozen at the event before its failure, until rebuilt
            if owner is not None and version is not None:
                if version <= applied.get(owner, -1):
                    continue  # redelivered: its rows have it already
                applied[owner] = version
            events.append((message, *event))
        return events

    def _apply_batch(
        self,
        connection: psycopg.Connection[Any],
        cursor: psycopg.Cursor[Any],
        events: list[tuple[Message, str, dict[str, Any]]],
        stale: set[str],
    ) -> int:
        """Apply the events, the batch at once if it can; answer how many failed now."""
        batch = [(event_type, record) for _, event_type, record in events]
        try:
            with connection.transaction():
                for projection in self.projections:
                    projection.apply_batch(cursor, batch)
            return 0
        except Exception as error:
            if connection.broken or isinstance(error, psycopg.OperationalError):
                raise  # the database, not the events: the batch is read again
            logger.info("projector.batch.failed", events=len(events), error=str(error)[:200])
        failed = 0
        for message, event_type, record in events:
            owner = owner_of(record)
            if owner is not None and owner in stale:
                continue  # an earlier event of it failed in this batch
            if not self._apply_event(connection, cursor, message, event_type, record):
                failed += 1
                if owner is not None:
                    stale.add(owner)
        return failed

    def _event(self, message: Message, dead: list[Outgoing]) -> tuple[str, dict[str, Any]] | None:
        """(event type, record) of an event message; anything else goes to `dead`."""
        try:
            decoded = self.codec.decode(message.value or b"")
        except AvroError as error:
            dead.append(dead_letter(message, error.code, str(error), cluster_id=self.cluster_id))
            return None
        if decoded.schema_name not in EVENT_SCHEMA_NAMES:
            detail = f"{decoded.schema_name} is not an event schema"
            dead.append(dead_letter(message, "not_an_event", detail, cluster_id=self.cluster_id))
            return None
        return decoded.schema_name.rpartition(".")[2], decoded.record

    def _apply_event(
        self,
        connection: psycopg.Connection[Any],
        cursor: psycopg.Cursor[Any],
        message: Message,
        event_type: str,
        record: dict[str, Any],
    ) -> bool:
        """Apply one event in a savepoint; answer False if a projection failed (recorded)."""
        try:
            with connection.transaction():
                for projection in self.projections:
                    projection.apply(cursor, event_type, record)
        except Exception as error:
            if connection.broken or isinstance(error, psycopg.OperationalError):
                raise  # the database, not the event: the batch is read again
            owner = owner_of(record)
            logger.exception(
                "projector.apply.failed",
                topic=message.topic,
                partition=message.partition,
                offset=message.offset,
                event_type=event_type,
                account_id=owner,
            )
            record_failure(cursor, (self.cluster_id, self.name), message, event_type, owner, error)
            return False
        return True

    def _store_positions(self, cursor: psycopg.Cursor[Any], messages: list[Message]) -> None:
        cursor.executemany(
            "INSERT INTO projection_positions VALUES (%s, %s, %s, %s, %s) "
            "ON CONFLICT (cluster_id, projector, topic, partition) "
            "DO UPDATE SET last_offset = EXCLUDED.last_offset",
            [(self.cluster_id, self.name, t, p, o) for (t, p), o in last_offsets(messages).items()],
        )
