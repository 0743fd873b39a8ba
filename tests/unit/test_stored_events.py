"""Records straight from the stored state: the domain path's records, or left to it."""

from __future__ import annotations

import json
import zlib
from dataclasses import replace
from typing import Any

import pytest
from eventsourcing.persistence import Mapper, Notification
from eventsourcing.utils import resolve_topic

from audit.export_format import offline_mapper
from bench.projections import generate
from ledger.receipts import CommandReceipt
from tests.unit.builders import in_memory_ledger
from tests.unit.test_history import released_notifications
from wire.codec import AvroCodec, InvalidRecord
from wire.event_records import RESULT_SCHEMA, event_record, outgoing, result_record
from wire.stored_events import StoredMessages, StoredRecords

SUBSCRIBED = "ledger.account:Account.Subscribed"
INVOICE_PAID = "ledger.account:Account.InvoicePaid"
INVOICE_ISSUED = "ledger.account:Account.InvoiceIssued"


@pytest.fixture(name="codec", scope="module")
def fixture_codec() -> AvroCodec:
    """The codec of every schema in schemas/."""
    return AvroCodec()


@pytest.fixture(name="history", scope="module")
def fixture_history() -> tuple[Mapper[Any], list[Notification]]:
    """The mapper and notification log of bench/mix.py's commands over 60 accounts."""
    ledger = in_memory_ledger()
    generate(ledger, 300, 60)
    return ledger.mapper, ledger.recorder.select_notifications(start=1, limit=10_000)


def domain_record(mapper: Mapper[Any], notification: Notification) -> dict[str, Any]:
    """The record the domain-event path makes of `notification`."""
    event = mapper.to_domain_event(notification)
    if isinstance(event, CommandReceipt.Recorded | CommandReceipt.Redelivered):
        return result_record(event)
    return event_record(event)


def first(notifications: list[Notification], topic: str) -> Notification:
    """The first notification of stored `topic`."""
    return next(n for n in notifications if n.topic == topic)


def with_state(notification: Notification, change: Any) -> Notification:
    """`notification` with its stored state (a dict) changed in place by `change`."""
    state = json.loads(notification.state)
    change(state)
    return replace(notification, state=json.dumps(state).encode())


def stored_version(notification: Notification) -> int:
    """The class version the stored state was written with."""
    version: int = json.loads(notification.state).get("class_version", 1)
    return version


class TestFromTheStoredState:
    """Every event stored by the current code is made straight from its state, the same record."""

    def test_every_notification_of_a_generated_history_is_made_from_its_state(
        self, history: tuple[Mapper[Any], list[Notification]]
    ) -> None:
        """Account events, plan events and receipts alike: the domain path's records."""
        mapper, notifications = history
        records = StoredRecords(mapper)
        for notification in notifications:
            stored = records.of(notification)
            assert stored is not None, notification.topic
            assert stored.record == domain_record(mapper, notification), notification.topic
        assert RESULT_SCHEMA in {records.schema_of(n) for n in notifications}

    def test_released_events_of_the_current_version_are_made_from_their_state(self) -> None:
        """Only a state stored by an older class version (to upcast) is left to the domain path."""
        mapper, records = offline_mapper(), StoredRecords(offline_mapper())
        left = []
        for notification in released_notifications():
            stored = records.of(notification)
            if stored is None:
                left.append(notification)
            else:
                assert stored.record == domain_record(mapper, notification), notification.topic
        assert {n.topic.rpartition(".")[2] for n in left} == {"InvoiceIssued", "PaymentReceived"}
        for notification in left:
            current = getattr(resolve_topic(notification.topic), "class_version", 1)
            assert stored_version(notification) < current

    def test_a_value_object_stored_before_its_defaulted_fields_gets_their_defaults(
        self, history: tuple[Mapper[Any], list[Notification]]
    ) -> None:
        """Terms without its early-payment fields and plan version: the dataclass defaults."""
        mapper, notifications = history

        def older_terms(state: dict[str, Any]) -> None:
            for name in ("early_payment_discount_bp", "early_payment_days", "plan_version"):
                del state["terms"]["_data_"][name]

        older = with_state(first(notifications, SUBSCRIBED), older_terms)
        stored = StoredRecords(mapper).of(older)
        assert stored is not None
        assert stored.record["early_payment_discount_bp"] == 0
        assert stored.record == domain_record(mapper, older)


class TestLeftToTheDomainEvent:
    """What the stored state cannot give the same way is made from the domain event."""

    def test_a_field_holding_a_plain_json_object_is_left(
        self, history: tuple[Mapper[Any], list[Notification]]
    ) -> None:
        """The object hook would keep the objects inside it: not a record this path makes."""
        mapper, notifications = history
        odd = with_state(first(notifications, INVOICE_PAID), lambda s: s.update(note={"a": 1}))
        assert StoredRecords(mapper).of(odd) is None

    def test_an_unknown_tag_is_left(self, history: tuple[Mapper[Any], list[Notification]]) -> None:
        """A transcoding the application does not register: the mapper raises its own error."""
        mapper, notifications = history

        def unknown_tag(state: dict[str, Any]) -> None:
            state["invoice_id"] = {"_type_": "no_such_type", "_data_": "x"}

        assert (
            StoredRecords(mapper).of(with_state(first(notifications, INVOICE_PAID), unknown_tag))
            is None
        )

    def test_a_value_object_with_a_field_it_does_not_have_is_left(
        self, history: tuple[Mapper[Any], list[Notification]]
    ) -> None:
        """Its constructor would refuse it."""
        mapper, notifications = history
        odd = with_state(
            first(notifications, SUBSCRIBED), lambda s: s["terms"]["_data_"].update(colour="red")
        )
        assert StoredRecords(mapper).of(odd) is None

    def test_a_value_the_enum_of_its_field_does_not_know_is_left(
        self, history: tuple[Mapper[Any], list[Notification]]
    ) -> None:
        """A posting's side is converted to Side on decoding: SIDEWAYS is Side's to refuse."""
        mapper, notifications = history

        def sideways(state: dict[str, Any]) -> None:
            state["postings"][0]["_data_"]["side"] = "SIDEWAYS"

        odd = with_state(first(notifications, INVOICE_ISSUED), sideways)
        assert StoredRecords(mapper).of(odd) is None
        with pytest.raises(ValueError, match="SIDEWAYS"):
            mapper.to_domain_event(odd)

    def test_a_compressed_store_is_read_by_the_mapper(
        self, history: tuple[Mapper[Any], list[Notification]], codec: AvroCodec
    ) -> None:
        """With a compressor (or cipher) the state is the mapper's to read: same messages."""
        mapper, notifications = history
        compressing = Mapper(mapper.transcoder, compressor=_Zlib())
        packed = [replace(n, state=zlib.compress(n.state)) for n in notifications[:50]]
        assert all(StoredRecords(compressing).of(n) is None for n in packed)
        make = StoredMessages(compressing, codec)
        assert [make(n) for n in packed] == [
            outgoing(mapper.to_domain_event(n), n.id, codec) for n in notifications[:50]
        ]

    def test_a_record_that_does_not_fit_raises_the_domain_paths_error(
        self, history: tuple[Mapper[Any], list[Notification]], codec: AvroCodec
    ) -> None:
        """InvoicePaid without its amount: the InvalidRecord the domain path raises."""
        mapper, notifications = history
        odd = with_state(first(notifications, INVOICE_PAID), lambda s: s.pop("amount_minor"))
        with pytest.raises(InvalidRecord) as from_domain_event:
            outgoing(mapper.to_domain_event(odd), odd.id, codec)
        with pytest.raises(InvalidRecord) as raised:
            StoredMessages(mapper, codec)(odd)
        assert "amount_minor is missing" in str(raised.value)
        assert str(raised.value) == str(from_domain_event.value)


class _Zlib:
    """A compressor for the mapper: zlib."""

    def compress(self, data: bytes) -> bytes:
        return zlib.compress(data)

    def decompress(self, data: bytes) -> bytes:
        return zlib.decompress(data)
