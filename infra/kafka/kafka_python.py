"""The kafka-python implementations of the ledger's Kafka protocols (the default client)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import structlog
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.errors import KafkaError, TopicAlreadyExistsError
from kafka.serializer import Serializer

from infra.config import PLAINTEXT, KafkaSecurity, Settings
from infra.kafka.protocols import MAX_REQUEST_BYTES, Message, Outgoing, Partition, TopicSpec

logger = structlog.get_logger(__name__)


def client_options(bootstrap: str, security: KafkaSecurity) -> dict[str, Any]:
    """kafka-python options shared by every client: servers, authentication, encryption.

    The names are kafka-python 3.0's: its sasl_plain_* options carry the credentials of the
    SCRAM mechanisms too.
    """
    options: dict[str, Any] = {
        "bootstrap_servers": bootstrap.split(","),
        "security_protocol": security.security_protocol,
    }
    if security.uses_sasl:
        options["sasl_mechanism"] = security.sasl_mechanism
        options["sasl_plain_username"] = security.sasl_username
        options["sasl_plain_password"] = security.sasl_password
    if security.uses_tls:
        tls_files = {
            "ssl_cafile": security.ssl_cafile,
            "ssl_certfile": security.ssl_certfile,
            "ssl_keyfile": security.ssl_keyfile,
        }
        options.update({name: path for name, path in tls_files.items() if path})
    return options


class _NoKey:
    """Stands for an absent key where kafka-python's `send` refuses None (see `_KeyBytes`)."""


_NO_KEY = _NoKey()


class _KeyBytes(Serializer):  # type: ignore[misc]
    """Keys as they are, `_NO_KEY` as an absent key.

    kafka-python's `send` refuses a message with neither key nor value, which Kafka allows;
    the dead letter of a keyless tombstone is one. The check comes before serialization, so
    such a message goes in with `_NO_KEY` and leaves the serializer with no key.
    """

    def serialize(self, topic: str, headers: list[tuple[str, bytes]], data: Any) -> bytes | None:
        return None if data is _NO_KEY else data


class KafkaPythonProducer:
    """Producer on kafka-python: idempotent, acks=all; keys and values sent exactly as given."""

    def __init__(self, bootstrap: str, security: KafkaSecurity = PLAINTEXT) -> None:
        self._producer = KafkaProducer(
            **client_options(bootstrap, security),
            acks="all",
            linger_ms=5,
            max_request_size=MAX_REQUEST_BYTES,
            key_serializer=_KeyBytes(),
        )

    def produce_batch(self, messages: Sequence[Outgoing]) -> None:
        futures = [
            self._producer.send(
                m.topic,
                value=m.value,
                key=_NO_KEY if m.key is None and m.value is None else m.key,
                headers=list(m.headers),
            )
            for m in messages
        ]
        self._producer.flush()
        for future in futures:
            future.get(timeout=30)  # raises the send's KafkaError, if any

    def close(self) -> None:
        self._producer.close(timeout=5)


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(
        self,
        on_assigned: Callable[[list[Partition]], None],
        on_revoked: Callable[[list[Partition]], None],
    ) -> None:
        self._on_assigned = on_assigned
        self._on_revoked = on_revoked

    def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        self._on_assigned(sorted((tp.topic, tp.partition) for tp in assigned))

    def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        self._on_revoked(sorted((tp.topic, tp.partition) for tp in revoked))


class KafkaPythonConsumer:
    """Consumer on kafka-python in a group; positions come from the caller, never from Kafka."""

    def __init__(self, bootstrap: str, group_id: str, settings: Settings) -> None:
        self._consumer = KafkaConsumer(
            **client_options(bootstrap, settings.kafka_security),
            group_id=group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=settings.batch_size,
            # A broker holds an empty fetch this long: it bounds the latency of a lone message.
            fetch_max_wait_ms=100,
            session_timeout_ms=settings.session_timeout_ms,
            heartbeat_interval_ms=max(settings.session_timeout_ms // 6, 100),
            # Never shorter than the session timeout, or group joins never complete.
            max_poll_interval_ms=max(300_000, settings.session_timeout_ms),
        )

    def subscribe(
        self,
        topics: Sequence[str],
        on_assigned: Callable[[list[Partition]], None],
        on_revoked: Callable[[list[Partition]], None],
    ) -> None:
        self._consumer.subscribe(list(topics), listener=_Listener(on_assigned, on_revoked))

    def poll_batch(self, timeout_s: float) -> list[Message]:
        records = self._consumer.poll(timeout_ms=int(timeout_s * 1000))
        return [
            Message(r.topic, r.partition, r.offset, r.key, r.value, tuple(r.headers or ()))
            for batch in records.values()
            for r in batch
        ]

    def seek(self, partition: Partition, offset: int) -> None:
        self._consumer.seek(TopicPartition(*partition), offset)

    def assignment(self) -> list[Partition]:
        return sorted((tp.topic, tp.partition) for tp in self._consumer.assignment())

    def close(self) -> None:
        self._consumer.close(autocommit=False)


class KafkaPythonReader:
    """A consumer in no group on kafka-python: it reads what arrives after it was positioned."""

    def __init__(self, bootstrap: str, settings: Settings) -> None:
        self._consumer = KafkaConsumer(
            **client_options(bootstrap, settings.kafka_security),
            group_id=None,
            enable_auto_commit=False,
            fetch_max_wait_ms=100,
        )

    def assign_at_end(self, topic: str) -> None:
        """Assign every partition of `topic` and fix each position at its current end.

        The positions are resolved here, before the caller produces anything: a lazy
        seek_to_end would be evaluated at the first poll and could skip what came before.
        """
        numbers = self._consumer.partitions_for_topic(topic)
        if not numbers:
            raise KafkaError(f"the broker has no topic {topic!r}")
        partitions = [TopicPartition(topic, number) for number in sorted(numbers)]
        self._consumer.assign(partitions)
        self._consumer.seek_to_end(*partitions)
        for partition in partitions:
            self._consumer.position(partition)

    def assign_at_start(self, topic: str) -> dict[int, int]:
        """Assign every partition of `topic` at its earliest offset; answer those offsets
        (none when the broker has no such topic)."""
        numbers = self._consumer.partitions_for_topic(topic)
        if not numbers:
            return {}
        partitions = [TopicPartition(topic, number) for number in sorted(numbers)]
        self._consumer.assign(partitions)
        earliest = self._consumer.beginning_offsets(partitions)
        for partition in partitions:
            self._consumer.seek(partition, earliest[partition])
        return {partition.partition: int(earliest[partition]) for partition in partitions}

    def poll_batch(self, timeout_s: float) -> list[Message]:
        records = self._consumer.poll(timeout_ms=int(timeout_s * 1000))
        return [
            Message(r.topic, r.partition, r.offset, r.key, r.value, tuple(r.headers or ()))
            for batch in records.values()
            for r in batch
        ]

    def close(self) -> None:
        self._consumer.close(autocommit=False)


class KafkaPythonAdmin:
    """Admin client on kafka-python."""

    def __init__(self, bootstrap: str, security: KafkaSecurity = PLAINTEXT) -> None:
        self._admin = KafkaAdminClient(**client_options(bootstrap, security))

    def ensure_topics(self, specs: Iterable[TopicSpec]) -> set[str]:
        """Create the topics that do not exist yet; answer the names of those created."""
        existing = set(self._admin.list_topics())
        created: set[str] = set()
        for spec in specs:
            if spec.name in existing:
                continue
            topic = NewTopic(
                spec.name, spec.partitions, spec.replication_factor, topic_configs=spec.configs
            )
            try:
                self._admin.create_topics([topic])
            except TopicAlreadyExistsError:
                continue  # another worker created it first
            created.add(spec.name)
            logger.info("kafka.topic.created", topic=spec.name, partitions=spec.partitions)
        return created

    def cluster_id(self) -> str:
        described = self._admin.describe_cluster()
        cluster_id = described.get("cluster_id")
        if not cluster_id:
            raise KafkaError("the broker did not say its cluster id")
        return str(cluster_id)

    def close(self) -> None:
        self._admin.close()


def _groupless(bootstrap: str, security: KafkaSecurity) -> KafkaConsumer:
    """A consumer in no group, reading from the earliest offset kept unless positioned."""
    return KafkaConsumer(
        **client_options(bootstrap, security),
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=100,
    )


def high_watermarks(
    bootstrap: str,
    security: KafkaSecurity,
    topic: str,
    start: Mapping[int, int],
    timeout_s: float = 10.0,
) -> dict[int, int]:
    """The high watermark (the next offset to be written) of each partition of `topic`.

    Read from fetch responses, starting at `start[partition]` (0 if absent), not from
    ListOffsets: the embedded broker answers ListOffsets LATEST wrongly for batched records.
    A partition the broker did not answer for within `timeout_s` is left out.
    """
    consumer = _groupless(bootstrap, security)
    try:
        partitions = [
            TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        consumer.assign(partitions)
        for partition in partitions:
            consumer.seek(partition, start.get(partition.partition, 0))
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and any(
            consumer.highwater(p) is None for p in partitions
        ):
            consumer.poll(timeout_ms=200, max_records=1)
        marks = {p.partition: consumer.highwater(p) for p in partitions}
        return {number: int(mark) for number, mark in marks.items() if mark is not None}
    finally:
        consumer.close(autocommit=False)


def read_whole_topic(
    bootstrap: str, security: KafkaSecurity, topic: str, timeout_s: float = 30.0
) -> tuple[list[Message], dict[int, int]]:
    """Every record of every partition of `topic` still kept, from its log start to its end
    now; and the log start offset of each partition (0 unless retention removed records).

    The end is the high watermark from fetch responses (see high_watermarks). Raises
    KafkaError if the topic does not exist or a partition cannot be read within `timeout_s`.
    """
    consumer = _groupless(bootstrap, security)
    try:
        numbers = sorted(consumer.partitions_for_topic(topic) or ())
        if not numbers:
            raise KafkaError(f"the broker has no topic {topic!r}")
        partitions = [TopicPartition(topic, number) for number in numbers]
        consumer.assign(partitions)
        starts = {p.partition: int(o) for p, o in consumer.beginning_offsets(partitions).items()}
        ends = high_watermarks(bootstrap, security, topic, starts, timeout_s)
        for partition in partitions:
            consumer.seek(partition, starts[partition.partition])
        messages: list[Message] = []
        deadline = time.monotonic() + timeout_s
        while any(consumer.position(p) < ends.get(p.partition, 0) for p in partitions):
            if time.monotonic() > deadline:
                raise KafkaError(f"{topic!r} could not be read to its end in {timeout_s} s")
            for batch in consumer.poll(timeout_ms=200).values():
                messages += [
                    Message(r.topic, r.partition, r.offset, r.key, r.value, tuple(r.headers or ()))
                    for r in batch
                    if r.offset < ends.get(r.partition, 0)
                ]
        return messages, starts
    finally:
        consumer.close(autocommit=False)
