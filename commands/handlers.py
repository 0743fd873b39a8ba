"""Command handlers, one verb function per command, and the processing of a batch of deliveries."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

import structlog
from eventsourcing.persistence import PersistenceError

from commands.envelope import check_envelope
from commands.messages import (
    AddPaymentMethod,
    AdvanceClock,
    AnnouncePriceChange,
    CancelSubscription,
    ChangePlan,
    Charge,
    Command,
    DefinePlan,
    FailCharge,
    IssueCreditNote,
    OpenAccount,
    PauseSubscription,
    PlanCommand,
    ReactivateSubscription,
    RecordFeedback,
    RecordPayment,
    RefundCredit,
    RemovePaymentMethod,
    Renegotiate,
    ReportHardship,
    ResumeSubscription,
    RetirePlan,
    RevisePlan,
    SetDefaultPaymentMethod,
    SetDunningPolicy,
    Subscribe,
    WriteOff,
)
from commands.unit_of_work import UnitOfWork
from ledger.account import Account, AccountAlreadyOpen
from ledger.errors import RuleViolation
from ledger.plans import Plan, PlanAlreadyDefined, price_for_change, terms_for
from ledger.receipts import CommandReceipt, Rejection, Source

logger = structlog.get_logger(__name__)


def open_account(command: OpenAccount, work: UnitOfWork) -> None:
    """Open the account, unless one with this id is open already."""
    if work.account(command.account_id) is not None:
        raise AccountAlreadyOpen(
            f"account {command.account_id!r} is already open", field="account_id"
        )
    work.add_account(
        Account.open(
            command_id=command.command_id,
            account_id=command.account_id,
            issued_at=command.issued_at,
            currency=command.currency,
            customer_reference=command.customer_reference,
            contacts=command.contacts,
        )
    )


def subscribe(command: Subscribe, work: UnitOfWork) -> None:
    """Subscribe the account to a plan: the catalogue's, with what the command sets, or custom."""
    account = work.require_account(command.account_id)
    account.subscribe(
        command_id=command.command_id,
        issued_at=command.issued_at,
        subscription_id=command.subscription_id,
        terms=terms_for(command.terms, work.plan(command.terms.plan_id)),
    )


def define_plan(command: DefinePlan, work: UnitOfWork) -> None:
    """Add the plan to the catalogue, unless a plan with this id is there already."""
    if work.plan(command.plan_id) is not None:
        raise PlanAlreadyDefined(
            f"plan {command.plan_id!r} is already in the catalogue; RevisePlan changes its "
            "price for new subscribers",
            field="plan_id",
        )
    work.add_plan(
        Plan.define(
            command_id=command.command_id,
            issued_at=command.issued_at,
            plan_id=command.plan_id,
            name=command.name,
            price_minor=command.price_minor,
            currency=command.currency,
            interval_unit=command.interval_unit,
            interval_count=command.interval_count,
            trial_days=command.trial_days,
        )
    )


def revise_plan(command: RevisePlan, work: UnitOfWork) -> None:
    """Give the plan's new subscribers another price."""
    work.require_plan(command.plan_id).revise(
        command_id=command.command_id,
        issued_at=command.issued_at,
        price_minor=command.price_minor,
        trial_days=command.trial_days,
        name=command.name,
    )


def retire_plan(command: RetirePlan, work: UnitOfWork) -> None:
    """Take no new subscribers to the plan."""
    work.require_plan(command.plan_id).retire(
        command_id=command.command_id, issued_at=command.issued_at
    )


def advance_clock(command: AdvanceClock, work: UnitOfWork) -> None:
    """Invoice the cycles begun and mark overdue invoices, as of the command's time."""
    work.require_account(command.account_id).advance_clock(
        command_id=command.command_id, issued_at=command.issued_at
    )


def record_payment(command: RecordPayment, work: UnitOfWork) -> None:
    """Record money received."""
    work.require_account(command.account_id).record_payment(
        command_id=command.command_id,
        issued_at=command.issued_at,
        payment_id=command.payment_id,
        amount_minor=command.amount_minor,
        currency=command.currency,
        payment_method_kind=command.payment_method_kind,
        invoice_id=command.invoice_id,
    )


def fail_charge(command: FailCharge, work: UnitOfWork) -> None:
    """Record a failed charge."""
    work.require_account(command.account_id).fail_charge(
        command_id=command.command_id,
        issued_at=command.issued_at,
        invoice_id=command.invoice_id,
        payment_method_kind=command.payment_method_kind,
        reason=command.reason,
    )


def renegotiate(command: Renegotiate, work: UnitOfWork) -> None:
    """Turn overdue invoices into an installment plan."""
    work.require_account(command.account_id).renegotiate(
        command_id=command.command_id,
        issued_at=command.issued_at,
        plan_id=command.plan_id,
        invoice_ids=command.invoice_ids,
        installments=command.installments,
        first_due_at=command.first_due_at,
        interval_days=command.interval_days,
        interest_minor=command.interest_minor,
        forgiven_minor=command.forgiven_minor,
    )


def set_dunning_policy(command: SetDunningPolicy, work: UnitOfWork) -> None:
    """Adopt a dunning policy."""
    work.require_account(command.account_id).set_dunning_policy(
        command_id=command.command_id, issued_at=command.issued_at, policy=command.policy
    )


def report_hardship(command: ReportHardship, work: UnitOfWork) -> None:
    """Pause dunning for a hardship."""
    work.require_account(command.account_id).report_hardship(
        command_id=command.command_id,
        issued_at=command.issued_at,
        reason=command.reason,
        days=command.days,
    )


def announce_price_change(command: AnnouncePriceChange, work: UnitOfWork) -> None:
    """Announce a new price with notice."""
    work.require_account(command.account_id).announce_price_change(
        command_id=command.command_id,
        issued_at=command.issued_at,
        subscription_id=command.subscription_id,
        new_price_minor=command.new_price_minor,
        effective_from=command.effective_from,
    )


def change_plan(command: ChangePlan, work: UnitOfWork) -> None:
    """Move a subscription to another plan, prorated, at the catalogue's price unless set."""
    account = work.require_account(command.account_id)
    current = account.subscription_terms(command.subscription_id)
    price_minor, plan_version = price_for_change(
        work.plan(command.plan_id), command.plan_id, command.price_minor, current
    )
    account.change_plan(
        command_id=command.command_id,
        issued_at=command.issued_at,
        subscription_id=command.subscription_id,
        plan_id=command.plan_id,
        price_minor=price_minor,
        plan_version=plan_version,
    )


def add_payment_method(command: AddPaymentMethod, work: UnitOfWork) -> None:
    """Put a payment method on file."""
    work.require_account(command.account_id).add_payment_method(
        command_id=command.command_id,
        issued_at=command.issued_at,
        payment_method_id=command.payment_method_id,
        kind=command.kind,
        label=command.label,
        expires_on=command.expires_on,
        make_default=command.make_default,
    )


def remove_payment_method(command: RemovePaymentMethod, work: UnitOfWork) -> None:
    """Take a payment method off file."""
    work.require_account(command.account_id).remove_payment_method(
        command_id=command.command_id,
        issued_at=command.issued_at,
        payment_method_id=command.payment_method_id,
    )


def set_default_payment_method(command: SetDefaultPaymentMethod, work: UnitOfWork) -> None:
    """Make a payment method on file the default."""
    work.require_account(command.account_id).set_default_payment_method(
        command_id=command.command_id,
        issued_at=command.issued_at,
        payment_method_id=command.payment_method_id,
    )


def record_feedback(command: RecordFeedback, work: UnitOfWork) -> None:
    """Record the customer's feedback."""
    work.require_account(command.account_id).record_feedback(
        command_id=command.command_id,
        issued_at=command.issued_at,
        feedback_id=command.feedback_id,
        score=command.score,
        comment=command.comment,
        topic=command.topic,
    )


def charge(command: Charge, work: UnitOfWork) -> None:
    """Ask for a charge of an open invoice."""
    work.require_account(command.account_id).charge(
        command_id=command.command_id,
        issued_at=command.issued_at,
        invoice_id=command.invoice_id,
        payment_method_id=command.payment_method_id,
    )


def issue_credit_note(command: IssueCreditNote, work: UnitOfWork) -> None:
    """Give revenue back as account credit."""
    work.require_account(command.account_id).issue_credit_note(
        command_id=command.command_id,
        issued_at=command.issued_at,
        credit_note_id=command.credit_note_id,
        invoice_id=command.invoice_id,
        amount_minor=command.amount_minor,
        reason=command.reason,
    )


def refund_credit(command: RefundCredit, work: UnitOfWork) -> None:
    """Pay customer credit back."""
    work.require_account(command.account_id).refund_credit(
        command_id=command.command_id,
        issued_at=command.issued_at,
        refund_id=command.refund_id,
        amount_minor=command.amount_minor,
        payment_method_kind=command.payment_method_kind,
    )


def write_off(command: WriteOff, work: UnitOfWork) -> None:
    """Give up on what an invoice still owes."""
    work.require_account(command.account_id).write_off(
        command_id=command.command_id,
        issued_at=command.issued_at,
        invoice_id=command.invoice_id,
        reason=command.reason,
    )


def _on_subscription(method: str) -> Callable[[Any, UnitOfWork], None]:
    """The handler of a command that names one subscription and nothing else."""

    def handle(command: Any, work: UnitOfWork) -> None:
        account = work.require_account(command.account_id)
        getattr(account, method)(
            command_id=command.command_id,
            issued_at=command.issued_at,
            subscription_id=command.subscription_id,
        )

    return handle


HANDLERS: dict[type[Command], Callable[[Any, UnitOfWork], None]] = {
    DefinePlan: define_plan,
    RevisePlan: revise_plan,
    RetirePlan: retire_plan,
    OpenAccount: open_account,
    Subscribe: subscribe,
    AdvanceClock: advance_clock,
    RecordPayment: record_payment,
    FailCharge: fail_charge,
    Renegotiate: renegotiate,
    SetDunningPolicy: set_dunning_policy,
    ReportHardship: report_hardship,
    ChangePlan: change_plan,
    AnnouncePriceChange: announce_price_change,
    PauseSubscription: _on_subscription("pause_subscription"),
    ResumeSubscription: _on_subscription("resume_subscription"),
    CancelSubscription: _on_subscription("cancel_subscription"),
    ReactivateSubscription: _on_subscription("reactivate_subscription"),
    AddPaymentMethod: add_payment_method,
    RemovePaymentMethod: remove_payment_method,
    SetDefaultPaymentMethod: set_default_payment_method,
    RecordFeedback: record_feedback,
    Charge: charge,
    IssueCreditNote: issue_credit_note,
    RefundCredit: refund_credit,
    WriteOff: write_off,
}


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

    def __init__(self, command_id: str, reason: str) -> None:
        super().__init__(f"command {command_id!r} failed: {reason}")
        self.command_id = command_id


def process(
    work: UnitOfWork, deliveries: Sequence[Delivery], poisoned: frozenset[str]
) -> list[Outcome]:
    """Answer each delivery in order, changing the aggregates held by `work`.

    Deliveries whose command_id is in `poisoned` made the ledger fail before; they are
    rejected without touching the domain again.
    """
    work.preload([d.command for d in deliveries])
    return [_answer(work, delivery, poisoned) for delivery in deliveries]


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
            raise HandlerFailed(command.command_id, "events were triggered before") from violation
        rejection = Rejection(violation.code, violation.field, violation.message)
        return _record(work, delivery, (), rejection)
    except PersistenceError:
        raise  # the database, not the command: the batch is retried whole
    except Exception as failure:
        raise HandlerFailed(command.command_id, repr(failure)) from failure
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
