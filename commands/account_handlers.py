"""The handlers of account commands: one verb function per command, on the account it names."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from commands.messages import (
    AddPaymentMethod,
    AdvanceClock,
    AnnouncePriceChange,
    ChangePlan,
    Charge,
    FailCharge,
    IssueCreditNote,
    OpenAccount,
    RecordFeedback,
    RecordPayment,
    RefundCredit,
    RemovePaymentMethod,
    Renegotiate,
    ReportHardship,
    SetDefaultPaymentMethod,
    SetDunningPolicy,
    Subscribe,
    WriteOff,
)
from commands.unit_of_work import UnitOfWork
from ledger.account import Account, AccountAlreadyOpen
from ledger.plan_terms import price_for_change, terms_for


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


def on_subscription(method: str) -> Callable[[Any, UnitOfWork], None]:
    """The handler of a command that names one subscription and nothing else."""

    def handle(command: Any, work: UnitOfWork) -> None:
        account = work.require_account(command.account_id)
        getattr(account, method)(
            command_id=command.command_id,
            issued_at=command.issued_at,
            subscription_id=command.subscription_id,
        )

    return handle
