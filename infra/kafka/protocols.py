"""The ledger's view of Kafka: messages, topics and the three client protocols.

Handlers, the relay and the projections see only `Producer`, `Consumer` and `Admin` below;
`infra.kafka.factory` builds them (kafka-python by default).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

Headers = tuple[tuple[str, bytes], ...]
Partition = tuple[str, int]
# The largest request, and so the largest message, the ledger's producers send (kafka-python's
# max_request_size, librdkafka's message.max.bytes).
MAX_REQUEST_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class Message:
    """A message read from Kafka."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers = ()


def last_offsets(messages: Iterable[Message]) -> dict[Partition, int]:
    """The highest offset read from each partition, in partition order."""
    last: dict[Partition, int] = {}
    for message in messages:
        key = (message.topic, message.partition)
        last[key] = max(last.get(key, -1), message.offset)
    return dict(sorted(last.items()))


@dataclass(frozen=True)
class Outgoing:
    """A message to write to Kafka; a value of None is a tombstone."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: Headers = ()


@dataclass(frozen=True)
class TopicSpec:
    """A topic the ledger needs, with its configuration."""

    name: str
    partitions: int
    replication_factor: int
    configs: dict[str, str] = field(default_factory=dict)


class Producer(Protocol):
    """Writes batches of messages, returning only once every one is acknowledged."""

    def produce_batch(self, messages: Sequence[Outgoing]) -> None: ...
    def close(self) -> None: ...


class Consumer(Protocol):
    """Reads batches from the partitions a consumer group assigns, at positions the caller sets."""

    def subscribe(
        self,
        topics: Sequence[str],
        on_assigned: Callable[[list[Partition]], None],
        on_revoked: Callable[[list[Partition]], None],
    ) -> None: ...
    def poll_batch(self, timeout_s: float) -> list[Message]: ...
    def seek(self, partition: Partition, offset: int) -> None: ...
    def assignment(self) -> list[Partition]: ...
    def close(self) -> None: ...


class Reader(Protocol):
    """Reads every partition of a topic from its end (or its start) on, outside any group."""

    def assign_at_end(self, topic: str) -> None: ...
    def assign_at_start(self, topic: str) -> dict[int, int]: ...
    def poll_batch(self, timeout_s: float) -> list[Message]: ...
    def close(self) -> None: ...


class Admin(Protocol):
    """Creates topics and tells which cluster the ledger is connected to."""

    def ensure_topics(self, specs: Iterable[TopicSpec]) -> set[str]: ...
    def cluster_id(self) -> str: ...
    def close(self) -> None: ...
