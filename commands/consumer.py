"""The command consumer: Kafka batch in, events and positions saved in one transaction.

Positions live in PostgreSQL, keyed by Kafka cluster, topic and partition, and are stored
with the events a batch produced. On assignment the consumer seeks to them, never to
offsets committed to Kafka. Undecodable messages go to the dead-letter topic before the
batch's positions are stored, so nothing is skipped silently.
"""

from __future__ import annotations

import traceback
from collections.abc import Sequence

import structlog
from eventsourcing.persistence import IntegrityError, Tracking

from commands.avro import AvroCodec, AvroError
from commands.dead_letters import dead_letter
from commands.handlers import Delivery, HandlerFailed, Outcome, process
from commands.messages import command_from_record, command_type_of, content_digest
from commands.unit_of_work import UnitOfWork
from ledger.application import BillingLedger
from ledger.receipts import Source
from service.kafka import Consumer, Message, Outgoing, Partition, Producer

logger = structlog.get_logger(__name__)


class CommandConsumer:
    """Turns batches of command messages into saved events, results and dead letters."""

    def __init__(
        self,
        ledger: BillingLedger,
        consumer: Consumer,
        producer: Producer,
        codec: AvroCodec,
        cluster_id: str,
    ) -> None:
        self.ledger = ledger
        self.consumer = consumer
        self.producer = producer
        self.codec = codec
        self.cluster_id = cluster_id
        self._resync = False

    def position_name(self, partition: Partition) -> str:
        """The tracking name of a partition's stored position."""
        topic, number = partition
        return f"{self.cluster_id}/{topic}/{number}"

    def stored_offset(self, partition: Partition) -> int | None:
        """The last offset of `partition` whose command is in the ledger."""
        return self.ledger.stored_position(self.position_name(partition))

    def seek_to_stored(self, partitions: Sequence[Partition]) -> None:
        """Resume each partition after its stored position (from the start if none)."""
        for partition in partitions:
            stored = self.stored_offset(partition)
            self.consumer.seek(partition, 0 if stored is None else stored + 1)
            logger.info(
                "commands.partition.resumed",
                topic=partition[0],
                partition=partition[1],
                stored_offset=stored,
            )

    def run_once(self, timeout_s: float = 0.5) -> list[Outcome]:
        """Poll one batch and process it; answer the outcomes of the commands in it.

        If processing fails (the database is down, say), the consumer has already moved past
        the batch: the next call first seeks back to the stored positions, so nothing is skipped.
        """
        if self._resync:
            self.seek_to_stored(self.consumer.assignment())
            self._resync = False
        messages = self.consumer.poll_batch(timeout_s)
        if not messages:
            return []
        try:
            return self._process(messages)
        except IntegrityError as conflict:
            # Another worker stored these positions or changed these accounts first (a
            # rebalance): drop the batch; the next poll reads again from the stored positions.
            logger.warning("commands.batch.conflict", error=str(conflict))
            self._resync = True
            return []
        except BaseException:
            self._resync = True
            raise

    def _process(self, messages: list[Message]) -> list[Outcome]:
        fresh = self._not_yet_stored(messages)
        deliveries, dead = self._decode(fresh)
        poisoned: frozenset[str] = frozenset()
        while True:
            work = UnitOfWork(self.ledger)
            try:
                outcomes = process(work, deliveries, poisoned)
                break
            except HandlerFailed as failure:  # a bug must not stop the partition: reject, go on
                poisoned = poisoned | {failure.command_id}
                logger.error(
                    "commands.handler.failed",
                    command_id=failure.command_id,
                    error="".join(traceback.format_exception(failure)),
                )
        if dead:
            self.producer.produce_batch(dead)
        positions = self._positions(messages)
        self.ledger.save(*work.changed, positions=positions)
        for outcome in outcomes:
            _log_outcome(outcome)
        return outcomes

    def _not_yet_stored(self, messages: list[Message]) -> list[Message]:
        stored = {p: self.stored_offset(p) for p in {(m.topic, m.partition) for m in messages}}
        return [
            m for m in messages if (s := stored[(m.topic, m.partition)]) is None or m.offset > s
        ]

    def _decode(self, messages: list[Message]) -> tuple[list[Delivery], list[Outgoing]]:
        deliveries: list[Delivery] = []
        dead: list[Outgoing] = []
        for message in messages:
            try:
                deliveries.append(self._delivery(message))
            except AvroError as error:
                dead.append(dead_letter(message, error.code, str(error)))
        return deliveries, dead

    def _delivery(self, message: Message) -> Delivery:
        decoded = self.codec.decode(message.value or b"")
        command_type = command_type_of(decoded.schema_name)
        if command_type is None:
            raise NotACommand(f"{decoded.schema_name} is not a command schema")
        return Delivery(
            command=command_from_record(command_type, decoded.record),
            command_type=command_type,
            content_digest=content_digest(command_type, decoded.record),
            source=Source(message.topic, message.partition, message.offset),
        )

    def _positions(self, messages: list[Message]) -> list[Tracking]:
        last: dict[Partition, int] = {}
        for message in messages:
            key = (message.topic, message.partition)
            last[key] = max(last.get(key, -1), message.offset)
        return [Tracking(self.position_name(p), offset) for p, offset in sorted(last.items())]


def _log_outcome(outcome: Outcome) -> None:
    source = outcome.delivery.source
    command = outcome.delivery.command
    with structlog.contextvars.bound_contextvars(
        command_id=command.command_id,
        account_id=command.account_id,
        topic=source.topic,
        partition=source.partition,
        offset=source.offset,
    ):
        if outcome.rejection is None:
            logger.info(
                "commands.accepted",
                command_type=outcome.delivery.command_type,
                event_ids=list(outcome.event_ids),
                redelivery=outcome.redelivery,
            )
        else:
            logger.info(
                "commands.rejected",
                command_type=outcome.delivery.command_type,
                reason=outcome.rejection.code,
                field=outcome.rejection.field,
                redelivery=outcome.redelivery,
                detail=outcome.rejection.message,
            )


class NotACommand(AvroError):
    """A well-formed Avro message whose schema is not a command's."""

    code = "not_a_command"
