"""Specification of publishing stored events: domain event -> Avro record -> Kafka message."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from audit.export_format import offline_mapper
from bench.projections import generate
from bench.relay_encode import messages, previous_outgoing, stored_messages
from infra.kafka import Outgoing
from ledger.account import Account, Contact
from ledger.application import BillingLedger, event_id
from ledger.receipts import CommandReceipt
from ledger.receivables import ChargeFailureReason
from tests.unit.builders import (
    ISSUED_AT,
    Sender,
    advance_clock,
    fail_charge,
    in_memory_ledger,
    open_account,
    record_payment,
    subscribe,
)
from tests.unit.test_history import released_notifications
from wire.codec import AvroCodec, Decoded
from wire.event_records import (
    ACCOUNT_EVENT_SCHEMAS,
    EVENT_SCHEMAS,
    RESULT_SCHEMA,
    account_event_record,
    outgoing,
    result_record,
)
from wire.topics import EVENTS_TOPIC, RESULTS_TOPIC

RECEIPT_EVENTS = (CommandReceipt.Recorded, CommandReceipt.Redelivered)
ACCOUNT_EVENTS = (Account.Opened, Account.Subscribed, Account.InvoiceIssued)
OPEN_COMMAND_ID = "0f6f3c1e-6d1a-4c0e-9d55-5a4f0d7e1a01"
SUBSCRIBE_COMMAND_ID = "0f6f3c1e-6d1a-4c0e-9d55-5a4f0d7e1a02"
TRIAL_COMMAND_ID = "0f6f3c1e-6d1a-4c0e-9d55-5a4f0d7e1a03"
UNKNOWN_COMMAND_ID = "0f6f3c1e-6d1a-4c0e-9d55-5a4f0d7e1a04"
RECEIVABLES_EVENTS = (
    Account.InvoiceOverdue,
    Account.PaymentReceived,
    Account.CreditApplied,
    Account.InvoicePaid,
    Account.ChargeFailed,
)
FAIL_COMMAND_ID = "0f6f3c1e-6d1a-4c0e-9d55-5a4f0d7e1a05"
OVERDUE_TICK_COMMAND_ID = "0f6f3c1e-6d1a-4c0e-9d55-5a4f0d7e1a06"
PAY_COMMAND_ID = "0f6f3c1e-6d1a-4c0e-9d55-5a4f0d7e1a07"
CREDIT_TICK_COMMAND_ID = "0f6f3c1e-6d1a-4c0e-9d55-5a4f0d7e1a08"
FAILED_AT = datetime(2024, 2, 1, 9, 30, tzinfo=UTC)
OVERDUE_AT = datetime(2024, 2, 20, 9, 30, tzinfo=UTC)
PAID_AT = datetime(2024, 2, 21, 9, 30, tzinfo=UTC)
CREDITED_AT = datetime(2024, 2, 29, 9, 30, tzinfo=UTC)


@dataclass(frozen=True)
class Published:
    """One stored event, where it is in the notification log, and the message publishing it."""

    event: Any
    position: int
    message: Outgoing
    decoded: Decoded

    @property
    def headers(self) -> dict[str, bytes]:
        """The message headers by name."""
        return dict(self.message.headers)


@pytest.fixture(name="codec", scope="module")
def fixture_codec() -> AvroCodec:
    """The codec of every schema in schemas/."""
    return AvroCodec()


@pytest.fixture(name="published")
def fixture_published(ledger: BillingLedger, send: Sender, codec: AvroCodec) -> list[Published]:
    """Every event a realistic history stored, published and decoded back.

    Batch 1 opens acc-1, subscribes it without and with a trial, and tries an unknown account;
    batch 2 redelivers a Subscribe and reuses its command_id for other content.
    """
    subscribing = subscribe(
        command_id=SUBSCRIBE_COMMAND_ID, issued_at=ISSUED_AT + timedelta(minutes=1)
    )
    send(
        open_account(
            command_id=OPEN_COMMAND_ID,
            contacts=(Contact("email", "billing@example.com"), Contact("sms", "+4930123456")),
        ),
        subscribing,
        subscribe(
            command_id=TRIAL_COMMAND_ID,
            issued_at=ISSUED_AT + timedelta(minutes=2),
            subscription_id="sub-2",
            trial_days=14,
        ),
        subscribe("acc-404", command_id=UNKNOWN_COMMAND_ID),
    )
    send(
        subscribing,
        subscribe(command_id=SUBSCRIBE_COMMAND_ID, price_minor=1),
    )
    return publish_all(ledger, codec)


@pytest.fixture(name="receivables_published")
def fixture_receivables_published(codec: AvroCodec) -> list[Published]:
    """Every event of a receivables history, in a ledger of its own, published and decoded back.

    acc-1 subscribes to 15.00 monthly (sub-1/1, due 14 Feb); a debit card charge of sub-1/1
    fails on 1 Feb; the clock on 20 Feb marks it overdue; 20.00 by bank transfer on 21 Feb pays
    it and leaves 5.00 credit; the clock on 29 Feb issues sub-1/2 and applies the credit to it.
    """
    ledger = in_memory_ledger()
    send = Sender(ledger)
    send(open_account(command_id=OPEN_COMMAND_ID), subscribe(command_id=SUBSCRIBE_COMMAND_ID))
    send(
        fail_charge(
            command_id=FAIL_COMMAND_ID,
            issued_at=FAILED_AT,
            invoice_id="sub-1/1",
            reason=ChargeFailureReason.INSUFFICIENT_FUNDS,
            payment_method_kind="debit_card",
        )
    )
    send(advance_clock(command_id=OVERDUE_TICK_COMMAND_ID, issued_at=OVERDUE_AT))
    send(
        record_payment(
            command_id=PAY_COMMAND_ID,
            issued_at=PAID_AT,
            payment_id="pay-1",
            amount_minor=2000,
            payment_method_kind="bank_transfer",
        )
    )
    send(advance_clock(command_id=CREDIT_TICK_COMMAND_ID, issued_at=CREDITED_AT))
    return publish_all(ledger, codec)


def publish_all(ledger: BillingLedger, codec: AvroCodec) -> list[Published]:
    """Every stored event of `ledger`, published as the relay would and decoded back."""
    published = []
    for notification in ledger.recorder.select_notifications(start=1, limit=1000):
        event = ledger.mapper.to_domain_event(notification)
        message = outgoing(event, notification.id, codec)
        published.append(Published(event, notification.id, message, codec.decode(message.value)))
    return published


def only(published: list[Published], *event_types: type) -> list[Published]:
    """The published events of the given types."""
    return [item for item in published if isinstance(item.event, event_types)]


def the_one(published: list[Published], event_type: type, **fields: Any) -> Published:
    """The single published event of `event_type` whose attributes equal `fields`."""
    (found,) = [
        item
        for item in only(published, event_type)
        if all(getattr(item.event, name) == value for name, value in fields.items())
    ]
    return found


class TestEveryStoredEvent:
    """Every event the ledger stores becomes a valid message on the right topic."""

    def test_the_history_covers_every_account_and_receipt_event_type(
        self, published: list[Published]
    ) -> None:
        """The fixture exercises each event type this module specifies."""
        assert {type(item.event) for item in published} == {*ACCOUNT_EVENTS, *RECEIPT_EVENTS}

    def test_account_events_go_to_the_events_topic_and_receipts_to_results(
        self, published: list[Published]
    ) -> None:
        """billing.events for account events, billing.command-results for receipts."""
        for item in published:
            expected = RESULTS_TOPIC if isinstance(item.event, RECEIPT_EVENTS) else EVENTS_TOPIC
            assert item.message.topic == expected, item.event

    def test_every_message_is_keyed_by_its_account_id(self, published: list[Published]) -> None:
        """The key keeps one account's messages in one partition, in order."""
        for item in published:
            assert item.message.key == item.event.account_id.encode()
        assert {item.message.key for item in published} == {b"acc-1", b"acc-404"}

    def test_every_message_names_its_type_id_and_position_in_headers(
        self, published: list[Published]
    ) -> None:
        """event_type, event_id and event_position let consumers route and deduplicate."""
        for item in published:
            identity = event_id(item.event.originator_id, item.event.originator_version)
            assert item.headers["event_id"] == identity.encode()
            assert item.headers["event_position"] == str(item.position).encode()
            assert (
                item.headers["event_type"] == item.decoded.schema_name.rpartition(".")[2].encode()
            )

    def test_every_account_event_is_written_with_its_billing_events_schema(
        self, published: list[Published]
    ) -> None:
        """The writer schema is the one ACCOUNT_EVENT_SCHEMAS names for the event's class."""
        for item in only(published, *ACCOUNT_EVENTS):
            assert item.decoded.schema_name == ACCOUNT_EVENT_SCHEMAS[type(item.event)]
        for item in only(published, *RECEIPT_EVENTS):
            assert item.decoded.schema_name == RESULT_SCHEMA

    def test_decoding_gives_back_the_record_that_was_encoded(
        self, published: list[Published]
    ) -> None:
        """Nothing is lost or altered on the wire (times are whole milliseconds here)."""
        for item in published:
            if isinstance(item.event, RECEIPT_EVENTS):
                assert item.decoded.record == result_record(item.event)
            else:
                assert item.decoded.record == account_event_record(item.event)


class TestAccountOpened:
    """AccountOpened carries the account's details and its contacts."""

    def test_the_record_holds_the_accounts_details(self, published: list[Published]) -> None:
        """Identity, time, command, version, currency, customer and contacts."""
        item = the_one(published, Account.Opened)
        assert item.headers["event_type"] == b"AccountOpened"
        assert item.decoded.record == {
            "event_id": event_id(item.event.originator_id, 1),
            "account_id": "acc-1",
            "occurred_at": ISSUED_AT,
            "command_id": OPEN_COMMAND_ID,
            "account_version": 1,
            "currency": "EUR",
            "customer_reference": "customer-1",
            "contacts": [
                {"channel": "email", "address": "billing@example.com"},
                {"channel": "sms", "address": "+4930123456"},
            ],
        }


class TestSubscribed:
    """Subscribed spreads the accepted terms into the record, beside the first period."""

    def test_the_terms_are_spread_into_the_record(self, published: list[Published]) -> None:
        """Plan, price, currency, interval, trial, due days and policy are top-level fields."""
        item = the_one(published, Account.Subscribed, subscription_id="sub-1")
        subscribed_at = ISSUED_AT + timedelta(minutes=1)
        assert item.decoded.record == {
            "event_id": event_id(item.event.originator_id, 2),
            "account_id": "acc-1",
            "occurred_at": subscribed_at,
            "command_id": SUBSCRIBE_COMMAND_ID,
            "account_version": 2,
            "subscription_id": "sub-1",
            "plan_id": "gold-monthly",
            "price_minor": 1500,
            "currency": "EUR",
            "interval_unit": "MONTH",
            "interval_count": 1,
            "trial_days": 0,
            "days_until_due": 14,
            "cancellation_policy": "AT_PERIOD_END",
            "early_payment_discount_bp": 0,
            "early_payment_days": 0,
            "plan_version": None,
            "trial_ends_at": None,
            "current_period_start": subscribed_at,
            "current_period_end": datetime(2024, 2, 29, 9, 31, tzinfo=UTC),
        }

    def test_a_trial_is_published_with_its_end(self, published: list[Published]) -> None:
        """trial_ends_at is set, and the current period ends with the trial."""
        item = the_one(published, Account.Subscribed, subscription_id="sub-2")
        trial_ends_at = ISSUED_AT + timedelta(minutes=2, days=14)
        assert item.decoded.record["trial_days"] == 14
        assert item.decoded.record["trial_ends_at"] == trial_ends_at
        assert item.decoded.record["current_period_end"] == trial_ends_at


class TestInvoiceIssued:
    """InvoiceIssued carries the invoice and its balanced postings."""

    def test_the_record_holds_the_invoice_and_its_postings(
        self, published: list[Published]
    ) -> None:
        """Receivable is debited and revenue credited with the price."""
        item = the_one(published, Account.InvoiceIssued)
        subscribed_at = ISSUED_AT + timedelta(minutes=1)
        assert item.headers["event_type"] == b"InvoiceIssued"
        assert item.decoded.record == {
            "event_id": event_id(item.event.originator_id, 3),
            "account_id": "acc-1",
            "occurred_at": subscribed_at,
            "command_id": SUBSCRIBE_COMMAND_ID,
            "account_version": 3,
            "invoice_id": "sub-1/1",
            "subscription_id": "sub-1",
            "cycle": 0,
            "amount_minor": 1500,
            "currency": "EUR",
            "period_start": subscribed_at,
            "period_end": datetime(2024, 2, 29, 9, 31, tzinfo=UTC),
            "due_at": subscribed_at + timedelta(days=14),
            "postings": [
                {"ledger_account": "receivable", "side": "DEBIT", "amount_minor": 1500},
                {"ledger_account": "revenue", "side": "CREDIT", "amount_minor": 1500},
            ],
            "early_payment_discount_minor": 0,
            "early_payment_deadline": None,
        }


def envelope(item: Published, command_id: str, occurred_at: datetime) -> dict[str, Any]:
    """The fields every billing.events record of acc-1 starts with."""
    version = item.event.originator_version
    return {
        "event_id": event_id(item.event.originator_id, version),
        "account_id": "acc-1",
        "occurred_at": occurred_at,
        "command_id": command_id,
        "account_version": version,
    }


class TestReceivablesEvents:
    """Overdue marks, payments, credit, paid invoices and failed charges are published too."""

    def test_the_history_covers_every_receivables_event_type(
        self, receivables_published: list[Published]
    ) -> None:
        """The fixture exercises each receivables event type, once each."""
        types = [type(item.event) for item in only(receivables_published, *RECEIVABLES_EVENTS)]
        assert sorted(t.__name__ for t in types) == sorted(t.__name__ for t in RECEIVABLES_EVENTS)

    def test_each_is_written_with_its_schema_and_decodes_to_its_record(
        self, receivables_published: list[Published]
    ) -> None:
        """Events topic, keyed by acc-1, the schema of its class, and nothing lost on the wire."""
        for item in only(receivables_published, *RECEIVABLES_EVENTS):
            schema_name = ACCOUNT_EVENT_SCHEMAS[type(item.event)]
            assert item.message.topic == EVENTS_TOPIC
            assert item.message.key == b"acc-1"
            assert item.decoded.schema_name == schema_name
            assert item.headers["event_type"] == schema_name.rpartition(".")[2].encode()
            assert item.decoded.record == account_event_record(item.event)

    def test_invoice_overdue_carries_what_is_outstanding_and_when_it_was_due(
        self, receivables_published: list[Published]
    ) -> None:
        """sub-1/1, 15.00 EUR outstanding, due 14 Feb, marked by the tick of 20 Feb."""
        item = the_one(receivables_published, Account.InvoiceOverdue)
        assert item.decoded.record == envelope(item, OVERDUE_TICK_COMMAND_ID, OVERDUE_AT) | {
            "invoice_id": "sub-1/1",
            "outstanding_minor": 1500,
            "currency": "EUR",
            "due_at": datetime(2024, 2, 14, 9, 30, tzinfo=UTC),
        }

    def test_payment_received_carries_allocations_credit_and_postings(
        self, receivables_published: list[Published]
    ) -> None:
        """15.00 to sub-1/1, 5.00 credited; cash debited, receivable and credit credited."""
        item = the_one(receivables_published, Account.PaymentReceived)
        assert item.decoded.record == envelope(item, PAY_COMMAND_ID, PAID_AT) | {
            "payment_id": "pay-1",
            "amount_minor": 2000,
            "currency": "EUR",
            "payment_method_kind": "bank_transfer",
            "allocations": [{"invoice_id": "sub-1/1", "amount_minor": 1500}],
            "credited_minor": 500,
            "postings": [
                {"ledger_account": "cash:bank_transfer", "side": "DEBIT", "amount_minor": 2000},
                {"ledger_account": "receivable", "side": "CREDIT", "amount_minor": 1500},
                {"ledger_account": "customer_credit", "side": "CREDIT", "amount_minor": 500},
            ],
            "invoice_id": None,
            "redirect_reason": None,
        }

    def test_invoice_paid_names_the_invoice_and_its_amount(
        self, receivables_published: list[Published]
    ) -> None:
        """Published by the payment's command, right after PaymentReceived."""
        item = the_one(receivables_published, Account.InvoicePaid)
        received = the_one(receivables_published, Account.PaymentReceived)
        assert item.decoded.record == envelope(item, PAY_COMMAND_ID, PAID_AT) | {
            "invoice_id": "sub-1/1",
            "amount_minor": 1500,
            "currency": "EUR",
        }
        assert (
            item.decoded.record["account_version"] == received.decoded.record["account_version"] + 1
        )

    def test_credit_applied_carries_its_postings(
        self, receivables_published: list[Published]
    ) -> None:
        """5.00 of credit to sub-1/2: customer credit debited, receivable credited."""
        item = the_one(receivables_published, Account.CreditApplied)
        assert item.decoded.record == envelope(item, CREDIT_TICK_COMMAND_ID, CREDITED_AT) | {
            "invoice_id": "sub-1/2",
            "amount_minor": 500,
            "currency": "EUR",
            "postings": [
                {"ledger_account": "customer_credit", "side": "DEBIT", "amount_minor": 500},
                {"ledger_account": "receivable", "side": "CREDIT", "amount_minor": 500},
            ],
        }

    def test_charge_failed_carries_the_reason_as_its_enum_symbol(
        self, receivables_published: list[Published]
    ) -> None:
        """insufficient_funds (a billing.types.ChargeFailureReason symbol), attempt 1."""
        item = the_one(receivables_published, Account.ChargeFailed)
        assert item.decoded.record == envelope(item, FAIL_COMMAND_ID, FAILED_AT) | {
            "invoice_id": "sub-1/1",
            "payment_method_kind": "debit_card",
            "reason": "insufficient_funds",
            "attempt": 1,
        }


class TestCommandResult:
    """Receipt events are published as CommandResults, one per delivery."""

    def test_an_accepted_command_lists_its_event_ids(self, published: list[Published]) -> None:
        """ACCEPTED, the ids of the events it caused, and where the command was read."""
        item = the_one(published, CommandReceipt.Recorded, command_id=SUBSCRIBE_COMMAND_ID)
        account_events = only(published, *ACCOUNT_EVENTS)
        assert item.headers["event_type"] == b"CommandResult"
        assert item.headers["command_id"] == SUBSCRIBE_COMMAND_ID.encode()
        assert item.headers["status"] == b"ACCEPTED"
        assert item.decoded.record == {
            "command_id": SUBSCRIBE_COMMAND_ID,
            "command_type": "Subscribe",
            "account_id": "acc-1",
            "plan_id": None,
            "status": "ACCEPTED",
            "event_ids": [event.headers["event_id"].decode() for event in account_events[1:3]],
            "rejection": None,
            "redelivery": False,
            "source_topic": "billing.commands",
            "source_partition": 0,
            "source_offset": 1,
            "issued_at": ISSUED_AT + timedelta(minutes=1),
        }

    def test_a_rejected_command_carries_its_rejection(self, published: list[Published]) -> None:
        """REJECTED with the code, field and message, keyed by the account it named."""
        item = the_one(published, CommandReceipt.Recorded, command_id=UNKNOWN_COMMAND_ID)
        record = item.decoded.record
        assert item.headers["status"] == b"REJECTED"
        assert item.message.key == b"acc-404"
        assert (record["status"], record["event_ids"]) == ("REJECTED", [])
        assert record["rejection"]["code"] == "unknown_account"
        assert record["rejection"]["field"] == "account_id"
        assert "'acc-404'" in record["rejection"]["message"]

    def test_a_redelivery_repeats_the_original_result(self, published: list[Published]) -> None:
        """Same status and event ids as the first delivery, flagged as a redelivery."""
        original = the_one(published, CommandReceipt.Recorded, command_id=SUBSCRIBE_COMMAND_ID)
        repeated, _reused = only(published, CommandReceipt.Redelivered)
        assert repeated.decoded.record["redelivery"] is True
        assert repeated.decoded.record["status"] == "ACCEPTED"
        assert repeated.decoded.record["event_ids"] == original.decoded.record["event_ids"]
        assert repeated.decoded.record["source_offset"] == 4

    def test_a_reused_command_id_is_published_as_rejected(self, published: list[Published]) -> None:
        """command_id_reused on command_id, without event ids."""
        _repeated, reused = only(published, CommandReceipt.Redelivered)
        record = reused.decoded.record
        assert reused.headers["status"] == b"REJECTED"
        assert (record["status"], record["event_ids"], record["redelivery"]) == (
            "REJECTED",
            [],
            True,
        )
        assert (record["rejection"]["code"], record["rejection"]["field"]) == (
            "command_id_reused",
            "command_id",
        )


class TestSchemas:
    """Every event the relay may publish has a schema in schemas/."""

    def test_every_mapped_account_event_schema_exists(self, codec: AvroCodec) -> None:
        """Each value of ACCOUNT_EVENT_SCHEMAS is a loaded message schema."""
        for event_type, schema_name in ACCOUNT_EVENT_SCHEMAS.items():
            assert schema_name in codec.schema_names, event_type

    def test_the_result_schema_exists(self, codec: AvroCodec) -> None:
        """Receipts are published with billing.results.CommandResult."""
        assert RESULT_SCHEMA in codec.schema_names

    def test_every_account_event_class_is_mapped(self) -> None:
        """A new account event without a schema would fail the relay: it must be added here."""
        # eventsourcing generates Account.Created for every aggregate; open() records Opened.
        never_triggered = {Account.Event, Account.Created}
        event_classes = {
            value
            for value in vars(Account).values()
            if isinstance(value, type)
            and issubclass(value, Account.Opened | Account.Event)
            and value not in never_triggered
        }
        assert event_classes == set(ACCOUNT_EVENT_SCHEMAS)


class TestSameBytesAsBefore:
    """The cheaper message making of issue 15 publishes exactly the messages it did before:
    from the domain event, and straight from the stored state (wire/stored_events.py)."""

    def test_a_generated_history_publishes_the_same_messages(self) -> None:
        """bench/mix.py's commands over 60 accounts: key, value and headers alike, receipts too."""
        ledger = in_memory_ledger()
        generate(ledger, 300, 60)
        notifications = ledger.recorder.select_notifications(start=1, limit=10_000)
        codec = AvroCodec()
        before = messages(ledger.mapper, notifications, codec, previous_outgoing)
        assert messages(ledger.mapper, notifications, codec, outgoing) == before
        assert stored_messages(ledger.mapper, notifications, codec) == before
        assert {out.topic for out in before} == {EVENTS_TOPIC, RESULTS_TOPIC}

    def test_released_events_of_every_type_publish_the_same_messages(self) -> None:
        """The released fixtures hold every event type, upcast from each version's state."""
        mapper, notifications, codec = offline_mapper(), released_notifications(), AvroCodec()
        before = messages(mapper, notifications, codec, previous_outgoing)
        assert {dict(out.headers)["event_type"].decode() for out in before} >= {
            name.rpartition(".")[2] for name in EVENT_SCHEMAS.values()
        } | {"CommandResult"}
        assert messages(mapper, notifications, codec, outgoing) == before
        assert stored_messages(mapper, notifications, codec) == before
