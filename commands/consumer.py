"""The command consumer: Kafka batch in, events and positions saved in one transaction.

Positions live in PostgreSQL, keyed by Kafka cluster, topic and partition, and are stored
with the events a batch produced. On assignment the consumer seeks to them, never to
offsets committed to Kafka. Messages that cannot become commands (oversized, undecodable,
not a command) go to the dead-letter topic before the batch's positions are stored, so
nothing is skipped silently. `handle_batch` is the part in memory, callable without Kafka.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Final

import structlog
from eventsourcing.persistence import IntegrityError, Tracking

from commands.account_cache import AccountCache
from commands.handlers import Delivery, HandlerFailed, Outcome, process
from commands.mapping import content_digest
from commands.table import command_from_record, command_type_of
from commands.unit_of_work import UnitOfWork
from infra.faults import crash_point
from infra.kafka import (
    Consumer,
    Headers,
    Message,
    Outgoing,
    Partition,
    Producer,
    last_offsets,
)
from infra.kafka.tracked import TrackedLoop
from ledger.application import BillingLedger
from ledger.receipts import Source
from wire.codec import AvroCodec, AvroError
from wire.dead_letters import dead_letter

logger = structlog.get_logger(__name__)

# The largest command value the ledger decodes. Commands take a few hundred bytes; a larger
# value is a sender's mistake, dead-lettered `oversized` before any decoding work is spent
# on it. The dead letter keeps the bytes whole (the producer allows 4 MiB).
MAX_COMMAND_BYTES: Final = 64 * 1024


class CommandConsumer:
    """Turns batches of command messages into saved events, results and dead letters."""

    def __init__(
        self,
        ledger: BillingLedger,
        consumer: Consumer,
        producer: Producer,
        codec: AvroCodec,
        cluster_id: str,
        cache: AccountCache | None = None,
    ) -> None:
        self.ledger = ledger
        self.consumer = consumer
        self.producer = producer
        self.codec = codec
        self.cluster_id = cluster_id
        # Not `cache or ...`: an empty cache is falsy (it has a length), and every cache starts empty.
        self.cache = cache if cache is not None else AccountCache(0)
        self.loop: TrackedLoop[list[Outcome]] = TrackedLoop(
            "commands",
            consumer,
            self.stored_offset,
            self._process_or_drop,
            list,
            on_rebalance=self.cache.clear,  # another worker may change those accounts now
        )

    def position_name(self, partition: Partition) -> str:
        """The tracking name of a partition's stored position."""
        topic, number = partition
        return f"{self.cluster_id}/{topic}/{number}"

    def stored_offset(self, partition: Partition) -> int | None:
        """The last offset of `partition` whose command is in the ledger."""
        return self.ledger.stored_position(self.position_name(partition))

    def subscribe(self, topics: Sequence[str]) -> None:
        """Join the consumer group; assigned partitions resume after their stored positions."""
        self.loop.subscribe(topics)

    def run_once(self, timeout_s: float = 0.5) -> list[Outcome]:
        """Poll one batch and process it; answer the outcomes of the commands in it."""
        return self.loop.run_once(timeout_s)

    def _process_or_drop(self, messages: list[Message]) -> list[Outcome]:
        try:
            return self._process(messages)
        except IntegrityError as conflict:
            # Another worker stored these positions or changed these accounts first (a
            # rebalance): drop the batch; the next poll reads again from the stored positions.
            logger.warning("commands.batch.conflict", error=str(conflict))
            self.cache.clear()
            self.loop.resync()
            return []

    def _process(self, messages: list[Message]) -> list[Outcome]:
        fresh = self._not_yet_stored(messages)
        handled = handle_batch(self.ledger, self.codec, fresh, self.cluster_id, self.cache)
        if handled.dead_letters:
            self.producer.produce_batch(handled.dead_letters)
            crash_point("commands.after_dead_letters")
        positions = self._positions(messages)
        self.ledger.save(*handled.work.changed, positions=positions)
        self.cache.keep(handled.work.accounts)
        crash_point("commands.after_save")
        if logger.is_enabled_for(logging.INFO):  # else binding each outcome's context is waste
            for outcome in handled.outcomes:
                _log_outcome(outcome)
        return handled.outcomes

    def _not_yet_stored(self, messages: list[Message]) -> list[Message]:
        stored = {p: self.stored_offset(p) for p in {(m.topic, m.partition) for m in messages}}
        fresh = [
            m for m in messages if (s := stored[(m.topic, m.partition)]) is None or m.offset > s
        ]
        if len(fresh) < len(messages):  # read again: a rebalance, or a batch another worker saved
            logger.info("commands.already_stored", skipped=len(messages) - len(fresh))
        return fresh

    def _positions(self, messages: list[Message]) -> list[Tracking]:
        return [Tracking(self.position_name(p), o) for p, o in last_offsets(messages).items()]


@dataclass(frozen=True)
class Handled:
    """A batch of command messages handled in memory: what to save, answer and dead-letter."""

    work: UnitOfWork
    outcomes: list[Outcome]
    dead_letters: list[Outgoing]


def handle_batch(
    ledger: BillingLedger,
    codec: AvroCodec,
    messages: Sequence[Message],
    cluster_id: str,
    cache: AccountCache | None = None,
) -> Handled:
    """Decode `messages` (read on `cluster_id`) and process their commands, in memory only.

    Nothing is saved or sent: the caller produces the dead letters and saves `work.changed`.
    Accounts are taken from `cache` when it holds them; the caller keeps them there once saved.
    A command whose handling failed (a bug) is rejected `internal_error`, and the batch runs
    again on a fresh unit of work, so one bad command never stops the partition.
    """
    deliveries, dead = _decode(codec, messages, cluster_id)
    poisoned: frozenset[str] = frozenset()
    while True:
        work = UnitOfWork(ledger, cache)
        try:
            return Handled(work, process(work, deliveries, poisoned), dead)
        except HandlerFailed as failure:  # a bug must not stop the partition: reject, go on
            poisoned = poisoned | {failure.command_id}
            logger.error(
                "commands.handler.failed",
                **failure.log_context,
                error="".join(traceback.format_exception(failure)),
            )


def _decode(
    codec: AvroCodec, messages: Sequence[Message], cluster_id: str
) -> tuple[list[Delivery], list[Outgoing]]:
    deliveries: list[Delivery] = []
    dead: list[Outgoing] = []
    # No log context is bound per message: decoding logs nothing but the dead letter's
    # warning, which names the topic, partition and offset itself.
    for message in messages:
        try:
            deliveries.append(_delivery(codec, message))
        except AvroError as error:
            dead.append(dead_letter(message, error.code, str(error), cluster_id=cluster_id))
        except Undeliverable as error:
            headers = error.headers
            dead.append(
                dead_letter(message, error.code, str(error), headers, cluster_id=cluster_id)
            )
    return deliveries, dead


def _delivery(codec: AvroCodec, message: Message) -> Delivery:
    value = message.value or b""
    if len(value) > MAX_COMMAND_BYTES:
        raise Oversized(len(value))
    decoded = codec.decode(value)
    command_type = command_type_of(decoded.schema_name)
    if command_type is None:
        raise NotACommand(f"{decoded.schema_name} is not a command schema")
    try:
        command = command_from_record(command_type, decoded.record)
        digest = content_digest(command_type, decoded.record)
    except Exception as error:  # the record fits its schema, not the command: never crash-loop
        raise InvalidCommand(decoded.schema_name, error) from error
    return Delivery(
        command=command,
        command_type=command_type,
        content_digest=digest,
        source=Source(message.topic, message.partition, message.offset),
        key=message.key,
    )


def _log_outcome(outcome: Outcome) -> None:
    # The delivery's context as fields of the line: the same line as with it bound, cheaper.
    context = outcome.delivery.log_context
    if outcome.rejection is None:
        logger.info(
            "commands.accepted",
            command_type=outcome.delivery.command_type,
            event_ids=list(outcome.event_ids),
            redelivery=outcome.redelivery,
            **context,
        )
    else:
        logger.info(
            "commands.rejected",
            command_type=outcome.delivery.command_type,
            reason=outcome.rejection.code,
            field=outcome.rejection.field,
            redelivery=outcome.redelivery,
            detail=outcome.rejection.message,
            **context,
        )


class Undeliverable(Exception):
    """A message that cannot become a command delivery; it is dead-lettered with `code`."""

    code: ClassVar[str] = "undeliverable"
    headers: Headers = ()


class Oversized(Undeliverable):
    """A command message larger than MAX_COMMAND_BYTES; it was not decoded."""

    code = "oversized"

    def __init__(self, size: int) -> None:
        super().__init__(
            f"the message is {size} bytes, more than the {MAX_COMMAND_BYTES} bytes a command "
            "may take; it was not decoded"
        )
        self.headers = (
            ("dead_letter.size_bytes", str(size).encode()),
            ("dead_letter.max_bytes", str(MAX_COMMAND_BYTES).encode()),
        )


class NotACommand(Undeliverable):
    """A well-formed Avro message whose schema is not a command's."""

    code = "not_a_command"


class InvalidCommand(Undeliverable):
    """A record that fits its command schema but not the command the ledger maps it to.

    A symbol or field the schema has and the code lacks, say: a newer schema than the code.
    """

    code = "invalid_command"

    def __init__(self, schema_name: str, error: Exception) -> None:
        super().__init__(
            f"the {schema_name} record fits its schema but is not a command the ledger can "
            f"read: {type(error).__name__}: {error}"
        )
