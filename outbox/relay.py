"""The outbox relay: publishes the event store's notification log to Kafka, in order, at least once.

Events reach Kafka only from here, never by writing to Kafka and PostgreSQL separately. The
last published notification id is stored in PostgreSQL per Kafka cluster, so a new (empty)
cluster gets the whole history again. One relay publishes at a time: the leader holds a lock
on the table ledger_relay_leader in a transaction left open on a connection of its own, which
only the ledger's role can take; the others try again on each step. The leader reads the
stored position when it takes the lead and keeps it while the lead holds.
"""

from __future__ import annotations

from typing import Any

import psycopg
import structlog

from infra.faults import crash_point
from infra.kafka import Producer
from infra.postgres import (
    RELAY_LEADER_TABLE,
    Reconnecting,
    create_tables,
    ensure_lock_table,
    exempt_from_idle_timeout,
    try_lead,
)
from ledger.application import BillingLedger
from wire.codec import AvroCodec
from wire.stored_events import StoredMessages

logger = structlog.get_logger(__name__)

CREATE_POSITIONS = """
CREATE TABLE IF NOT EXISTS ledger_relay_positions (
    cluster_id text NOT NULL,
    relay text NOT NULL,
    notification_id bigint NOT NULL,
    PRIMARY KEY (cluster_id, relay)
)"""


class EventRelay:
    """Publishes stored events to billing.events and receipts to billing.command-results."""

    name = "events"

    def __init__(
        self,
        ledger: BillingLedger,
        producer: Producer,
        codec: AvroCodec,
        database_url: str,
        cluster_id: str,
        batch_size: int = 1000,
    ) -> None:
        self.ledger = ledger
        self.producer = producer
        self.codec = codec
        self.cluster_id = cluster_id
        self.batch_size = batch_size
        self._messages = StoredMessages(ledger.mapper, codec)
        self._database = Reconnecting(database_url, autocommit=True, on_connect=create_table)
        self._database.get()
        # The lead is a lock held in an open transaction of this connection: a new connection
        # leads only once it takes the lock again.
        self._leader = Reconnecting(database_url, on_connect=_prepare_leader)
        self._leading_on: object | None = None
        # The stored position, read when the lead is taken and kept while it is held: only the
        # leader stores it, so it changes under this relay only after a lead lost and taken anew.
        self._published = 0

    def run_once(self) -> int:
        """Publish the next batch of stored events; answer how many were published."""
        if not self._lead():
            return 0
        notifications = self.ledger.recorder.select_notifications(
            start=self._published, limit=self.batch_size, inclusive_of_start=False
        )
        if not notifications:
            return 0
        messages = [self._messages(n) for n in notifications]
        self.producer.produce_batch(messages)
        crash_point("relay.after_produce")
        last = notifications[-1].id
        self._store(last)
        logger.debug("relay.published", count=len(messages), notification_id=last)
        return len(messages)

    def position(self) -> int:
        """The id of the last notification published to this cluster (0 for none)."""
        row = (
            self._database.get()
            .execute(
                "SELECT notification_id FROM ledger_relay_positions WHERE cluster_id=%s AND relay=%s",
                (self.cluster_id, self.name),
            )
            .fetchone()
        )
        return int(row[0]) if row else 0

    def close(self) -> None:
        """Release the lead and the connections."""
        self._leader.close()
        self._database.close()

    def _store(self, notification_id: int) -> None:
        self._database.get().execute(
            "INSERT INTO ledger_relay_positions VALUES (%s, %s, %s) "
            "ON CONFLICT (cluster_id, relay) DO UPDATE SET notification_id = EXCLUDED.notification_id",
            (self.cluster_id, self.name, notification_id),
        )
        self._published = notification_id

    def _lead(self) -> bool:
        connection = self._leader.get()
        if self._leading_on is connection:
            connection.execute("SELECT 1")  # raises if the connection, and so the lead, is lost
            return True
        if try_lead(connection, RELAY_LEADER_TABLE):
            self._published = self.position()  # another leader may have moved it meanwhile
            self._leading_on = connection
            logger.info("relay.leading", cluster_id=self.cluster_id, position=self._published)
        return self._leading_on is connection


def _prepare_leader(connection: psycopg.Connection[Any]) -> None:
    ensure_lock_table(connection, RELAY_LEADER_TABLE)
    exempt_from_idle_timeout(connection)


def create_table(connection: psycopg.Connection[Any]) -> None:
    """Create the relay positions table unless it exists, one relay at a time."""
    create_tables(connection, CREATE_POSITIONS)
