"""The one place Kafka clients are built: every producer, consumer and admin of the ledger."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property

from infra.config import ConfigError, KafkaSecurity, Settings
from infra.kafka.kafka_python import (
    KafkaPythonAdmin,
    KafkaPythonConsumer,
    KafkaPythonProducer,
    KafkaPythonReader,
    high_watermarks,
    read_whole_topic,
)
from infra.kafka.protocols import Admin, Consumer, Message, Producer, Reader


@dataclass(frozen=True)
class Library:
    """The constructors of one client library's implementations of the protocols."""

    producer: Callable[[str, KafkaSecurity], Producer]
    consumer: Callable[[str, str, Settings], Consumer]
    reader: Callable[[str, Settings], Reader]
    admin: Callable[[str, KafkaSecurity], Admin]


def library(name: str) -> Library:
    """The client library LEDGER_KAFKA_CLIENT names; a ConfigError if it is not installed."""
    if name == "confluent-kafka":
        try:
            from infra.kafka import confluent
        except ImportError as error:  # the optional extra is not installed
            raise ConfigError(
                f"LEDGER_KAFKA_CLIENT=confluent-kafka needs the confluent-kafka library "
                f"({error}): pip install 'billing-ledger[fast]' (in a clone: pip install -e '.[fast]')"
            ) from None
        return Library(
            confluent.ConfluentProducer,
            confluent.ConfluentConsumer,
            confluent.ConfluentReader,
            confluent.ConfluentAdmin,
        )
    return Library(KafkaPythonProducer, KafkaPythonConsumer, KafkaPythonReader, KafkaPythonAdmin)


@dataclass(frozen=True)
class KafkaClients:
    """Builds the clients for one broker with one configuration, on the configured library."""

    bootstrap: str
    settings: Settings = field(default_factory=lambda: Settings(None, None))

    @cached_property
    def library(self) -> Library:
        """The client library the settings name (kafka-python by default)."""
        return library(self.settings.kafka_client)

    def producer(self) -> Producer:
        """An idempotent producer whose batches return once every message is acknowledged."""
        return self.library.producer(self.bootstrap, self.settings.kafka_security)

    def consumer(self, group_id: str) -> Consumer:
        """A consumer in `group_id` that reads from the positions its caller seeks to."""
        return self.library.consumer(self.bootstrap, group_id, self.settings)

    def reader(self) -> Reader:
        """A reader of whole topics from their end on, in no consumer group."""
        return self.library.reader(self.bootstrap, self.settings)

    def admin(self) -> Admin:
        """An admin client: topics and the cluster id."""
        return self.library.admin(self.bootstrap, self.settings.kafka_security)

    def high_watermarks(self, topic: str, start: Mapping[int, int]) -> dict[int, int]:
        """The next offset to be written to each partition of `topic`, from fetch responses."""
        return high_watermarks(self.bootstrap, self.settings.kafka_security, topic, start)

    def read_whole_topic(self, topic: str) -> tuple[list[Message], dict[int, int]]:
        """Every record `topic` still keeps, to its end now, and each partition's log start."""
        return read_whole_topic(self.bootstrap, self.settings.kafka_security, topic)


def clients(bootstrap: str, settings: Settings | None = None) -> KafkaClients:
    """The client factory for the broker at `bootstrap`, configured by `settings`.

    A ConfigError at once if the configured client library is not installed.
    """
    built = KafkaClients(bootstrap, settings or Settings(None, None))
    _ = built.library
    return built
