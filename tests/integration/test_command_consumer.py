"""Commands from the real broker become events and positions in real PostgreSQL, once."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pytest

from commands.consumer import CommandConsumer
from commands.handlers import Outcome
from infra.config import Settings
from infra.kafka import clients
from ledger.account import account_uuid
from ledger.application import BillingLedger, event_id
from runtime.runner import open_ledger
from tests.helpers import (
    CODEC,
    KAFKA_CLIENT,
    SESSION_TIMEOUT_MS,
    Servers,
    command_message,
    kafka_clients,
    open_account,
    publish,
    read_until,
    subscribe,
)
from wire.topics import COMMANDS_TOPIC, DEAD_LETTER_TOPIC

pytestmark = pytest.mark.integration


@dataclass
class Handler:
    """A command consumer wired to the test's servers, and what it answered so far."""

    consumer: CommandConsumer
    ledger: BillingLedger
    outcomes: list[Outcome]

    def run_until(self, count: int, max_polls: int = 200) -> list[Outcome]:
        """Poll until `count` outcomes in all (the first poll also joins the group)."""
        for _ in range(max_polls):
            if len(self.outcomes) >= count:
                break
            self.outcomes.extend(self.consumer.run_once(timeout_s=0.2))
        return self.outcomes


@pytest.fixture(name="handler")
def fixture_handler(servers: Servers) -> Iterator[Handler]:
    """A command consumer on the test's servers, in a consumer group of its own."""
    settings = Settings(
        servers.database_url,
        servers.kafka_bootstrap,
        batch_size=100,
        session_timeout_ms=SESSION_TIMEOUT_MS,
        kafka_client=KAFKA_CLIENT,
    )
    ledger = open_ledger(servers.database_url)
    # A group of its own: on a broker shared by the session, a member an earlier test left
    # behind must not hold up this one's join.
    kafka = clients(servers.kafka_bootstrap, settings).consumer(f"test-commands-{uuid.uuid4().hex}")
    producer = kafka_clients(servers.kafka_bootstrap).producer()
    admin = kafka_clients(servers.kafka_bootstrap).admin()
    cluster_id = admin.cluster_id()
    admin.close()
    consumer = CommandConsumer(ledger, kafka, producer, CODEC, cluster_id)
    consumer.subscribe([COMMANDS_TOPIC])
    yield Handler(consumer, ledger, [])
    kafka.close()
    producer.close()
    ledger.close()


def account_events(database_url: str, account_id: str) -> list[tuple[int, str]]:
    """(version, topic) of every stored event of the account."""
    with psycopg.connect(database_url) as connection:
        rows = connection.execute(
            "SELECT originator_version, topic FROM billing_events WHERE originator_id = %s "
            "ORDER BY originator_version",
            (account_uuid(account_id),),
        ).fetchall()
    return [(int(version), str(topic)) for version, topic in rows]


class TestAcceptedCommands:
    """Accepted commands are stored as events with the positions they came from."""

    def test_open_and_subscribe_store_three_events(
        self, servers: Servers, handler: Handler
    ) -> None:
        """OpenAccount then Subscribe store AccountOpened, Subscribed and InvoiceIssued."""
        publish(
            servers.kafka_bootstrap,
            [
                command_message("OpenAccount", open_account("acc-a")),
                command_message("Subscribe", subscribe("acc-a")),
            ],
        )
        outcomes = handler.run_until(2)
        assert [o.rejection for o in outcomes] == [None, None]
        topics = [
            topic.rpartition(".")[2] for _, topic in account_events(servers.database_url, "acc-a")
        ]
        assert topics == ["Opened", "Subscribed", "InvoiceIssued"]
        assert outcomes[1].event_ids == (
            event_id(account_uuid("acc-a"), 2),
            event_id(account_uuid("acc-a"), 3),
        )

    def test_position_is_stored_with_the_events(self, servers: Servers, handler: Handler) -> None:
        """The offset of the last command of the batch is stored for its partition."""
        publish(servers.kafka_bootstrap, [command_message("OpenAccount", open_account("acc-b"))])
        (outcome,) = handler.run_until(1)
        source = outcome.delivery.source
        name = handler.consumer.position_name((source.topic, source.partition))
        assert handler.ledger.stored_position(name) == source.offset


class TestRedelivery:
    """A command delivered twice changes the ledger once."""

    def test_same_offset_replayed_is_skipped(self, servers: Servers, handler: Handler) -> None:
        """Seeking back over stored offsets reprocesses nothing."""
        publish(
            servers.kafka_bootstrap,
            [
                command_message("OpenAccount", open_account("acc-c")),
                command_message("Subscribe", subscribe("acc-c")),
            ],
        )
        outcomes = handler.run_until(2)
        partition = (COMMANDS_TOPIC, outcomes[0].delivery.source.partition)
        handler.consumer.consumer.seek(partition, 0)
        replayed = [handler.consumer.run_once(timeout_s=0.5) for _ in range(5)]
        assert all(batch == [] for batch in replayed)
        assert len(account_events(servers.database_url, "acc-c")) == 3

    def test_same_command_id_at_new_offset_gets_the_original_answer(
        self, servers: Servers, handler: Handler
    ) -> None:
        """The same command at a new offset is answered as a redelivery with the same event ids."""
        command = subscribe("acc-d")
        publish(
            servers.kafka_bootstrap,
            [
                command_message("OpenAccount", open_account("acc-d")),
                command_message("Subscribe", command),
            ],
        )
        first = handler.run_until(2)[1]
        publish(servers.kafka_bootstrap, [command_message("Subscribe", command)])
        again = handler.run_until(3)[2]
        assert again.redelivery and again.event_ids == first.event_ids
        assert again.delivery.source.offset > first.delivery.source.offset
        assert len(account_events(servers.database_url, "acc-d")) == 3

    def test_reused_command_id_with_other_content_is_rejected(
        self, servers: Servers, handler: Handler
    ) -> None:
        """A command_id reused for different content is rejected and changes nothing."""
        command = subscribe("acc-e")
        publish(
            servers.kafka_bootstrap,
            [
                command_message("OpenAccount", open_account("acc-e")),
                command_message("Subscribe", command),
            ],
        )
        handler.run_until(2)
        publish(
            servers.kafka_bootstrap,
            [command_message("Subscribe", command | {"subscription_id": "sub-2"})],
        )
        reused = handler.run_until(3)[2]
        assert reused.rejection is not None
        assert (reused.rejection.code, reused.rejection.field) == (
            "command_id_reused",
            "command_id",
        )
        assert len(account_events(servers.database_url, "acc-e")) == 3


class TestBadInput:
    """Bad input is answered or dead-lettered, and never blocks the partition."""

    def test_rule_violation_is_rejected_with_code_and_field(
        self, servers: Servers, handler: Handler
    ) -> None:
        """Subscribing an account that was never opened is rejected unknown_account."""
        publish(servers.kafka_bootstrap, [command_message("Subscribe", subscribe("ghost"))])
        (outcome,) = handler.run_until(1)
        assert outcome.rejection is not None
        assert (outcome.rejection.code, outcome.rejection.field) == (
            "unknown_account",
            "account_id",
        )
        assert account_events(servers.database_url, "ghost") == []

    def test_undecodable_bytes_go_to_dead_letter_and_the_next_command_runs(
        self, servers: Servers, handler: Handler
    ) -> None:
        """Garbage and an unknown fingerprint are dead-lettered whole; the command after them runs."""
        unknown_fingerprint = b"\xc3\x01" + b"\x00" * 8 + b"\x02"
        publish(
            servers.kafka_bootstrap,
            [
                (b"acc-f", b"not avro at all"),
                (b"acc-f", unknown_fingerprint),
                command_message("OpenAccount", open_account("acc-f")),
            ],
        )
        (outcome,) = handler.run_until(1)
        assert outcome.rejection is None and outcome.delivery.source.offset == 2
        dead = read_until(servers.kafka_bootstrap, DEAD_LETTER_TOPIC, lambda found: len(found) >= 2)
        assert [d.value for d in dead] == [b"not avro at all", unknown_fingerprint]
        assert [d.headers["dead_letter.reason"] for d in dead] == [
            b"not_single_object_encoded",
            b"unknown_schema_fingerprint",
        ]
        assert [d.headers["dead_letter.source_offset"] for d in dead] == [b"0", b"1"]
        assert all(d.headers["dead_letter.source_topic"] == COMMANDS_TOPIC.encode() for d in dead)


class TestFailedBatches:
    """A batch that fails to save is read again: nothing is skipped."""

    def test_a_batch_that_failed_is_processed_after_the_database_recovers(
        self, servers: Servers, handler: Handler
    ) -> None:
        """With the events table briefly unusable, the command waits for it instead of being lost."""
        publish(servers.kafka_bootstrap, [command_message("OpenAccount", open_account("warm-up"))])
        handler.run_until(1)  # joined, and the tables exist
        publish(servers.kafka_bootstrap, [command_message("OpenAccount", open_account("acc-g"))])
        with psycopg.connect(servers.database_url, autocommit=True) as admin:
            admin.execute("ALTER TABLE billing_events RENAME TO billing_events_away")
            failures = 0
            for _ in range(50):
                try:
                    handler.consumer.run_once(timeout_s=0.2)
                except Exception:
                    failures += 1
                    break
            admin.execute("ALTER TABLE billing_events_away RENAME TO billing_events")
        assert failures == 1, "the batch never reached the database"
        outcome = handler.run_until(2)[1]
        assert outcome.delivery.command.account_id == "acc-g"
        assert outcome.rejection is None
        assert len(account_events(servers.database_url, "acc-g")) == 1
