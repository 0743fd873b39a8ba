"""The projector: reads billing.events and writes read-model rows with their Kafka positions.

Each batch's rows and the (topic, partition, offset) it applied are written in one
transaction; on assignment the projector resumes from those positions, kept per Kafka cluster.
Nothing on billing.events stops the projector: a record that is not an event is
dead-lettered, and an event a projection fails to apply is rolled back alone (a savepoint per
event), recorded in projection_failures and its account marked stale (projections.failures).
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
from projections.failures import (
    FAILURES_SCHEMA,
    owner_of,
    record_failure,
    stale_accounts,
)
from wire.codec import AvroCodec, AvroError
from wire.dead_letters import dead_letter
from wire.event_records import EVENT_SCHEMAS

EVENT_SCHEMA_NAMES = frozenset(EVENT_SCHEMAS.values())

logger = structlog.get_logger(__name__)

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

    def apply(
        self, cursor: psycopg.Cursor[Any], event_type: str, record: dict[str, Any]
    ) -> None: ...


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
        self.loop = TrackedLoop("projector", consumer, self.stored_offset, self._apply, int)
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
        """Apply one polled batch; answer how many events it held."""
        return self.loop.run_once(timeout_s)

    def _apply(self, messages: list[Message]) -> int:
        dead: list[Outgoing] = []
        failed = 0
        connection = self.connection
        with connection.transaction(), connection.cursor() as cursor:
            stale = stale_accounts(cursor, self.name)
            for message in messages:
                failed += not self._project(connection, cursor, message, stale, dead)
                if message is messages[len(messages) // 2]:
                    crash_point("projector.mid_batch")
            if dead:
                self.producer.produce_batch(dead)
            self._store_positions(cursor, messages)
        logger.debug(
            "projector.applied", events=len(messages), dead_letters=len(dead), failed=failed
        )
        return len(messages)

    def _project(
        self,
        connection: psycopg.Connection[Any],
        cursor: psycopg.Cursor[Any],
        message: Message,
        stale: set[str],
        dead: list[Outgoing],
    ) -> bool:
        """Apply one message's event unless its account is stale; False if it failed now."""
        event = self._event(message, dead)
        if event is None:
            return True
        owner = owner_of(event[1])
        if owner is not None and owner in stale:
            return True  # frozen at the event before its failure, until rebuilt
        if self._apply_event(connection, cursor, message, *event):
            return True
        if owner is not None:
            stale.add(owner)
        return False

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
