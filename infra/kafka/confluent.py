"""The confluent-kafka (librdkafka) implementations of the ledger's Kafka protocols.

Selected with LEDGER_KAFKA_CLIENT=confluent-kafka; needs the extra `billing-ledger[fast]`.
They behave as the kafka-python clients do: a producer batch returns once every message is
acknowledged, consumers read from the positions their caller seeks to, never from Kafka's
committed offsets.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, cast

import structlog
from confluent_kafka import (
    OFFSET_INVALID,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka import Message as RawMessage
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from infra.config import PLAINTEXT, KafkaSecurity, Settings
from infra.kafka.protocols import (
    MAX_REQUEST_BYTES,
    Headers,
    Message,
    Outgoing,
    Partition,
    TopicSpec,
)

logger = structlog.get_logger(__name__)

DELIVERY_TIMEOUT_S = 30.0
METADATA_TIMEOUT_S = 10.0


def client_config(bootstrap: str, security: KafkaSecurity) -> dict[str, Any]:
    """librdkafka options shared by every client: servers, authentication, encryption.

    Without a CA bundle, TLS trusts the system's CAs (`probe` finds them; the wheel's own
    OpenSSL does not know where they are). A certificate file without a key file holds the
    key too, as kafka-python allows: librdkafka reads the key from the same file.
    """
    config: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        "security.protocol": security.security_protocol.lower(),
    }
    if security.uses_sasl:
        config["sasl.mechanism"] = security.sasl_mechanism
        config["sasl.username"] = security.sasl_username
        config["sasl.password"] = security.sasl_password
    if security.uses_tls:
        config["ssl.ca.location"] = security.ssl_cafile or "probe"
        if security.ssl_certfile:
            config["ssl.certificate.location"] = security.ssl_certfile
            config["ssl.key.location"] = security.ssl_keyfile or security.ssl_certfile
    return config


def producer_config(bootstrap: str, security: KafkaSecurity) -> dict[str, Any]:
    """An idempotent producer, acks=all, with the kafka-python producer's size limit."""
    return {
        **client_config(bootstrap, security),
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "message.max.bytes": MAX_REQUEST_BYTES,
    }


def consumer_config(bootstrap: str, group_id: str, settings: Settings) -> dict[str, Any]:
    """A consumer in `group_id` that never commits, nor creates topics by subscribing."""
    session_timeout_ms = settings.session_timeout_ms
    return {
        **client_config(bootstrap, settings.kafka_security),
        "group.id": group_id,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "allow.auto.create.topics": False,
        # A broker holds an empty fetch this long: it bounds the latency of a lone message.
        "fetch.wait.max.ms": 100,
        "session.timeout.ms": session_timeout_ms,
        "heartbeat.interval.ms": max(session_timeout_ms // 6, 100),
        # Never shorter than the session timeout, or group joins never complete.
        "max.poll.interval.ms": max(300_000, session_timeout_ms),
    }


class ConfluentProducer:
    """Producer on confluent-kafka: one flush per batch, every delivery report checked."""

    def __init__(self, bootstrap: str, security: KafkaSecurity = PLAINTEXT) -> None:
        self._producer = Producer(producer_config(bootstrap, security))

    def produce_batch(self, messages: Sequence[Outgoing]) -> None:
        """Queue every message, wait for all acknowledgements; raise the first failure."""
        failures: list[KafkaError] = []

        def delivered(error: KafkaError | None, _: RawMessage) -> None:
            if error is not None:
                failures.append(error)

        for message in messages:
            self._queue(message, delivered)
        left = self._producer.flush(DELIVERY_TIMEOUT_S)
        if failures:
            raise KafkaException(failures[0])
        if left:
            raise KafkaException(
                KafkaError(KafkaError._MSG_TIMED_OUT, f"{left} messages not acknowledged")
            )

    def _queue(self, message: Outgoing, delivered: Callable[[Any, Any], None]) -> None:
        while True:
            try:
                self._producer.produce(
                    message.topic,
                    value=message.value,
                    key=message.key,
                    headers=list(message.headers),
                    on_delivery=delivered,
                )
                return
            except BufferError:  # the local queue is full: let deliveries drain it
                self._producer.poll(0.1)

    def close(self) -> None:
        self._producer.flush(5)
        self._producer.close()


class ConfluentConsumer:
    """Consumer on confluent-kafka in a group; positions come from the caller, never from Kafka.

    librdkafka cannot seek a partition it is being assigned: seeks made by `on_assigned` are
    collected and become the offsets of the assignment itself.
    """

    def __init__(self, bootstrap: str, group_id: str, settings: Settings) -> None:
        self._consumer = Consumer(consumer_config(bootstrap, group_id, settings))
        self._batch_size = settings.batch_size
        self._assigning: dict[Partition, int] | None = None

    def subscribe(
        self,
        topics: Sequence[str],
        on_assigned: Callable[[list[Partition]], None],
        on_revoked: Callable[[list[Partition]], None],
    ) -> None:
        def assign(consumer: Consumer, assigned: list[TopicPartition]) -> None:
            offsets: dict[Partition, int] = {}
            self._assigning = offsets
            try:
                on_assigned(_partitions(assigned))
            finally:
                self._assigning = None
                consumer.assign(
                    [
                        TopicPartition(
                            tp.topic, tp.partition, offsets.get(_key(tp), OFFSET_INVALID)
                        )
                        for tp in assigned
                    ]
                )

        def revoke(_: Consumer, revoked: list[TopicPartition]) -> None:
            on_revoked(_partitions(revoked))

        self._consumer.subscribe(list(topics), on_assign=assign, on_revoke=revoke, on_lost=revoke)

    def poll_batch(self, timeout_s: float) -> list[Message]:
        return _poll_batch(self._consumer, self._batch_size, timeout_s)

    def seek(self, partition: Partition, offset: int) -> None:
        if self._assigning is not None:
            self._assigning[partition] = offset
        else:
            self._consumer.seek(TopicPartition(*partition, offset))

    def assignment(self) -> list[Partition]:
        return _partitions(self._consumer.assignment())

    def close(self) -> None:
        self._consumer.close()


class ConfluentReader:
    """A consumer outside any group on confluent-kafka: it reads what arrives after it was positioned."""

    def __init__(self, bootstrap: str, settings: Settings) -> None:
        config = consumer_config(bootstrap, f"{settings.consumer_group}-reader", settings)
        # librdkafka needs a group id even for a consumer that only assigns; it never joins.
        self._consumer = Consumer(config)
        self._batch_size = settings.batch_size

    def assign_at_end(self, topic: str) -> None:
        """Assign every partition of `topic` at its current end, resolved now, before the
        caller produces anything (a lazy OFFSET_END would be resolved at the first poll)."""
        metadata = self._consumer.list_topics(topic, timeout=METADATA_TIMEOUT_S)
        described = metadata.topics.get(topic)
        if described is None or described.error is not None or not described.partitions:
            raise KafkaException(KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART, topic))
        partitions = []
        for number in sorted(described.partitions):
            _, end = self._consumer.get_watermark_offsets(
                TopicPartition(topic, number), timeout=METADATA_TIMEOUT_S
            )
            partitions.append(TopicPartition(topic, number, end))
        self._consumer.assign(partitions)

    def assign_at_start(self, topic: str) -> dict[int, int]:
        """Assign every partition of `topic` at its earliest offset; answer those offsets
        (none when the broker has no such topic)."""
        metadata = self._consumer.list_topics(topic, timeout=METADATA_TIMEOUT_S)
        described = metadata.topics.get(topic)
        if described is None or described.error is not None or not described.partitions:
            return {}
        earliest = {}
        for number in sorted(described.partitions):
            start, _ = self._consumer.get_watermark_offsets(
                TopicPartition(topic, number), timeout=METADATA_TIMEOUT_S
            )
            earliest[number] = int(start)
        self._consumer.assign([TopicPartition(topic, n, o) for n, o in earliest.items()])
        return earliest

    def poll_batch(self, timeout_s: float) -> list[Message]:
        return _poll_batch(self._consumer, self._batch_size, timeout_s)

    def close(self) -> None:
        self._consumer.close()


class ConfluentAdmin:
    """Admin client on confluent-kafka."""

    def __init__(self, bootstrap: str, security: KafkaSecurity = PLAINTEXT) -> None:
        self._admin = AdminClient(client_config(bootstrap, security))

    def ensure_topics(self, specs: Iterable[TopicSpec]) -> set[str]:
        """Create the topics that do not exist yet; answer the names of those created."""
        existing = set(self._admin.list_topics(timeout=METADATA_TIMEOUT_S).topics)
        created: set[str] = set()
        for spec in specs:
            if spec.name in existing:
                continue
            topic = NewTopic(
                spec.name, spec.partitions, spec.replication_factor, config=dict(spec.configs)
            )
            try:
                self._admin.create_topics([topic])[spec.name].result()
            except KafkaException as error:
                if error.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS:
                    continue  # another worker created it first
                raise
            created.add(spec.name)
            logger.info("kafka.topic.created", topic=spec.name, partitions=spec.partitions)
        return created

    def cluster_id(self) -> str:
        cluster_id = self._admin.list_topics(timeout=METADATA_TIMEOUT_S).cluster_id
        if not cluster_id:
            raise KafkaException(
                KafkaError(KafkaError.UNKNOWN, "the broker did not say its cluster id")
            )
        return str(cluster_id)

    def close(self) -> None:
        """The admin client holds no resources to release explicitly."""


def _key(tp: TopicPartition) -> Partition:
    return (tp.topic, tp.partition)


def _partitions(tps: Iterable[TopicPartition]) -> list[Partition]:
    return sorted(_key(tp) for tp in tps)


def _poll_batch(consumer: Consumer, batch_size: int, timeout_s: float) -> list[Message]:
    """Wait up to `timeout_s` for a message, then take what else has arrived, a batch at most.

    `consume(n, timeout)` alone would wait the whole timeout whenever fewer than n arrive.
    """
    first = consumer.poll(timeout_s)
    if first is None:
        return []
    rest = consumer.consume(batch_size - 1, 0) if batch_size > 1 else []
    return _messages([first, *rest])


def _messages(raw: Iterable[RawMessage]) -> list[Message]:
    """The ledger's messages; a consumer error is raised if fatal, logged and skipped if not."""
    messages = []
    for record in raw:
        error = record.error()
        if error is not None:
            if error.fatal():
                raise KafkaException(error)
            logger.warning("kafka.consume.error", error=str(error))
            continue
        messages.append(
            Message(
                record.topic() or "",
                record.partition() or 0,
                record.offset() or 0,
                record.key(),
                record.value(),
                # null header values stay None, as kafka-python gives them
                cast(Headers, tuple(record.headers() or ())),
            )
        )
    return messages
