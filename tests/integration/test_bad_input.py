"""Bad input on a real partition: each message is rejected or dead-lettered, and the partition moves on."""

from __future__ import annotations

from typing import Any

import pytest
from kafka import KafkaProducer

from commands.consumer import MAX_COMMAND_BYTES
from infra.kafka import Outgoing, clients
from tests.helpers import CODEC, Servers, open_account, read_until, subscribe
from tests.integration.test_command_consumer import (  # noqa: F401 (fixture_handler is used by name)
    Handler,
    account_events,
    fixture_handler,
)
from wire.dead_letters import MAX_DEAD_LETTER_VALUE_BYTES
from wire.topics import COMMANDS_TOPIC, DEAD_LETTER_TOPIC

pytestmark = pytest.mark.integration
PARTITION = 0


def publish_to_partition(bootstrap: str, messages: list[tuple[bytes | None, bytes]]) -> None:
    """Publish (key, value) pairs to one partition of the commands topic, whatever their keys."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    try:
        for key, value in messages:
            producer.send(COMMANDS_TOPIC, key=key, value=value, partition=PARTITION)
        producer.flush()
    finally:
        producer.close()


def value(command_type: str, record: dict[str, Any]) -> bytes:
    """The encoded command."""
    return CODEC.encode(f"billing.commands.{command_type}", record)


class TestOnePartitionOfBadInput:
    """Oversized, unkeyed, wrongly keyed and rule-breaking commands between good ones.

    The NUL character (offset 7) would be stored in the events but block the balances
    projection, whose PostgreSQL text cannot hold it.
    """

    @pytest.fixture(name="sent")
    def fixture_sent(self, servers: Servers) -> list[tuple[bytes | None, bytes]]:
        """Offsets 0-9 of partition 0: good commands at 0, 4, 8 and 9, bad input between."""
        oversized = value("OpenAccount", open_account("acc-big", customer_reference="x" * 70_000))
        assert len(oversized) > MAX_COMMAND_BYTES
        sent: list[tuple[bytes | None, bytes]] = [
            (b"acc-h", value("OpenAccount", open_account("acc-h"))),
            (b"acc-big", oversized),
            (None, value("Subscribe", subscribe("acc-h"))),
            (b"acc-other", value("Subscribe", subscribe("acc-h"))),
            (b"acc-h", value("Subscribe", subscribe("acc-h"))),
            (
                b"acc-h",
                value("Subscribe", subscribe("acc-h", subscription_id="sub-2", price_minor=-1)),
            ),
            (b"ghost", value("Subscribe", subscribe("ghost"))),
            (b"acc-j", value("OpenAccount", open_account("acc-j", customer_reference="\x00"))),
            (b"acc-i", value("OpenAccount", open_account("acc-i"))),
            (b"acc-i", value("Subscribe", subscribe("acc-i"))),
        ]
        publish_to_partition(servers.kafka_bootstrap, sent)
        return sent

    def test_each_command_gets_its_answer_and_the_good_ones_are_accepted(
        self, sent: list[tuple[bytes | None, bytes]], handler: Handler
    ) -> None:
        """Rejections name their code and field; every good command, before or after, is accepted."""
        outcomes = handler.run_until(9)
        answers = {
            o.delivery.source.offset: o.rejection and (o.rejection.code, o.rejection.field)
            for o in outcomes
        }
        assert answers == {
            0: None,
            2: ("key_mismatch", "account_id"),
            3: ("key_mismatch", "account_id"),
            4: None,
            5: ("negative_amount", "price_minor"),
            6: ("unknown_account", "account_id"),
            7: ("invalid_text", "customer_reference"),
            8: None,
            9: None,
        }
        assert {o.delivery.source.partition for o in outcomes} == {PARTITION}

    def test_the_rejections_are_in_the_receipts_the_results_come_from(
        self, sent: list[tuple[bytes | None, bytes]], handler: Handler
    ) -> None:
        """The key rejections quote the key; their receipts hold them for the results topic."""
        outcomes = {o.delivery.source.offset: o for o in handler.run_until(9)}
        for offset, quoted in ((2, "the message had no key"), (3, "the key was 'acc-other'")):
            receipt = handler.ledger.receipt(outcomes[offset].delivery.command.command_id)
            assert receipt is not None and receipt.rejection is not None
            assert receipt.rejection.code == "key_mismatch"
            assert quoted in receipt.rejection.message

    def test_the_oversized_message_is_dead_lettered_whole(
        self, servers: Servers, sent: list[tuple[bytes | None, bytes]], handler: Handler
    ) -> None:
        """Its key and bytes, its source, the reason, its size and the limit."""
        handler.run_until(9)
        (dead,) = read_until(servers.kafka_bootstrap, DEAD_LETTER_TOPIC, lambda found: found)
        key, oversized = sent[1]
        assert (dead.key, dead.value) == (key, oversized)
        assert dead.headers["dead_letter.reason"] == b"oversized"
        assert dead.headers["dead_letter.size_bytes"] == str(len(oversized)).encode()
        assert dead.headers["dead_letter.max_bytes"] == b"65536"
        assert dead.headers["dead_letter.source_topic"] == COMMANDS_TOPIC.encode()
        assert dead.headers["dead_letter.source_partition"] == str(PARTITION).encode()
        assert dead.headers["dead_letter.source_offset"] == b"1"

    def test_the_stored_position_reaches_the_last_offset(
        self, servers: Servers, sent: list[tuple[bytes | None, bytes]], handler: Handler
    ) -> None:
        """Nothing blocks the partition; only the good commands changed accounts."""
        handler.run_until(9)
        name = handler.consumer.position_name((COMMANDS_TOPIC, PARTITION))
        assert handler.ledger.stored_position(name) == len(sent) - 1
        assert len(account_events(servers.database_url, "acc-h")) == 3
        assert len(account_events(servers.database_url, "acc-i")) == 3
        assert account_events(servers.database_url, "acc-big") == []
        assert account_events(servers.database_url, "ghost") == []
        assert account_events(servers.database_url, "acc-j") == []


class TestAMessageNearTheBrokersLimit:
    """A command of almost 1 MB: its dead letter still fits, and the partition moves on."""

    def test_it_is_dead_lettered_cut_and_the_next_command_is_processed(
        self, servers: Servers, handler: Handler
    ) -> None:
        """The dead letter holds the first 512 KiB with the full size; acc-n opens after it."""
        huge = b"\x01" * 1_000_000  # under Apache Kafka's 1,048,588 bytes per batch
        producer = KafkaProducer(
            bootstrap_servers=servers.kafka_bootstrap, acks="all", max_request_size=2_000_000
        )
        try:
            sends = [
                producer.send(COMMANDS_TOPIC, key=b"acc-huge", value=huge, partition=PARTITION),
                producer.send(
                    COMMANDS_TOPIC,
                    key=b"acc-n",
                    value=value("OpenAccount", open_account("acc-n")),
                    partition=PARTITION,
                ),
            ]
            producer.flush()
            for send in sends:
                send.get(timeout=30)  # a refused send fails here, not as a missing dead letter
        finally:
            producer.close()
        outcomes = handler.run_until(1)  # acc-n's, the only command
        assert outcomes and all(o.rejection is None for o in outcomes)
        assert handler.ledger.account("acc-n") is not None
        # A redelivery (a rebalance on a busy machine) writes the same dead letter again, with
        # the same id: the consumer's promise is one dead letter per message, by id.
        letters = read_until(servers.kafka_bootstrap, DEAD_LETTER_TOPIC, lambda found: found)
        (dead,) = {letter.headers["dead_letter.id"]: letter for letter in letters}.values()
        assert dead.value == huge[:MAX_DEAD_LETTER_VALUE_BYTES]
        assert dead.headers["dead_letter.original_bytes"] == b"1000000"
        assert dead.headers["dead_letter.reason"] == b"oversized"


class TestTombstones:
    """A tombstone (no value) is dead-lettered as a tombstone, keyed or not."""

    def test_the_dead_letters_carry_no_value_and_the_original_key(
        self, servers: Servers, handler: Handler
    ) -> None:
        """Both tombstones come back with value None, their key as it was, and an id each."""
        producer = clients(servers.kafka_bootstrap).producer()
        try:
            producer.produce_batch(
                [
                    Outgoing(COMMANDS_TOPIC, b"acc-t", None),
                    Outgoing(COMMANDS_TOPIC, None, None),
                    Outgoing(COMMANDS_TOPIC, b"acc-u", value("OpenAccount", open_account("acc-u"))),
                ]
            )
        finally:
            producer.close()
        (outcome,) = handler.run_until(1)
        assert outcome.rejection is None
        # The tombstones may sit on other partitions than the command, handled after it: the
        # consumer polls on until both dead letters are there.
        letters: list[Any] = []
        for _ in range(40):
            letters = read_until(
                servers.kafka_bootstrap, DEAD_LETTER_TOPIC, lambda found: len(found) >= 2, 1.0
            )
            if len(letters) >= 2:
                break
            handler.outcomes.extend(handler.consumer.run_once(timeout_s=0.2))
        assert sorted((d.key or b"", d.value) for d in letters) == [(b"", None), (b"acc-t", None)]
        assert {d.key for d in letters} == {None, b"acc-t"}
        assert {d.headers["dead_letter.reason"] for d in letters} == {b"not_single_object_encoded"}
        ids = {d.headers["dead_letter.id"] for d in letters}
        assert len(ids) == 2
