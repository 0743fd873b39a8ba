"""Command receipts: the ledger's memory of every command it answered, keyed by command_id.

A receipt makes redelivery harmless: a command whose receipt exists is answered with the
original result and changes nothing. Receipts are events too, so auditors see every
rejection and every redelivery in the history.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate

from ledger.ids import name_uuid

_RECEIPT_NAMESPACE = uuid5(NAMESPACE_URL, "billing-ledger:command")


def receipt_uuid(command_id: str) -> UUID:
    """The event-store id of the receipt of the command `command_id`."""
    return name_uuid(_RECEIPT_NAMESPACE, command_id)


@dataclass(frozen=True)
class Source:
    """Where a command was read from: Kafka topic, partition and offset."""

    topic: str
    partition: int
    offset: int


@dataclass(frozen=True)
class Rejection:
    """Why a command was rejected: a stable code, the offending field and a message."""

    code: str
    field: str | None
    message: str


class CommandReceipt(Aggregate):
    """The outcome of one command, and every later delivery of the same command_id."""

    class Recorded(Aggregate.Created):
        """The command was processed: accepted with its events, or rejected."""

        command_id: str
        command_type: str
        account_id: str
        content_digest: str
        source: Source
        event_ids: tuple[str, ...]
        rejection: Rejection | None
        # The plan a catalogue command was about (its account_id is then ""); None before 0.3.0.
        plan_id: str | None = None

    class Redelivered(Aggregate.Event):
        """The same command_id arrived again and was answered without processing it again.

        It carries the answer given: the original outcome when the content is the same,
        a `command_id_reused` rejection when it is not.
        """

        command_id: str
        command_type: str
        account_id: str
        source: Source
        content_digest: str
        event_ids: tuple[str, ...]
        rejection: Rejection | None
        plan_id: str | None = None

        def apply(self, aggregate: Any) -> None:
            assert isinstance(aggregate, CommandReceipt)
            aggregate.deliveries += 1

    def __init__(
        self,
        command_id: str,
        command_type: str,
        account_id: str,
        content_digest: str,
        source: Source,
        event_ids: tuple[str, ...],
        rejection: Rejection | None,
        plan_id: str | None = None,
    ) -> None:
        self.command_id = command_id
        self.plan_id = plan_id
        self.command_type = command_type
        self.account_id = account_id
        self.content_digest = content_digest
        self.source = source
        self.event_ids = tuple(event_ids)
        self.rejection = rejection
        self.deliveries = 1

    @classmethod
    def record(
        cls,
        *,
        command_id: str,
        command_type: str,
        account_id: str,
        content_digest: str,
        source: Source,
        issued_at: datetime,
        event_ids: tuple[str, ...] = (),
        rejection: Rejection | None = None,
        plan_id: str | None = None,
    ) -> CommandReceipt:
        """Record the outcome of a command processed for the first time."""
        return cls._create(
            cls.Recorded,
            id=receipt_uuid(command_id),
            timestamp=issued_at,
            command_id=command_id,
            command_type=command_type,
            account_id=account_id,
            content_digest=content_digest,
            source=source,
            event_ids=tuple(event_ids),
            rejection=rejection,
            plan_id=plan_id,
        )

    def redelivered(
        self,
        *,
        command_type: str,
        account_id: str,
        source: Source,
        content_digest: str,
        issued_at: datetime,
        plan_id: str | None = None,
    ) -> None:
        """Record another delivery of this command_id, with the answer it gets."""
        same_content = content_digest == self.content_digest
        self.trigger_event(
            self.Redelivered,
            timestamp=issued_at,
            command_id=self.command_id,
            command_type=command_type,
            account_id=account_id,
            source=source,
            content_digest=content_digest,
            event_ids=self.event_ids if same_content else (),
            rejection=self.rejection if same_content else self._reuse_rejection(),
            plan_id=plan_id,
        )

    def _reuse_rejection(self) -> Rejection:
        return Rejection(
            code="command_id_reused",
            field="command_id",
            message=(
                f"command_id {self.command_id!r} was already used for a different "
                f"{self.command_type} command; choose a new command_id"
            ),
        )

    @property
    def accepted(self) -> bool:
        """Whether the command was accepted."""
        return self.rejection is None
