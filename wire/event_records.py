"""Stored domain events as Avro records and Kafka messages, on their way out of the event store."""

from __future__ import annotations

import dataclasses
from datetime import date, datetime
from enum import Enum
from typing import Any

from infra.kafka import Headers, Outgoing
from ledger.account import Account
from ledger.application import event_id
from ledger.plans import Plan
from ledger.receipts import CommandReceipt
from wire.codec import AvroCodec
from wire.topics import EVENTS_TOPIC, RESULTS_TOPIC

ACCOUNT_EVENT_SCHEMAS: dict[type[Any], str] = {
    Account.Opened: "billing.events.AccountOpened",
    Account.Subscribed: "billing.events.Subscribed",
    Account.InvoiceIssued: "billing.events.InvoiceIssued",
    Account.InvoiceOverdue: "billing.events.InvoiceOverdue",
    Account.PaymentReceived: "billing.events.PaymentReceived",
    Account.CreditApplied: "billing.events.CreditApplied",
    Account.InvoicePaid: "billing.events.InvoicePaid",
    Account.EarlyPaymentDiscountGranted: "billing.events.EarlyPaymentDiscountGranted",
    Account.ChargeFailed: "billing.events.ChargeFailed",
    Account.DebtRenegotiated: "billing.events.DebtRenegotiated",
    Account.RenegotiationDefaulted: "billing.events.RenegotiationDefaulted",
    Account.DunningPolicySet: "billing.events.DunningPolicySet",
    Account.PaymentReminderDue: "billing.events.PaymentReminderDue",
    Account.ChargeRetryScheduled: "billing.events.ChargeRetryScheduled",
    Account.ChargeRetryDue: "billing.events.ChargeRetryDue",
    Account.HardshipPauseStarted: "billing.events.HardshipPauseStarted",
    Account.DunningFinalAction: "billing.events.DunningFinalAction",
    Account.PlanChanged: "billing.events.PlanChanged",
    Account.PriceChangeAnnounced: "billing.events.PriceChangeAnnounced",
    Account.PriceChangeApplied: "billing.events.PriceChangeApplied",
    Account.PriceChangeWithdrawn: "billing.events.PriceChangeWithdrawn",
    Account.CreditNoteIssued: "billing.events.CreditNoteIssued",
    Account.SubscriptionPaused: "billing.events.SubscriptionPaused",
    Account.SubscriptionResumed: "billing.events.SubscriptionResumed",
    Account.CancellationScheduled: "billing.events.CancellationScheduled",
    Account.SubscriptionCancelled: "billing.events.SubscriptionCancelled",
    Account.SubscriptionReactivated: "billing.events.SubscriptionReactivated",
    Account.PaymentMethodAdded: "billing.events.PaymentMethodAdded",
    Account.PaymentMethodRemoved: "billing.events.PaymentMethodRemoved",
    Account.DefaultPaymentMethodSet: "billing.events.DefaultPaymentMethodSet",
    Account.FeedbackRecorded: "billing.events.FeedbackRecorded",
    Account.ChargeRequested: "billing.events.ChargeRequested",
    Account.CreditRefunded: "billing.events.CreditRefunded",
    Account.InvoiceWrittenOff: "billing.events.InvoiceWrittenOff",
}
PLAN_EVENT_SCHEMAS: dict[type[Any], str] = {
    Plan.Defined: "billing.events.PlanDefined",
    Plan.Revised: "billing.events.PlanRevised",
    Plan.Retired: "billing.events.PlanRetired",
}
EVENT_SCHEMAS = ACCOUNT_EVENT_SCHEMAS | PLAN_EVENT_SCHEMAS
RESULT_SCHEMA = "billing.results.CommandResult"
PLAN_SCHEMA_NAMES = frozenset(PLAN_EVENT_SCHEMAS.values())
# Types whose values go into a record unchanged. Exact types: an Enum subclassing str is not one.
_AS_IS: frozenset[type[Any]] = frozenset({str, int, bool, float, type(None), datetime, date})
EVENT_BASE_FIELDS = {"originator_id", "originator_version", "timestamp", "originator_topic"}


def outgoing(event: Any, position: int, codec: AvroCodec) -> Outgoing:
    """The Kafka message that publishes the stored `event` found at notification `position`."""
    identity = event_id(event.originator_id, event.originator_version)
    if isinstance(event, CommandReceipt.Recorded | CommandReceipt.Redelivered):
        return message(RESULT_SCHEMA, result_record(event), identity, position, codec)
    record = event_record(event, identity)  # the event id is a uuid5: made once
    return message(EVENT_SCHEMAS[type(event)], record, identity, position, codec)


def message(
    schema_name: str, record: dict[str, Any], identity: str, position: int, codec: AvroCodec
) -> Outgoing:
    """The Kafka message publishing `record`, the event `identity` at notification `position`."""
    value = codec.encode(schema_name, record)
    if schema_name == RESULT_SCHEMA:
        headers: Headers = (
            ("event_type", b"CommandResult"),
            ("event_id", identity.encode()),
            ("event_position", str(position).encode()),
            ("command_id", record["command_id"].encode()),
            ("status", record["status"].encode()),
        )
        key = record["plan_id"] or record["account_id"]
        return Outgoing(RESULTS_TOPIC, key.encode(), value, headers)
    headers = (
        ("event_type", schema_name.rpartition(".")[2].encode()),
        ("event_id", identity.encode()),
        ("event_position", str(position).encode()),
    )
    key = record["plan_id"] if schema_name in PLAN_SCHEMA_NAMES else record["account_id"]
    return Outgoing(EVENTS_TOPIC, key.encode(), value, headers)


def event_record(event: Any, identity: str | None = None) -> dict[str, Any]:
    """An account or plan event as the record of its billing.events schema (`identity`: its
    event id, if the caller has made it already)."""
    plan = type(event) in PLAN_EVENT_SCHEMAS
    return _record(event, "plan_version" if plan else "account_version", identity)


def account_event_record(event: Any) -> dict[str, Any]:
    """An account event as the record of its billing.events schema."""
    return _record(event, "account_version")


def _record(event: Any, version_field: str, identity: str | None = None) -> dict[str, Any]:
    if identity is None:
        identity = event_id(event.originator_id, event.originator_version)
    record: dict[str, Any] = {
        "event_id": identity,
        "occurred_at": event.timestamp,
        version_field: event.originator_version,
    }
    for name, value in vars(event).items():
        if name in EVENT_BASE_FIELDS:
            continue
        if type(value) in _AS_IS:
            record[name] = value
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            record.update(plain(value))  # a value object such as Terms is spread into the record
        else:
            record[name] = plain(value)
    return record


def result_record(event: CommandReceipt.Recorded | CommandReceipt.Redelivered) -> dict[str, Any]:
    """A receipt event as the CommandResult it publishes."""
    fields = {name: plain(value) for name, value in vars(event).items()}
    return plain_result_record(fields, isinstance(event, CommandReceipt.Redelivered))


def plain_result_record(fields: dict[str, Any], redelivery: bool) -> dict[str, Any]:
    """The CommandResult of a receipt event's fields, plain (`plain`): a redelivery's or not."""
    rejection, source = fields["rejection"], fields["source"]
    return {
        "command_id": fields["command_id"],
        "command_type": fields["command_type"],
        "account_id": fields["account_id"],
        "plan_id": fields.get("plan_id"),  # None before 0.3.0, as the event class's default
        "status": "ACCEPTED" if rejection is None else "REJECTED",
        "event_ids": fields["event_ids"],
        "rejection": rejection,
        "redelivery": redelivery,
        "source_topic": source["topic"],
        "source_partition": source["partition"],
        "source_offset": source["offset"],
        "issued_at": fields["timestamp"],
    }


def plain(value: Any) -> Any:
    """A field's value as a record holds it: an enum as its value, a value object as a dict of
    its fields, a sequence as a list."""
    if type(value) in _AS_IS:  # most values: no Enum, dataclass or sequence checks
        return value
    if isinstance(value, Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    return value
