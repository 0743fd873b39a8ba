"""Commands as the handlers see them, and the mapping from decoded Avro records to them."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from datetime import date, datetime
from typing import Any, ClassVar

from ledger.account import CancellationPolicy, Contact
from ledger.calendar import IntervalUnit
from ledger.dunning import DunningPolicy, FinalAction
from ledger.plan_terms import TermsAsked
from ledger.receivables import ChargeFailureReason

COMMAND_NAMESPACE = "billing.commands"


class Command:
    """What every command carries: its id, its key and its business time.

    `key_field` names the field that is the command's Kafka message key: the aggregate it
    changes, whose commands must stay in order.
    """

    command_id: str
    issued_at: datetime
    key_field: ClassVar[str]

    @property
    def key(self) -> str:
        """The command's Kafka message key: its account_id, or the plan_id of a plan command."""
        return str(getattr(self, self.key_field))


@dataclass(frozen=True)
class AccountCommand(Command):
    """A command about one customer account."""

    command_id: str
    account_id: str
    issued_at: datetime
    key_field: ClassVar[str] = "account_id"


@dataclass(frozen=True)
class PlanCommand(Command):
    """A command about one plan of the catalogue."""

    command_id: str
    plan_id: str
    issued_at: datetime
    key_field: ClassVar[str] = "plan_id"


@dataclass(frozen=True)
class DefinePlan(PlanCommand):
    """Add a plan to the catalogue."""

    name: str
    price_minor: int
    currency: str
    interval_unit: IntervalUnit
    interval_count: int
    trial_days: int


@dataclass(frozen=True)
class RevisePlan(PlanCommand):
    """Give new subscribers of a plan another price (and trial or name); None keeps it."""

    price_minor: int
    trial_days: int | None
    name: str | None


@dataclass(frozen=True)
class RetirePlan(PlanCommand):
    """Take no new subscribers to a plan."""


@dataclass(frozen=True)
class OpenAccount(AccountCommand):
    """Open a customer account in one currency."""

    currency: str
    customer_reference: str
    contacts: tuple[Contact, ...]


@dataclass(frozen=True)
class Subscribe(AccountCommand):
    """Subscribe the account to a plan on the accepted terms."""

    subscription_id: str
    terms: TermsAsked


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
    unit = record["interval_unit"]
    terms = TermsAsked(
        plan_id=record["plan_id"],
        price_minor=record["price_minor"],
        currency=record["currency"],
        interval_unit=None if unit is None else IntervalUnit(unit),
        interval_count=record["interval_count"],
        trial_days=record["trial_days"],
        days_until_due=record["days_until_due"],
        cancellation_policy=CancellationPolicy(record["cancellation_policy"]),
        early_payment_discount_bp=record["early_payment_discount_bp"],
        early_payment_days=record["early_payment_days"],
    )
    return Subscribe(**head, subscription_id=record["subscription_id"], terms=terms)


@dataclass(frozen=True)
class AdvanceClock(AccountCommand):
    """Business time has reached issued_at: do what has fallen due."""


@dataclass(frozen=True)
class RecordPayment(AccountCommand):
    """Money was received for the account."""

    payment_id: str
    amount_minor: int
    currency: str
    payment_method_kind: str
    invoice_id: str | None


@dataclass(frozen=True)
class FailCharge(AccountCommand):
    """A charge of an invoice failed."""

    invoice_id: str
    payment_method_kind: str
    reason: ChargeFailureReason


@dataclass(frozen=True)
class ChangePlan(AccountCommand):
    """Move a subscription to another plan and price now."""

    subscription_id: str
    plan_id: str
    price_minor: int | None


@dataclass(frozen=True)
class PauseSubscription(AccountCommand):
    """Stop invoicing a subscription until resumed."""

    subscription_id: str


@dataclass(frozen=True)
class ResumeSubscription(AccountCommand):
    """Invoice a paused subscription again."""

    subscription_id: str


@dataclass(frozen=True)
class CancelSubscription(AccountCommand):
    """Cancel a subscription per its accepted policy."""

    subscription_id: str


@dataclass(frozen=True)
class ReactivateSubscription(AccountCommand):
    """Withdraw a cancellation, or start a cancelled subscription again."""

    subscription_id: str


@dataclass(frozen=True)
class AddPaymentMethod(AccountCommand):
    """Put a payment method on file, as the default if asked (the first one always is)."""

    payment_method_id: str
    kind: str
    label: str | None
    expires_on: date | None
    make_default: bool


@dataclass(frozen=True)
class RemovePaymentMethod(AccountCommand):
    """Take a payment method off file."""

    payment_method_id: str


@dataclass(frozen=True)
class SetDefaultPaymentMethod(AccountCommand):
    """Charge the account with this payment method from now on."""

    payment_method_id: str


@dataclass(frozen=True)
class RecordFeedback(AccountCommand):
    """The customer scored the service from 0 to 10 and may have said why."""

    feedback_id: str
    score: int
    comment: str
    topic: str | None


@dataclass(frozen=True)
class SetDunningPolicy(AccountCommand):
    """The account's dunning policy from now on."""

    policy: DunningPolicy


@dataclass(frozen=True)
class ReportHardship(AccountCommand):
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
class AnnouncePriceChange(AccountCommand):
    """Announce a subscription's new price, with notice."""

    subscription_id: str
    new_price_minor: int
    effective_from: datetime


@dataclass(frozen=True)
class Charge(AccountCommand):
    """Ask the payment system to charge what an open invoice has outstanding."""

    invoice_id: str
    payment_method_id: str | None


@dataclass(frozen=True)
class IssueCreditNote(AccountCommand):
    """Give part of an invoice's revenue back to the customer as account credit."""

    credit_note_id: str
    invoice_id: str
    amount_minor: int
    reason: str


@dataclass(frozen=True)
class RefundCredit(AccountCommand):
    """Pay customer credit back through a kind of payment method."""

    refund_id: str
    amount_minor: int
    payment_method_kind: str


@dataclass(frozen=True)
class WriteOff(AccountCommand):
    """Give up on what an open invoice still owes."""

    invoice_id: str
    reason: str


def by_field_names(
    cls: type[AccountCommand] | type[PlanCommand], **converters: Callable[[Any], Any]
) -> Callable[[Mapping[str, Any], dict[str, Any]], Command]:
    """The mapping of a command whose own fields are record fields of the same names.

    `converters` turn a field's Avro value into the command's type (an enum, a tuple).
    """
    own = [f.name for f in fields(cls) if f.name not in ("command_id", "issued_at", cls.key_field)]

    def from_record(record: Mapping[str, Any], head: dict[str, Any]) -> Command:
        return cls(
            **head,
            **{name: converters.get(name, _same)(record[name]) for name in own},
        )

    return from_record


def _same(value: Any) -> Any:
    return value


@dataclass(frozen=True)
class Renegotiate(AccountCommand):
    """Consolidate overdue invoices into a plan of installments."""

    plan_id: str
    invoice_ids: tuple[str, ...]
    installments: int
    first_due_at: datetime
    interval_days: int
    interest_minor: int
    forgiven_minor: int


FROM_RECORD: dict[str, Callable[[Mapping[str, Any], dict[str, Any]], Command]] = {
    "DefinePlan": by_field_names(DefinePlan, interval_unit=IntervalUnit),
    "RevisePlan": by_field_names(RevisePlan),
    "RetirePlan": by_field_names(RetirePlan),
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


PLAN_COMMAND_TYPES = frozenset({"DefinePlan", "RevisePlan", "RetirePlan"})


def command_type_of(schema_name: str) -> str | None:
    """The command type a schema carries (`billing.commands.Subscribe` -> `Subscribe`), or None."""
    namespace, _, name = schema_name.rpartition(".")
    return name if namespace == COMMAND_NAMESPACE and name in FROM_RECORD else None


def key_field_of(command_type: str) -> str:
    """The field of a `command_type` record that is its Kafka key: account_id, or plan_id."""
    return "plan_id" if command_type in PLAN_COMMAND_TYPES else "account_id"


def command_from_record(command_type: str, record: Mapping[str, Any]) -> Command:
    """The command a decoded record of `command_type` carries."""
    key_field = key_field_of(command_type)
    head = {
        "command_id": record["command_id"],
        "issued_at": record["issued_at"],
        key_field: record[key_field],
    }
    return FROM_RECORD[command_type](record, head)


def content_digest(command_type: str, record: Mapping[str, Any]) -> str:
    """A digest of a command's content, to tell a redelivery from a reused command_id."""
    canonical = json.dumps([command_type, record], sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()
