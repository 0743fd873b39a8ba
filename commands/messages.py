"""Commands as the handlers see them: one dataclass per command type (see mapping.py)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import date, datetime
from typing import Any, ClassVar

from ledger.account import Contact
from ledger.calendar import IntervalUnit
from ledger.dunning import DunningPolicy
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

    @classmethod
    def own_field_names(cls) -> tuple[str, ...]:
        """The fields of this command beyond command_id, issued_at and its key."""
        envelope = ("command_id", "issued_at", cls.key_field)
        return tuple(f.name for f in fields(cls) if f.name not in envelope)  # type: ignore[arg-type]

    def own_fields(self) -> dict[str, Any]:
        """This command's own fields by name (see `own_field_names`)."""
        return {name: getattr(self, name) for name in self.own_field_names()}


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
