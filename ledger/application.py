"""The billing ledger application: the event store, its transcodings and the queries on it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import fields
from typing import Any
from uuid import UUID, uuid5

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import JSONTranscoder, ProcessRecorder, Transcoding

from ledger.account import Account, CancellationPolicy, Contact, Terms, account_uuid
from ledger.calendar import IntervalUnit
from ledger.postings import Posting, Side
from ledger.receipts import CommandReceipt, Rejection, Source, receipt_uuid


def event_id(originator_id: UUID, originator_version: int) -> str:
    """The stable id of the event at `originator_version` of aggregate `originator_id`."""
    return str(uuid5(originator_id, str(originator_version)))


class DataclassAsDict(Transcoding):
    """Stores a frozen dataclass as a JSON object of its fields, converting some on the way back."""

    def __init__(self, cls: type, converters: Mapping[str, Callable[[Any], Any]] | None = None):
        self.type = cls
        self.name = cls.__name__
        self.converters = dict(converters or {})
        self.field_names = tuple(f.name for f in fields(cls))

    def encode(self, obj: Any) -> dict[str, Any]:
        return {name: getattr(obj, name) for name in self.field_names}

    def decode(self, data: dict[str, Any]) -> Any:
        return self.type(
            **{name: self.converters.get(name, _same)(value) for name, value in data.items()}
        )


def _same(value: Any) -> Any:
    return value


TRANSCODINGS: tuple[Transcoding, ...] = (
    DataclassAsDict(Posting, {"side": Side}),
    DataclassAsDict(Contact),
    DataclassAsDict(
        Terms,
        {"interval_unit": IntervalUnit, "cancellation_policy": CancellationPolicy},
    ),
    DataclassAsDict(Source),
    DataclassAsDict(Rejection),
)


class BillingLedger(Application[UUID]):
    """The event-sourced ledger: accounts and command receipts, saved with Kafka positions.

    Its recorder is a process recorder, so a save can carry the positions of the commands
    it answers and store them in the same transaction as the events.
    """

    name = "billing"

    def construct_recorder(self) -> ProcessRecorder:
        return self.factory.process_recorder()

    @property
    def process_recorder(self) -> ProcessRecorder:
        """The recorder, typed as the process recorder it is."""
        assert isinstance(self.recorder, ProcessRecorder)
        return self.recorder

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        for transcoding in TRANSCODINGS:
            transcoder.register(transcoding)

    def account(self, account_id: str) -> Account | None:
        """The account named `account_id`, or None if it was never opened."""
        account = self._get(account_uuid(account_id))
        assert account is None or isinstance(account, Account)
        return account

    def receipt(self, command_id: str) -> CommandReceipt | None:
        """The receipt of command `command_id`, or None if it was never processed."""
        receipt = self._get(receipt_uuid(command_id))
        assert receipt is None or isinstance(receipt, CommandReceipt)
        return receipt

    def stored_position(self, name: str) -> int | None:
        """The last Kafka offset stored for the source `name`, or None."""
        return self.process_recorder.max_tracking_id(name)

    def _get(self, aggregate_id: UUID) -> object | None:
        try:
            return self.repository.get(aggregate_id)
        except AggregateNotFoundError:
            return None
