"""The one place Kafka clients are built: every producer, consumer and admin of the ledger."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from infra.config import Settings
from infra.kafka.kafka_python import (
    KafkaPythonAdmin,
    KafkaPythonConsumer,
    KafkaPythonProducer,
    KafkaPythonReader,
    high_watermarks,
)
from infra.kafka.protocols import Admin, Consumer, Producer, Reader


@dataclass(frozen=True)
class KafkaClients:
    """Builds the clients for one broker with one configuration (kafka-python today)."""

    bootstrap: str
    settings: Settings = field(default_factory=lambda: Settings(None, None))

    def producer(self) -> Producer:
        """An idempotent producer whose batches return once every message is acknowledged."""
        return KafkaPythonProducer(self.bootstrap, self.settings.kafka_security)

    def consumer(self, group_id: str) -> Consumer:
        """A consumer in `group_id` that reads from the positions its caller seeks to."""
        return KafkaPythonConsumer(self.bootstrap, group_id, self.settings)

    def reader(self) -> Reader:
        """A reader of whole topics from their end on, in no consumer group."""
        return KafkaPythonReader(self.bootstrap, self.settings)

    def admin(self) -> Admin:
        """An admin client: topics and the cluster id."""
        return KafkaPythonAdmin(self.bootstrap, self.settings.kafka_security)

    def high_watermarks(self, topic: str, start: Mapping[int, int]) -> dict[int, int]:
        """The next offset to be written to each partition of `topic`, from fetch responses."""
        return high_watermarks(self.bootstrap, self.settings.kafka_security, topic, start)


def clients(bootstrap: str, settings: Settings | None = None) -> KafkaClients:
    """The client factory for the broker at `bootstrap`, configured by `settings`."""
    return KafkaClients(bootstrap, settings or Settings(None, None))
