"""What an account owes and pays: overdue marks, payments, customer credit and failed charges.

`Receivables` is a part of the Account aggregate (a mixin); its events are account events.
The checks of the payments and invoices a command names are its base, `InvoiceRules`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from ledger.account_state import AccountEvent
from ledger.invoice_rules import InvoiceRules, check_method_kind
from ledger.postings import LedgerAccount, Posting, Side, check_balanced, transfer


class ChargeFailureReason(StrEnum):
    """Why a charge failed, as the payment provider reported it."""

    INSUFFICIENT_FUNDS = "insufficient_funds"
    CARD_EXPIRED = "card_expired"
    DO_NOT_HONOR = "do_not_honor"
    BANK_TRANSFER_NOT_RECEIVED = "bank_transfer_not_received"
    PROCESSING_ERROR = "processing_error"
    OTHER = "other"


@dataclass(frozen=True)
class Allocation:
    """The part of a payment that settles one invoice."""

    invoice_id: str
    amount_minor: int


class Receivables(InvoiceRules):
    """Overdue invoices, payments, customer credit, failed charges."""

    if TYPE_CHECKING:  # provided by Account
        failed_charges: dict[str, int]

        def _schedule_retry(
            self, command_id: str, issued_at: datetime, invoice_id: str
        ) -> None: ...

    class InvoiceOverdue(AccountEvent):
        """An invoice passed its due date unpaid."""

        invoice_id: str
        outstanding_minor: int
        currency: str
        due_at: datetime

        def apply(self, aggregate: Any) -> None:
            aggregate.invoices[self.invoice_id].overdue = True

    class PaymentReceived(AccountEvent):
        """Money arrived: it settles the invoice named (if it is open), then the oldest due,
        and the rest becomes credit.

        `invoice_id` is the invoice the payment named (None: none); `redirect_reason` says why
        the payment did not go to it first (`invoice_already_paid`, `invoice_written_off`,
        `invoice_renegotiated`: then to the plan's installments first), None if it did.
        Payments stored before version 2 (0.4.0) say neither: both are None.
        """

        payment_id: str
        amount_minor: int
        currency: str
        payment_method_kind: str
        allocations: tuple[Allocation, ...]
        credited_minor: int
        postings: tuple[Posting, ...]
        invoice_id: str | None
        redirect_reason: str | None

        class_version = 2

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            """Payments stored before 0.4.0 did not record the invoice they named."""
            state["invoice_id"] = None
            state["redirect_reason"] = None

        def apply(self, aggregate: Any) -> None:
            for allocation in self.allocations:
                aggregate.invoices[allocation.invoice_id].paid_minor += allocation.amount_minor
            aggregate.credit_minor += self.credited_minor
            aggregate.payment_ids.add(self.payment_id)
            aggregate.totals.received_minor += self.amount_minor

    class CreditApplied(AccountEvent):
        """The account's credit settled (part of) an open invoice."""

        invoice_id: str
        amount_minor: int
        currency: str
        postings: tuple[Posting, ...]

        def apply(self, aggregate: Any) -> None:
            aggregate.invoices[self.invoice_id].paid_minor += self.amount_minor
            aggregate.credit_minor -= self.amount_minor

    class EarlyPaymentDiscountGranted(AccountEvent):
        """An invoice paid early: the incentive's share is forgiven (Dr discounts, Cr receivable)."""

        invoice_id: str
        amount_minor: int
        currency: str
        postings: tuple[Posting, ...]

        def apply(self, aggregate: Any) -> None:
            invoice = aggregate.invoices[self.invoice_id]
            invoice.paid_minor += self.amount_minor
            invoice.discounted_minor += self.amount_minor

    class InvoicePaid(AccountEvent):
        """An invoice is settled in full."""

        invoice_id: str
        amount_minor: int
        currency: str

        def apply(self, aggregate: Any) -> None:
            pass  # the payment or credit that settled it already changed the state

    class ChargeFailed(AccountEvent):
        """A charge of an invoice failed; nothing moved."""

        invoice_id: str
        payment_method_kind: str
        reason: ChargeFailureReason
        attempt: int

        def apply(self, aggregate: Any) -> None:
            aggregate.failed_charges[self.invoice_id] = self.attempt

    def _mark_overdue(self, command_id: str, issued_at: datetime) -> None:
        for invoice in list(self.invoices.values()):
            if invoice.outstanding_minor > 0 and not invoice.overdue and invoice.due_at < issued_at:
                self._record(
                    self.InvoiceOverdue,
                    issued_at,
                    command_id,
                    invoice_id=invoice.invoice_id,
                    outstanding_minor=invoice.outstanding_minor,
                    currency=self.currency,
                    due_at=invoice.due_at,
                )

    def record_payment(
        self,
        *,
        command_id: str,
        issued_at: datetime,
        payment_id: str,
        amount_minor: int,
        currency: str,
        payment_method_kind: str,
        invoice_id: str | None,
    ) -> None:
        """Record money received, always: it settles `invoice_id` first if that is open, then
        the oldest due; the rest becomes credit."""
        self._check_payment(payment_id, amount_minor, currency, payment_method_kind, invoice_id)
        redirect_reason, first = self._payment_target(invoice_id)
        allocations = self._allocate(amount_minor, first, issued_at)
        allocated = sum(a.amount_minor for a in allocations)
        credited = amount_minor - allocated
        postings = [Posting(LedgerAccount.cash(payment_method_kind), Side.DEBIT, amount_minor)]
        if allocated:
            postings.append(Posting(LedgerAccount.RECEIVABLE, Side.CREDIT, allocated))
        if credited:
            postings.append(Posting(LedgerAccount.CUSTOMER_CREDIT, Side.CREDIT, credited))
        self._record(
            self.PaymentReceived,
            issued_at,
            command_id,
            payment_id=payment_id,
            amount_minor=amount_minor,
            currency=currency,
            payment_method_kind=payment_method_kind,
            allocations=allocations,
            credited_minor=credited,
            postings=check_balanced(postings),
            invoice_id=invoice_id,
            redirect_reason=redirect_reason,
        )
        for allocation in allocations:
            self._grant_early_discount(command_id, issued_at, allocation.invoice_id)
            self._mark_if_paid(command_id, issued_at, allocation.invoice_id)

    def fail_charge(
        self,
        *,
        command_id: str,
        issued_at: datetime,
        invoice_id: str,
        payment_method_kind: str,
        reason: ChargeFailureReason,
    ) -> None:
        """Record that charging `invoice_id` failed, and why."""
        invoice = self._open_invoice(invoice_id)
        check_method_kind(payment_method_kind)
        self._record(
            self.ChargeFailed,
            issued_at,
            command_id,
            invoice_id=invoice.invoice_id,
            payment_method_kind=payment_method_kind,
            reason=reason,
            attempt=self.failed_charges.get(invoice_id, 0) + 1,
        )
        self._schedule_retry(command_id, issued_at, invoice_id)

    def _apply_credit(self, command_id: str, issued_at: datetime, invoice_id: str) -> None:
        """Settle what the account's credit can of an open invoice; an invoice the credit settles
        within its early-payment window gets its discount, as if paid."""
        invoice = self.invoices[invoice_id]
        if invoice.amount_minor == 0:  # a free cycle's invoice is settled as it is issued
            self._mark_if_paid(command_id, issued_at, invoice_id)
            return
        payable = invoice.payable_at(issued_at)
        amount = min(self.credit_minor, payable)
        if amount <= 0:
            if payable == 0:  # what is left is the discount still to be had: settled by it
                self._grant_early_discount(command_id, issued_at, invoice_id)
                self._mark_if_paid(command_id, issued_at, invoice_id)
            return
        self._record(
            self.CreditApplied,
            issued_at,
            command_id,
            invoice_id=invoice_id,
            amount_minor=amount,
            currency=self.currency,
            postings=check_balanced(
                (
                    Posting(LedgerAccount.CUSTOMER_CREDIT, Side.DEBIT, amount),
                    Posting(LedgerAccount.RECEIVABLE, Side.CREDIT, amount),
                )
            ),
        )
        self._grant_early_discount(command_id, issued_at, invoice_id)
        self._mark_if_paid(command_id, issued_at, invoice_id)

    def _settle_with_credit(
        self, command_id: str, issued_at: datetime, first: str | None = None
    ) -> None:
        """Let the credit the account holds settle its open invoices: `first` first, if given,
        then the oldest due. Every credit the ledger creates is applied so, at once: no account
        holds credit while an invoice is open."""
        for invoice in sorted(
            (i for i in self.invoices.values() if i.outstanding_minor > 0),
            key=lambda i: (i.invoice_id != first, i.due_at, i.invoice_id),
        ):
            if self.credit_minor == 0:
                break
            self._apply_credit(command_id, issued_at, invoice.invoice_id)

    def _grant_early_discount(self, command_id: str, issued_at: datetime, invoice_id: str) -> None:
        invoice = self.invoices[invoice_id]
        discount = invoice.discount_if_settled_at(issued_at)
        if discount == 0 or invoice.outstanding_minor != discount:
            return  # no incentive, too late, or not settled by this payment
        self._record(
            self.EarlyPaymentDiscountGranted,
            issued_at,
            command_id,
            invoice_id=invoice_id,
            amount_minor=discount,
            currency=self.currency,
            postings=transfer(LedgerAccount.DISCOUNTS, LedgerAccount.RECEIVABLE, discount),
        )

    def _mark_if_paid(self, command_id: str, issued_at: datetime, invoice_id: str) -> None:
        invoice = self.invoices[invoice_id]
        if invoice.outstanding_minor == 0:
            self._record(
                self.InvoicePaid,
                issued_at,
                command_id,
                invoice_id=invoice_id,
                amount_minor=invoice.amount_minor,
                currency=self.currency,
            )

    def _allocate(
        self, amount_minor: int, first: tuple[str, ...], when: datetime
    ) -> tuple[Allocation, ...]:
        """What of the payment settles which open invoice: those in `first`, in that order,
        then the oldest due; each only what settles it at `when` (less its discount)."""
        ranks = {invoice_id: rank for rank, invoice_id in enumerate(first)}
        open_invoices = sorted(
            (i for i in self.invoices.values() if i.outstanding_minor > 0),
            key=lambda i: (ranks.get(i.invoice_id, len(ranks)), i.due_at, i.invoice_id),
        )
        allocations = []
        remaining = amount_minor
        for invoice in open_invoices:
            if remaining == 0:
                break
            settled = min(remaining, invoice.payable_at(when))
            allocations.append(Allocation(invoice.invoice_id, settled))
            remaining -= settled
        return tuple(allocations)
