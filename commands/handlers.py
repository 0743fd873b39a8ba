"""The processing of a batch of deliveries: each command answered once, by its handler.

The handlers are found in the command table (table.py); the verb functions live by area in
account_handlers.py and plan_handlers.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from eventsourcing.persistence import PersistenceError

from commands.envelope import check_envelope
from commands.messages import Command, PlanCommand
from commands.table import HANDLERS
from commands.unit_of_work import UnitOfWork
from infra import logs
from ledger.errors import RuleViolation
from ledger.receipts import CommandReceipt, Rejection, Source


class Keyed(Enum):
    """How a delivery built in code (tests, tools), not read from Kafka, counts as keyed."""

    BY_ACCOUNT_ID = "by_account_id"  # by the command's key: its account_id, or plan_id


@dataclass(frozen=True)
class Delivery:
    """One decoded command, where it was read from and the Kafka key it came with."""

    command: Command
    command_type: str
    content_digest: str
    source: Source
    key: bytes | Keyed | None = Keyed.BY_ACCOUNT_ID

    @property
    def log_context(self) -> dict[str, object]:
        """What every log line about this delivery carries: the command, its key, its source."""
        return {
            "command_id": self.command.command_id,
            self.command.key_field: self.command.key,
            "topic": self.source.topic,
            "partition": self.source.partition,
            "offset": self.source.offset,
        }

    @property
    def kafka_key(self) -> bytes | None:
        """The message key: None if the message had none; the command's key by default."""
        if self.key is Keyed.BY_ACCOUNT_ID:
            return self.command.key.encode()
        return self.key


@dataclass(frozen=True)
class Outcome:
    """What the ledger answered to one delivery."""

    delivery: Delivery
    event_ids: tuple[str, ...]
    rejection: Rejection | None
    redelivery: bool


class HandlerFailed(Exception):
    """Handling one command failed for a reason that is not the sender's: a bug in the ledger.

    The batch's changes are dropped, and the batch runs again with the command `poisoned`.
    """

    def __init__(self, delivery: Delivery, reason: str) -> None:
        command_id = delivery.command.command_id
        super().__init__(f"command {command_id!r} failed: {reason}")
        self.command_id = command_id
        self.log_context = delivery.log_context


def process(
    work: UnitOfWork, deliveries: Sequence[Delivery], poisoned: frozenset[str]
) -> list[Outcome]:
    """Answer each delivery in order, changing the aggregates held by `work`.

    Deliveries whose command_id is in `poisoned` made the ledger fail before; they are
    rejected without touching the domain again.
    """
    work.preload([d.command for d in deliveries])
    outcomes = []
    for delivery in deliveries:
        with logs.bound(**delivery.log_context):
            outcomes.append(_answer(work, delivery, poisoned))
    return outcomes


def _answer(work: UnitOfWork, delivery: Delivery, poisoned: frozenset[str]) -> Outcome:
    command = delivery.command
    receipt = work.receipt(command.command_id)
    if receipt is not None:
        return _redeliver(receipt, delivery)
    if command.command_id in poisoned:
        rejection = Rejection(
            "internal_error",
            None,
            f"the ledger failed while processing this {delivery.command_type} command and "
            "changed nothing; operators have the details in the logs",
        )
        return _record(work, delivery, (), rejection)
    mark = work.mark()
    try:
        check_envelope(command, delivery.kafka_key)
        HANDLERS[type(command)](command, work)
    except RuleViolation as violation:
        if work.events_since(mark):
            raise HandlerFailed(delivery, "events were triggered before") from violation
        rejection = Rejection(violation.code, violation.field, violation.message)
        return _record(work, delivery, (), rejection)
    except PersistenceError:
        raise  # the database, not the command: the batch is retried whole
    except Exception as failure:
        raise HandlerFailed(delivery, repr(failure)) from failure
    return _record(work, delivery, work.event_ids_since(mark), None)


def _record(
    work: UnitOfWork, delivery: Delivery, event_ids: tuple[str, ...], rejection: Rejection | None
) -> Outcome:
    command = delivery.command
    work.add_receipt(
        CommandReceipt.record(
            command_id=command.command_id,
            command_type=delivery.command_type,
            account_id=getattr(command, "account_id", ""),
            plan_id=_plan_id(command),
            content_digest=delivery.content_digest,
            source=delivery.source,
            issued_at=command.issued_at,
            event_ids=event_ids,
            rejection=rejection,
        )
    )
    return Outcome(delivery, event_ids, rejection, redelivery=False)


def _redeliver(receipt: CommandReceipt, delivery: Delivery) -> Outcome:
    receipt.redelivered(
        command_type=delivery.command_type,
        account_id=getattr(delivery.command, "account_id", ""),
        plan_id=_plan_id(delivery.command),
        source=delivery.source,
        content_digest=delivery.content_digest,
        issued_at=delivery.command.issued_at,
    )
    answer = receipt.pending_events[-1]
    assert isinstance(answer, CommandReceipt.Redelivered)
    return Outcome(delivery, tuple(answer.event_ids), answer.rejection, redelivery=True)


def _plan_id(command: Command) -> str | None:
    """The plan a plan command is about, for its receipt; None for an account command."""
    return command.plan_id if isinstance(command, PlanCommand) else None
