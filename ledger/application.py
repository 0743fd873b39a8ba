"""The billing ledger application: the event store, its transcodings and the queries on it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from datetime import date
from enum import Enum
from itertools import groupby
from operator import attrgetter
from typing import Any
from uuid import UUID

import orjson
from eventsourcing.application import (
    AggregateNotFoundError,
    Application,
    ProcessingEvent,
    project_aggregate,
)
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import (
    JSONTranscoder,
    ProcessRecorder,
    Recording,
    Transcoder,
    Transcoding,
)

from ledger.account import Account, CancellationPolicy, Contact, Terms, account_uuid
from ledger.calendar import IntervalUnit
from ledger.dunning import DunningPolicy, FinalAction
from ledger.ids import name_uuid_text
from ledger.plans import Plan, plan_uuid
from ledger.postings import Posting, Side
from ledger.receipts import CommandReceipt, Rejection, Source, receipt_uuid
from ledger.receivables import Allocation, ChargeFailureReason
from ledger.renegotiation import Installment, OriginalDebt


def event_id(originator_id: UUID, originator_version: int) -> str:
    """The stable id of the event at `originator_version` of aggregate `originator_id`."""
    return name_uuid_text(originator_id, str(originator_version))


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


class DateAsISO(Transcoding):
    """Stores a calendar date (such as a card's expiry) as its ISO string; the library has none."""

    type = date
    name = "date_iso"

    def encode(self, obj: date) -> str:
        return obj.isoformat()

    def decode(self, data: str) -> date:
        return date.fromisoformat(data)


class EnumAsValue(Transcoding):
    """Stores an enum member as its value, read back as the member (not a plain str)."""

    def __init__(self, cls: type[Enum]) -> None:
        self.type = cls
        self.name = f"enum_{cls.__name__}"

    def encode(self, obj: Any) -> Any:
        return obj.value

    def decode(self, data: Any) -> Any:
        return self.type(data)


class EnumKeepingTranscoder(JSONTranscoder):
    """The library's JSON transcoder, but enum members in an event's fields keep their type.

    The json module writes a str-based enum member as a plain string without asking the
    transcoder, so the event's fields are tagged before encoding.
    """

    def encode(self, obj: Any) -> bytes:
        if isinstance(obj, dict):
            obj = {key: self._tagged(value) for key, value in obj.items()}
        return super().encode(obj)

    def _tagged(self, value: Any) -> Any:
        if isinstance(value, Enum) and type(value) in self.types:
            return {"_type_": self.types[type(value)].name, "_data_": value.value}
        return value


class OrjsonTranscoder(EnumKeepingTranscoder):
    """EnumKeepingTranscoder's JSON, byte for byte, written by orjson: about 5x faster.

    orjson writes str, int, list and dict subclasses (StrEnum members, say) as their plain
    values, as the json module does; datetimes, dates and dataclasses it is told to hand to
    the registered transcodings, as the json module does. What orjson refuses (an int beyond
    64 bits, a key that is not a str, a type without a transcoding) is written by the json
    module, which gives its own bytes or its own error. Two differences remain, for values no
    event holds: orjson writes a float its own way (1e16 against 1e+16; money is integer
    minor units) and a UUID as a plain string (the library's transcoding tags it; the ledger's
    ids are strings). tests/unit/test_transcoder.py compares the bytes of every event of
    random histories and of every release.
    """

    OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS

    def encode(self, obj: Any) -> bytes:
        if isinstance(obj, dict):
            obj = {key: self._tagged(value) for key, value in obj.items()}
        try:
            return orjson.dumps(obj, default=self._encode_obj, option=self.OPTIONS)
        except orjson.JSONEncodeError:
            return JSONTranscoder.encode(self, obj)


TRANSCODINGS: tuple[Transcoding, ...] = (
    DateAsISO(),
    DataclassAsDict(Posting, {"side": Side}),
    DataclassAsDict(Contact),
    DataclassAsDict(
        Terms,
        {"interval_unit": IntervalUnit, "cancellation_policy": CancellationPolicy},
    ),
    DataclassAsDict(Source),
    DataclassAsDict(Allocation),
    DataclassAsDict(
        DunningPolicy,
        {
            "reminder_days_before_due": tuple,
            "reminder_days_after_due": tuple,
            "retry_days_after_failure": tuple,
            "final_action": FinalAction,
        },
    ),
    DataclassAsDict(Rejection),
    DataclassAsDict(OriginalDebt),
    DataclassAsDict(Installment),
)


class AggregatesFirst(ProcessingEvent[UUID]):
    """The library's processing event, collecting an `Aggregate`'s events as it would.

    The library asks `isinstance(obj, DomainEventProtocol)`, then `CollectEventsProtocol`, of
    each object: on Python 3.11 a runtime Protocol check lists the protocol's attributes anew
    each time, about 10% of a batch's save. An `Aggregate` is no domain event and collects
    events, so the answers are known; any other object goes through the library's checks.
    """

    def collect_events(self, *objs: Any, **kwargs: Any) -> None:
        for obj in objs:
            if isinstance(obj, Aggregate):
                self.events.extend(obj.collect_events())
                self.aggregates[obj.id] = obj
            else:
                super().collect_events(obj)
        self.saved_kwargs.update(kwargs)


@dataclass
class Wanted:
    """The aggregates a batch of commands will read, by the names upstream systems use."""

    account_ids: set[str] = field(default_factory=set)
    command_ids: set[str] = field(default_factory=set)
    plan_ids: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class Found:
    """The wanted aggregates that exist, by name."""

    accounts: dict[str, Account]
    receipts: dict[str, CommandReceipt]
    plans: dict[str, Plan]


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

    def construct_transcoder(self) -> Transcoder:
        transcoder = OrjsonTranscoder()
        self.register_transcodings(transcoder)
        return transcoder

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        for transcoding in TRANSCODINGS:
            transcoder.register(transcoding)
        for enum_type in (ChargeFailureReason, FinalAction, IntervalUnit):
            transcoder.register(EnumAsValue(enum_type))

    def save(self, *objs: Any, **kwargs: Any) -> list[Recording[UUID]]:
        """The library's save (eventsourcing 9.5's `Application.save`, step for step), collecting
        the events of aggregates without its two runtime Protocol checks per object.
        """
        processing_event = AggregatesFirst()
        processing_event.collect_events(*objs, **kwargs)
        recordings = self._record(processing_event)
        self._take_snapshots(processing_event)
        self._notify(recordings)
        self.notify(processing_event.events)  # the deprecated hook, still called
        return recordings

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

    def plan(self, plan_id: str) -> Plan | None:
        """The catalogue plan named `plan_id`, or None if it was never defined."""
        plan = self._get(plan_uuid(plan_id))
        assert plan is None or isinstance(plan, Plan)
        return plan

    def read_many(self, wanted: Wanted) -> Found:
        """The existing accounts, receipts and plans among those wanted, read together.

        With a recorder that can read many aggregates in one query (the PostgreSQL one the
        services use), this is one round trip instead of one per aggregate.
        """
        ids = (
            [account_uuid(a) for a in wanted.account_ids]
            + [receipt_uuid(c) for c in wanted.command_ids]
            + [plan_uuid(p) for p in wanted.plan_ids]
        )
        found = self._get_many(ids)
        return Found(
            accounts={a.account_id: a for a in found if isinstance(a, Account)},
            receipts={r.command_id: r for r in found if isinstance(r, CommandReceipt)},
            plans={p.plan_id: p for p in found if isinstance(p, Plan)},
        )

    def _get_many(self, aggregate_ids: list[UUID]) -> list[object]:
        select_many = getattr(self.recorder, "select_events_of_many", None)
        if select_many is None:
            return [a for a in map(self._get, aggregate_ids) if a is not None]
        stored = select_many(aggregate_ids)
        return [
            project_aggregate(None, map(self.mapper.to_domain_event, events))
            for _, events in groupby(stored, key=attrgetter("originator_id"))
        ]

    def stored_position(self, name: str) -> int | None:
        """The last Kafka offset stored for the source `name`, or None."""
        return self.process_recorder.max_tracking_id(name)

    def _get(self, aggregate_id: UUID) -> object | None:
        try:
            return self.repository.get(aggregate_id)
        except AggregateNotFoundError:
            return None
