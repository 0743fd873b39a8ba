"""Where tansu and Apache Kafka behave differently, the ledger is correct on both.

Each test runs on the session's broker (LEDGER_EMBEDDED_BROKER); .ci/run runs this file on both.
What differs is in bench/README.md ("The two brokers"); here is what the ledger relies on.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest
from kafka import KafkaAdminClient, KafkaProducer
from kafka.errors import KafkaTimeoutError

from infra.config import Settings
from infra.kafka import Consumer, Message, Outgoing, Partition, clients
from local import embedded
from runtime.runner import connect_kafka, topic_specs
from tests.helpers import KAFKA_CLIENT, SESSION_TIMEOUT_MS, Servers, kafka_clients, wait_for
from wire.dead_letters import MAX_DEAD_LETTER_VALUE_BYTES
from wire.topics import COMMANDS_TOPIC, EVENTS_TOPIC

pytestmark = pytest.mark.integration
# Apache Kafka's default message.max.bytes (1 MiB + 12), which the embedded one keeps.
APACHE_KAFKA_MESSAGE_LIMIT = 1_048_588


def on_apache_kafka() -> bool:
    """Whether the tests run on Apache Kafka: the embedded one, or a configured broker."""
    return bool(os.environ.get("LEDGER_KAFKA_BOOTSTRAP")) or (
        embedded.broker_kind() == "apache-kafka"
    )


def settings_for(servers: Servers, batch_size: int = 100) -> Settings:
    """The ledger's settings on the test's servers, with the tests' short session timeout."""
    return Settings(
        servers.database_url,
        servers.kafka_bootstrap,
        batch_size=batch_size,
        session_timeout_ms=SESSION_TIMEOUT_MS,
        kafka_client=KAFKA_CLIENT,
    )


def joined(consumer: Consumer, topic: str) -> Iterator[list[Message]]:
    """Subscribe, then answer each poll's messages (the first polls complete the join)."""
    consumer.subscribe([topic], on_assigned=lambda _: None, on_revoked=lambda _: None)
    while True:
        yield consumer.poll_batch(timeout_s=0.2)


def read_at_least(polls: Iterator[list[Message]], count: int) -> list[Message]:
    """The messages of as many polls as it takes to read `count` (or a minute)."""
    read: list[Message] = []

    def enough() -> bool:
        read.extend(next(polls))
        return len(read) >= count

    wait_for(enough, timeout_s=60)
    return read


def assigned(consumer: Consumer, polls: Iterator[list[Message]]) -> list[Partition]:
    """The consumer's partitions after one more poll (a poll takes part in a rebalance)."""
    next(polls)
    return consumer.assignment()


def produce(servers: Servers, messages: list[Outgoing]) -> None:
    """Produce through the ledger's own producer, as the relay and the dead letters do."""
    producer = kafka_clients(servers.kafka_bootstrap).producer()
    try:
        producer.produce_batch(messages)
    finally:
        producer.close()


class TestEndOffsetsOfBatches:
    """tansu's ListOffsets answers a batch's first offset + 1; the ledger counts from fetches."""

    def test_the_high_watermark_counts_every_record_of_one_batch(self, servers: Servers) -> None:
        """25 records sent as one batch to one partition: its high watermark is 25 on both."""
        produce(servers, [Outgoing(EVENTS_TOPIC, b"acc-1", b"%d" % n) for n in range(25)])
        marks = kafka_clients(servers.kafka_bootstrap).high_watermarks(EVENTS_TOPIC, {})
        assert sorted(marks.values()) == [0, 0, 25]

    def test_the_marks_from_a_stored_position_count_what_follows(self, servers: Servers) -> None:
        """From offset 20 of those 25 (a projector's position), the mark is still 25: lag 5."""
        produce(servers, [Outgoing(EVENTS_TOPIC, b"acc-1", b"%d" % n) for n in range(25)])
        kafka = kafka_clients(servers.kafka_bootstrap)
        (partition,) = [p for p, mark in kafka.high_watermarks(EVENTS_TOPIC, {}).items() if mark]
        assert kafka.high_watermarks(EVENTS_TOPIC, {partition: 20})[partition] == 25


class TestRecordBatchSizes:
    """Batches of the ledger's producers stay under Apache Kafka's limit; a poll is one batch."""

    def test_a_burst_over_the_brokers_limit_arrives_whole_and_in_order(
        self, servers: Servers
    ) -> None:
        """Six dead-letter-sized values (3 MiB in all) in one produce: all six read back in order."""
        values = [bytes([n]) * MAX_DEAD_LETTER_VALUE_BYTES for n in range(6)]
        assert sum(map(len, values)) > 2 * APACHE_KAFKA_MESSAGE_LIMIT
        produce(servers, [Outgoing(COMMANDS_TOPIC, b"acc-1", v) for v in values])
        consumer = clients(servers.kafka_bootstrap, settings_for(servers)).consumer("test-sizes")
        try:
            read = read_at_least(joined(consumer, COMMANDS_TOPIC), 6)
        finally:
            consumer.close()
        assert [m.value for m in read] == values
        assert [m.offset for m in read] == list(range(6))

    def test_no_poll_returns_more_than_the_batch_size(self, servers: Servers) -> None:
        """250 records in one produce, batch size 100: every poll has at most 100, all arrive once."""
        produce(servers, [Outgoing(COMMANDS_TOPIC, b"acc-1", b"%d" % n) for n in range(250)])
        settings = settings_for(servers, batch_size=100)
        consumer = clients(servers.kafka_bootstrap, settings).consumer("test-batches")
        try:
            polls = joined(consumer, COMMANDS_TOPIC)
            batches = [read_at_least(polls, 1) for _ in range(3)]
            batches.append(read_at_least(polls, 250 - sum(map(len, batches))))
        finally:
            consumer.close()
        sizes = [len(batch) for batch in batches]
        offsets = [m.offset for batch in batches for m in batch]
        assert max(sizes) <= 100, sizes
        assert offsets == list(range(250))


class TestAnOversizedMessage:
    """Apache Kafka refuses a message over 1 MiB with MESSAGE_TOO_LARGE; tansu takes it."""

    def test_the_broker_answers_as_documented(self, servers: Servers) -> None:
        """1.5 MiB through the ledger's producer: an error naming the size on Apache Kafka."""
        oversized = Outgoing(COMMANDS_TOPIC, b"acc-1", b"\x01" * (3 * 1024 * 1024 // 2))
        if on_apache_kafka():
            # Error code 10, as each client names it.
            with pytest.raises(Exception, match=r"MessageSizeTooLarge|MSG_SIZE_TOO_LARGE"):
                produce(servers, [oversized])
        else:
            produce(servers, [oversized])  # tansu does not enforce a limit
        marks = kafka_clients(servers.kafka_bootstrap).high_watermarks(COMMANDS_TOPIC, {})
        assert sum(marks.values()) == (0 if on_apache_kafka() else 1)

    def test_the_largest_dead_letter_the_ledger_writes_fits(self, servers: Servers) -> None:
        """A cut dead letter (512 KiB) with long headers is accepted by either broker."""
        headers = tuple((f"dead_letter.h{n}", b"x" * 1024) for n in range(16))
        letter = Outgoing(
            COMMANDS_TOPIC, b"k" * 1024, b"\x02" * MAX_DEAD_LETTER_VALUE_BYTES, headers
        )
        produce(servers, [letter])
        marks = kafka_clients(servers.kafka_bootstrap).high_watermarks(COMMANDS_TOPIC, {})
        assert sum(marks.values()) == 1


class TestMissingTopics:
    """Apache Kafka creates no topic on its own (as docker-compose.yml); the ledger creates its."""

    @pytest.fixture(name="bare_broker")
    def fixture_bare_broker(self, servers: Servers) -> Iterator[str]:
        """The test's broker without the ledger's topics."""
        admin = KafkaAdminClient(bootstrap_servers=servers.kafka_bootstrap)
        try:
            names = [spec.name for spec in topic_specs(Settings(None, None))]
            admin.delete_topics(names, timeout_ms=30_000)
            wait_for(lambda: not set(names) & set(admin.list_topics()), timeout_s=60)
            yield servers.kafka_bootstrap
        finally:
            admin.close()

    def test_the_ledger_creates_each_topic_with_its_partitions(
        self, servers: Servers, bare_broker: str
    ) -> None:
        """`ledger run`'s start creates all four topics, three partitions each, on both brokers."""
        settings = settings_for(servers)
        connect_kafka(settings, servers.database_url, bare_broker)
        kafka = clients(bare_broker, settings)
        every = list(range(settings.topic_partitions))
        for spec in topic_specs(settings):
            # A partition answers once its leader is elected, a moment after the creation.
            wait_for(lambda name=spec.name: sorted(kafka.high_watermarks(name, {})) == every, 30)

    def test_a_producer_to_a_missing_topic_creates_it_only_on_tansu(self, bare_broker: str) -> None:
        """Apache Kafka never answers for the topic; tansu makes one of its own choosing."""
        producer = KafkaProducer(bootstrap_servers=bare_broker, max_block_ms=3000)
        try:
            if on_apache_kafka():
                with pytest.raises(KafkaTimeoutError):
                    producer.send(COMMANDS_TOPIC, b"x").get(timeout=10)
            else:
                producer.send(COMMANDS_TOPIC, b"x").get(timeout=10)
        finally:
            producer.close()
        admin = KafkaAdminClient(bootstrap_servers=bare_broker)
        try:
            assert (COMMANDS_TOPIC in admin.list_topics()) is not on_apache_kafka()
        finally:
            admin.close()


class TestGroupJoin:
    """Joins take about half the session timeout on tansu and far less on Apache Kafka."""

    def test_two_members_share_the_partitions_and_one_leaving_hands_them_over(
        self, servers: Servers, record_property: pytest.RecordProperty
    ) -> None:
        """The first member gets all three partitions; with a second, each gets some, none twice."""
        kafka = clients(servers.kafka_bootstrap, settings_for(servers))
        first, second = kafka.consumer("test-join"), kafka.consumer("test-join")
        everything = [(COMMANDS_TOPIC, p) for p in range(3)]
        try:
            started = time.monotonic()
            first_polls = joined(first, COMMANDS_TOPIC)
            wait_for(lambda: assigned(first, first_polls) == everything, timeout_s=60)
            record_property("first_join_s", round(time.monotonic() - started, 2))
            second_polls = joined(second, COMMANDS_TOPIC)

            def shared() -> bool:
                mine, theirs = assigned(first, first_polls), assigned(second, second_polls)
                return bool(mine and theirs) and sorted(mine + theirs) == everything

            wait_for(shared, timeout_s=60)
        finally:
            second.close()
        try:
            wait_for(lambda: assigned(first, first_polls) == everything, timeout_s=60)
        finally:
            first.close()
