"""Commands as the handlers see them, and the mapping from decoded Avro records to them."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, is_dataclass
from datetime import UTC, date, datetime
from typing import Any
from uuid import UUID

from ledger.account import CancellationPolicy, Contact, Terms
from ledger.calendar import IntervalUnit
from ledger.dunning import DunningPolicy, FinalAction
from ledger.receivables import ChargeFailureReason

COMMAND_NAMESPACE = "billing.commands"
# The business times the ledger bills from. Billing periods reach up to 1000 years past a
# command (interval_count 1000 YEAR) and Python's dates end with the year 9999.
EARLIEST_ISSUED_AT = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_ISSUED_AT = datetime(2200, 1, 1, tzinfo=UTC)
MAX_QUOTED_KEY_CHARS = 100


@dataclass(frozen=True)
class Command:
    """What every command carries: its id, its account and its business time."""

    command_id: str
    account_id: str
    issued_at: datetime


@dataclass(frozen=True)
class OpenAccount(Command):
    """Open a customer account in one currency."""

    currency: str
    customer_reference: str
    contacts: tuple[Contact, ...]


@dataclass(frozen=True)
class Subscribe(Command):
    """Subscribe the account to a plan on the accepted terms."""

    subscription_id: str
    terms: Terms


def open_account(record: Mapping[str, Any], head: dict[str, Any]) -> OpenAccount:
    """Map a decoded billing.commands.OpenAccount record."""
    contacts = tuple(Contact(c["channel"], c["address"]) for c in record["contacts"])
    return OpenAccount(
        **head,
        currency=record["currency"],
        customer_reference=record["customer_reference"],
        contacts=contacts,
    )


def subscribe(record: Mapping[str, Any], head: dict[str, Any]) -> Subscribe:
    """Map a decoded billing.commands.Subscribe record."""
    terms = Terms(
        plan_id=record["plan_id"],
        price_minor=record["price_minor"],
        currency=record["currency"],
        interval_unit=IntervalUnit(record["interval_unit"]),
        interval_count=record["interval_count"],
        trial_days=record["trial_days"],
        days_until_due=record["days_until_due"],
        cancellation_policy=CancellationPolicy(record["cancellation_policy"]),
        early_payment_discount_bp=record["early_payment_discount_bp"],
        early_payment_days=record["early_payment_days"],
    )
    return Subscribe(**head, subscription_id=record["subscription_id"], terms=terms)


@dataclass(frozen=True)
class AdvanceClock(Command):
    """Business time has reached issued_at: do what has fallen due."""


@dataclass(frozen=True)
class RecordPayment(Command):
    """Money was received for the account."""

    payment_id: str
    amount_minor: int
    currency: str
    payment_method_kind: str
    invoice_id: str | None


@dataclass(frozen=True)
class FailCharge(Command):
    """A charge of an invoice failed."""

    invoice_id: str
    payment_method_kind: str
    reason: ChargeFailureReason


@dataclass(frozen=True)
class ChangePlan(Command):
    """Move a subscription to another plan and price now."""

    subscription_id: str
    plan_id: str
    price_minor: int


@dataclass(frozen=True)
class PauseSubscription(Command):
    """Stop invoicing a subscription until resumed."""

    subscription_id: str


@dataclass(frozen=True)
class ResumeSubscription(Command):
    """Invoice a paused subscription again."""

    subscription_id: str


@dataclass(frozen=True)
class CancelSubscription(Command):
    """Cancel a subscription per its accepted policy."""

    subscription_id: str


@dataclass(frozen=True)
class ReactivateSubscription(Command):
    """Withdraw a cancellation, or start a cancelled subscription again."""

    subscription_id: str


@dataclass(frozen=True)
class AddPaymentMethod(Command):
    """Put a payment method on file, as the default if asked (the first one always is)."""

    payment_method_id: str
    kind: str
    label: str | None
    expires_on: date | None
    make_default: bool


@dataclass(frozen=True)
class RemovePaymentMethod(Command):
    """Take a payment method off file."""

    payment_method_id: str


@dataclass(frozen=True)
class SetDefaultPaymentMethod(Command):
    """Charge the account with this payment method from now on."""

    payment_method_id: str


@dataclass(frozen=True)
class RecordFeedback(Command):
    """The customer scored the service from 0 to 10 and may have said why."""

    feedback_id: str
    score: int
    comment: str
    topic: str | None


@dataclass(frozen=True)
class SetDunningPolicy(Command):
    """The account's dunning policy from now on."""

    policy: DunningPolicy


@dataclass(frozen=True)
class ReportHardship(Command):
    """Pause dunning for a hardship the customer reported."""

    reason: str
    days: int


def set_dunning_policy(record: Mapping[str, Any], head: dict[str, Any]) -> SetDunningPolicy:
    """Map a decoded billing.commands.SetDunningPolicy record."""
    policy = DunningPolicy(
        reminder_days_before_due=tuple(record["reminder_days_before_due"]),
        reminder_days_after_due=tuple(record["reminder_days_after_due"]),
        retry_days_after_failure=tuple(record["retry_days_after_failure"]),
        grace_days=record["grace_days"],
        final_action=FinalAction(record["final_action"]),
    )
    return SetDunningPolicy(**head, policy=policy)


@dataclass(frozen=True)
class AnnouncePriceChange(Command):
    """Announce a subscription's new price, with notice."""

    subscription_id: str
    new_price_minor: int
    effective_from: datetime


@dataclass(frozen=True)
class Charge(Command):
    """Ask the payment system to charge what an open invoice has outstanding."""

    invoice_id: str
    payment_method_id: str | None


@dataclass(frozen=True)
class IssueCreditNote(Command):
    """Give part of an invoice's revenue back to the customer as account credit."""

    credit_note_id: str
    invoice_id: str
    amount_minor: int
    reason: str


@dataclass(frozen=True)
class RefundCredit(Command):
    """Pay customer credit back through a kind of payment method."""

    refund_id: str
    amount_minor: int
    payment_method_kind: str


@dataclass(frozen=True)
class WriteOff(Command):
    """Give up on what an open invoice still owes."""

    invoice_id: str
    reason: str


def by_field_names(
    cls: type[Command], **converters: Callable[[Any], Any]
) -> Callable[[Mapping[str, Any], dict[str, Any]], Command]:
    """The mapping of a command whose own fields are record fields of the same names.

    `converters` turn a field's Avro value into the command's type (an enum, a tuple).
    """
    own = [f.name for f in fields(cls) if f.name not in ("command_id", "account_id", "issued_at")]

    def from_record(record: Mapping[str, Any], head: dict[str, Any]) -> Command:
        return cls(
            **head,
            **{name: converters.get(name, _same)(record[name]) for name in own},
        )

    return from_record


def _same(value: Any) -> Any:
    return value


@dataclass(frozen=True)
class Renegotiate(Command):
    """Consolidate overdue invoices into a plan of installments."""

    plan_id: str
    invoice_ids: tuple[str, ...]
    installments: int
    first_due_at: datetime
    interval_days: int
    interest_minor: int
    forgiven_minor: int


FROM_RECORD: dict[str, Callable[[Mapping[str, Any], dict[str, Any]], Command]] = {
    "AdvanceClock": by_field_names(AdvanceClock),
    "RecordPayment": by_field_names(RecordPayment),
    "FailCharge": by_field_names(FailCharge, reason=ChargeFailureReason),
    "Renegotiate": by_field_names(Renegotiate, invoice_ids=tuple),
    "SetDunningPolicy": set_dunning_policy,
    "ReportHardship": by_field_names(ReportHardship),
    "ChangePlan": by_field_names(ChangePlan),
    "AnnouncePriceChange": by_field_names(AnnouncePriceChange),
    "PauseSubscription": by_field_names(PauseSubscription),
    "ResumeSubscription": by_field_names(ResumeSubscription),
    "CancelSubscription": by_field_names(CancelSubscription),
    "ReactivateSubscription": by_field_names(ReactivateSubscription),
    "AddPaymentMethod": by_field_names(AddPaymentMethod),
    "RemovePaymentMethod": by_field_names(RemovePaymentMethod),
    "SetDefaultPaymentMethod": by_field_names(SetDefaultPaymentMethod),
    "RecordFeedback": by_field_names(RecordFeedback),
    "Charge": by_field_names(Charge),
    "IssueCreditNote": by_field_names(IssueCreditNote),
    "RefundCredit": by_field_names(RefundCredit),
    "WriteOff": by_field_names(WriteOff),
    "OpenAccount": open_account,
    "Subscribe": subscribe,
}


def command_type_of(schema_name: str) -> str | None:
    """The command type a schema carries (`billing.commands.Subscribe` -> `Subscribe`), or None."""
    namespace, _, name = schema_name.rpartition(".")
    return name if namespace == COMMAND_NAMESPACE and name in FROM_RECORD else None


def command_from_record(command_type: str, record: Mapping[str, Any]) -> Command:
    """The command a decoded record of `command_type` carries."""
    head = {
        "command_id": record["command_id"],
        "account_id": record["account_id"],
        "issued_at": record["issued_at"],
    }
    return FROM_RECORD[command_type](record, head)


def content_digest(command_type: str, record: Mapping[str, Any]) -> str:
    """A digest of a command's content, to tell a redelivery from a reused command_id."""
    canonical = json.dumps([command_type, record], sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def command_id_problem(command_id: str) -> str | None:
    """Why `command_id` is not a usable command id, or None if it is a canonical UUID string.

    Only the canonical form (36 characters, lower case, hyphenated) is accepted: receipts are
    keyed by the text, and one UUID written two ways must not be processed twice.
    """
    try:
        canonical = str(UUID(command_id))
    except ValueError:
        return f"command_id must be a UUID string, got {command_id!r}"
    if canonical != command_id:
        return f"command_id must be a UUID in canonical form ({canonical!r}), got {command_id!r}"
    return None


def issued_at_problem(issued_at: datetime) -> str | None:
    """Why `issued_at` is not a business time the ledger can bill from, or None if it is."""
    if EARLIEST_ISSUED_AT <= issued_at < LATEST_ISSUED_AT:
        return None
    return (
        f"issued_at must be from {EARLIEST_ISSUED_AT:%Y-%m-%d} and before "
        f"{LATEST_ISSUED_AT:%Y-%m-%d}, got {issued_at.isoformat()}"
    )


def key_problem(key: bytes | None, account_id: str) -> str | None:
    """Why `key` is not the Kafka key of a command for `account_id`, or None if it is.

    Kafka keeps order per partition and picks the partition from the key: a command keyed
    otherwise could overtake, or be overtaken by, the account's other commands.
    """
    if key == account_id.encode():
        return None
    found = "the message had no key" if key is None else f"the key was {_quoted(key)}"
    return (
        f"the message key must be the account_id {account_id!r}, so that one account's "
        f"commands stay in order; {found}. Send the command again keyed by its account_id, "
        "with a new command_id"
    )


def text_problem(command: Command) -> tuple[str, str] | None:
    """The field of `command` whose text holds a NUL character, and why that is a problem.

    PostgreSQL text cannot hold NUL: a command carrying one could be stored as events but
    never shown in a read model, so it is rejected before it is accepted.
    """
    field = _field_with_nul(command, "")
    if field is None:
        return None
    return field, f"{field} must not contain NUL (U+0000), which PostgreSQL text cannot hold"


def _field_with_nul(value: object, field: str) -> str | None:
    if isinstance(value, str):
        return field if "\x00" in value else None
    if isinstance(value, tuple):  # e.g. contacts: blame the list, the field the sender wrote
        return field if any(_field_with_nul(item, field) for item in value) else None
    if is_dataclass(value):  # the command, or its terms, whose fields are the record's own
        found = (_field_with_nul(getattr(value, f.name), f.name) for f in fields(value))
        return next((name for name in found if name), None)
    return None


def _quoted(key: bytes) -> str:
    try:
        quoted = repr(key.decode())
    except UnicodeDecodeError:
        quoted = repr(key)
    if len(quoted) > MAX_QUOTED_KEY_CHARS:
        return f"{quoted[:MAX_QUOTED_KEY_CHARS]}... ({len(key)} bytes)"
    return quoted
