"""Kafka: the protocols the ledger sees, the kafka-python clients, and the one factory that builds them."""

from infra.kafka.factory import KafkaClients, clients
from infra.kafka.protocols import (
    Admin,
    Consumer,
    Headers,
    Message,
    Outgoing,
    Partition,
    Producer,
    Reader,
    TopicSpec,
    last_offsets,
)
from infra.kafka.tracked import TrackedLoop

__all__ = [
    "Admin",
    "Consumer",
    "Headers",
    "KafkaClients",
    "Message",
    "Outgoing",
    "Partition",
    "Producer",
    "Reader",
    "TopicSpec",
    "TrackedLoop",
    "clients",
    "last_offsets",
]
