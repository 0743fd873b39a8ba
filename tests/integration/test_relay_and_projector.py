"""The relay publishes the event store to Kafka at least once; the projector applies each event once."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from commands.handlers import Delivery, process
from commands.mapping import content_digest
from commands.table import command_from_record
from commands.unit_of_work import UnitOfWork
from infra.config import Settings
from infra.kafka import Producer, clients
from ledger.application import BillingLedger
from ledger.receipts import Source
from outbox.relay import EventRelay
from projections.balances import Balances
from projections.projector import Projector
from runtime.runner import open_ledger
from tests.helpers import (
    CODEC,
    KAFKA_CLIENT,
    SESSION_TIMEOUT_MS,
    Servers,
    kafka_clients,
    open_account,
    read_until,
    subscribe,
)
from wire.topics import EVENTS_TOPIC

pytestmark = pytest.mark.integration


@pytest.fixture(name="ledger")
def fixture_ledger(servers: Servers) -> Iterator[BillingLedger]:
    """The ledger on the test's database, holding one account with a subscription (3 events)."""
    ledger = open_ledger(servers.database_url)
    save_commands(
        ledger, [("OpenAccount", open_account("acc-r")), ("Subscribe", subscribe("acc-r"))]
    )
    yield ledger
    ledger.close()


def save_commands(
    ledger: BillingLedger, commands: list[tuple[str, dict[str, Any]]], first_offset: int = 0
) -> None:
    """Process `commands` (read from consecutive offsets) as one batch and save what changed."""
    deliveries = [
        Delivery(
            command_from_record(kind, record),
            kind,
            content_digest(kind, record),
            Source("billing.commands", 0, offset),
        )
        for offset, (kind, record) in enumerate(commands, start=first_offset)
    ]
    work = UnitOfWork(ledger)
    process(work, deliveries, frozenset())
    ledger.save(*work.changed)


@pytest.fixture(name="producer")
def fixture_producer(servers: Servers) -> Iterator[Producer]:
    """A producer on the test's broker."""
    producer = kafka_clients(servers.kafka_bootstrap).producer()
    yield producer
    producer.close()


def account_events(servers: Servers, count: int) -> list[tuple[bytes, bytes]]:
    """(event_id, event_position) headers of acc-r's messages on billing.events."""
    reads = read_until(
        servers.kafka_bootstrap,
        EVENTS_TOPIC,
        lambda found: len([r for r in found if r.key == b"acc-r"]) >= count,
    )
    return [
        (r.headers["event_id"], r.headers["event_position"]) for r in reads if r.key == b"acc-r"
    ]


class TestRelay:
    """Stored events reach billing.events in order, once per cluster position."""

    def test_publishes_and_stores_its_position(
        self, servers: Servers, ledger: BillingLedger, producer: Producer
    ) -> None:
        """Three account events and two results are published; the position is the last id."""
        relay = EventRelay(ledger, producer, CODEC, servers.database_url, "cluster-a")
        try:
            assert relay.run_once() == 5
            assert relay.run_once() == 0
            assert relay.position() == ledger.recorder.max_notification_id()
        finally:
            relay.close()
        events = account_events(servers, 3)
        assert [position for _, position in events] == sorted(position for _, position in events)

    def test_a_new_cluster_gets_the_whole_history_with_the_same_ids(
        self, servers: Servers, ledger: BillingLedger, producer: Producer
    ) -> None:
        """A relay for another cluster id starts from the beginning; event ids do not change."""
        first = EventRelay(ledger, producer, CODEC, servers.database_url, "cluster-a")
        first.run_once()
        first.close()
        second = EventRelay(ledger, producer, CODEC, servers.database_url, "cluster-b")
        try:
            assert second.position() == 0
            assert second.run_once() == 5
        finally:
            second.close()
        events = account_events(servers, 6)
        assert events[:3] == events[3:]

    def test_only_one_relay_leads(
        self, servers: Servers, ledger: BillingLedger, producer: Producer
    ) -> None:
        """While one relay holds the lead, another publishes nothing."""
        leader = EventRelay(ledger, producer, CODEC, servers.database_url, "cluster-a")
        follower = EventRelay(ledger, producer, CODEC, servers.database_url, "cluster-a")
        try:
            assert leader.run_once() == 5
            assert follower.run_once() == 0
        finally:
            leader.close()
        try:
            assert follower.run_once() == 0  # nothing left: the leader stored its position
        finally:
            follower.close()

    def test_a_relay_that_lost_its_lead_reads_the_position_again_when_it_leads_anew(
        self, servers: Servers, ledger: BillingLedger, producer: Producer
    ) -> None:
        """Its lock connection killed, the relay stops; another leads and publishes on; the
        first, leading again, resumes from the other's position, not from the one it held."""
        first = EventRelay(ledger, producer, CODEC, servers.database_url, "cluster-a")
        second = EventRelay(ledger, producer, CODEC, servers.database_url, "cluster-a")
        try:
            assert first.run_once() == 5
            with psycopg.connect(servers.database_url, autocommit=True) as admin:
                pid = first._leader.get().info.backend_pid
                admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
            with pytest.raises(psycopg.OperationalError):
                first.run_once()  # the lead is lost: nothing is published on it
            save_commands(ledger, [("OpenAccount", open_account("acc-s"))], first_offset=2)
            assert second.run_once() == 2  # the lock went with the connection
            second.close()
            assert first.run_once() == 0  # leads anew: the second relay published those two
            assert first.position() == ledger.recorder.max_notification_id()
        finally:
            first.close()
            second.close()


class TestProjector:
    """Events applied to the balances read model once, whatever Kafka delivers twice."""

    def test_republished_events_are_applied_once(
        self, servers: Servers, ledger: BillingLedger, producer: Producer
    ) -> None:
        """The history published twice still gives one invoice's receivable."""
        for cluster in ("cluster-a", "cluster-b"):
            relay = EventRelay(ledger, producer, CODEC, servers.database_url, cluster)
            relay.run_once()
            relay.close()
        settings = Settings(
            servers.database_url,
            servers.kafka_bootstrap,
            session_timeout_ms=SESSION_TIMEOUT_MS,
            kafka_client=KAFKA_CLIENT,
        )
        consumer = clients(servers.kafka_bootstrap, settings).consumer("test-projector")
        connection = psycopg.connect(servers.database_url)
        projector = Projector(
            "read-models",
            [Balances()],
            consumer,
            producer,
            CODEC,
            servers.database_url,
            "cluster-a",
        )
        projector.subscribe([EVENTS_TOPIC])
        try:
            applied = 0
            for _ in range(100):
                applied += projector.run_once(timeout_s=0.2)
                if applied >= 6:
                    break
            row = connection.execute(
                "SELECT receivable_minor, invoiced_minor, subscriptions, account_version "
                "FROM balances WHERE account_id = 'acc-r'"
            ).fetchone()
            assert applied == 6
            assert row == (999, 999, 1, 3)
            partitions = connection.execute(
                "SELECT count(*) FROM projection_positions WHERE cluster_id = 'cluster-a'"
            ).fetchone()
            assert partitions == (1,)
        finally:
            consumer.close()
            projector.close()
            connection.close()
