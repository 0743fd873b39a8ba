"""What an account owes and pays: the clock's invoicing and overdue marks, payments, credit and failed charges.

`Receivables` is a part of the Account aggregate (a mixin); its events are account events.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from ledger.account_state import AccountEvent, AccountPart, Invoice, Subscription
from ledger.errors import RuleViolation
from ledger.money import CurrencyMismatch, check_currency
from ledger.postings import LedgerAccount, Posting, Side, check_balanced, transfer

MAX_PAYMENT_METHOD_KIND_LENGTH = 40
MAX_CYCLES_PER_ADVANCE = 400  # bounds one command's work: about 33 years of monthly invoices
PAY_WITHOUT_INVOICE = (
    "; to record money received for it, send the payment without invoice_id: it then settles "
    "the oldest open invoices and the rest becomes credit"
)


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


class Receivables(AccountPart):
    """Invoicing as time passes, overdue invoices, payments, customer credit, failed charges."""

    if TYPE_CHECKING:  # provided by Account
        payment_ids: set[str]
        failed_charges: dict[str, int]

        def _complete_cancellations(self, command_id: str, issued_at: datetime) -> None: ...

        def _dunning_tick(self, command_id: str, now: datetime) -> None: ...

        def _renegotiation_tick(self, command_id: str, now: datetime) -> None: ...

        def _check_not_renegotiated(self, invoice: Invoice, field: str) -> None: ...

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
        """Money arrived: it settles invoices, oldest due first, and the rest becomes credit."""

        payment_id: str
        amount_minor: int
        currency: str
        payment_method_kind: str
        allocations: tuple[Allocation, ...]
        credited_minor: int
        postings: tuple[Posting, ...]

        def apply(self, aggregate: Any) -> None:
            for allocation in self.allocations:
                aggregate.invoices[allocation.invoice_id].paid_minor += allocation.amount_minor
            aggregate.credit_minor += self.credited_minor
            aggregate.payment_ids.add(self.payment_id)

    class CreditApplied(AccountEvent):
        """The account's credit settled (part of) a new invoice."""

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
            aggregate.invoices[self.invoice_id].paid_minor += self.amount_minor

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

    def advance_clock(self, *, command_id: str, issued_at: datetime) -> None:
        """Do what has fallen due by `issued_at` and was not done yet: invoice each cycle begun,
        complete due cancellations, mark overdue invoices, default renegotiation plans with a
        missed installment, emit the dunning steps due.

        The account keeps no clock: repeating a time adds nothing already done.
        """
        due_cycles = sum(_cycles_begun(sub, issued_at) for sub in self.subscriptions.values())
        if due_cycles > MAX_CYCLES_PER_ADVANCE:
            raise TooManyCycles(
                f"advancing account {self.account_id!r} to {issued_at.isoformat()} would issue "
                f"{due_cycles} invoices at once (at most {MAX_CYCLES_PER_ADVANCE}); advance the "
                "clock in smaller steps",
                field="issued_at",
            )
        for sub in self.subscriptions.values():
            for _ in range(_cycles_begun(sub, issued_at)):
                self._issue_invoice(command_id, issued_at, sub)
        self._complete_cancellations(command_id, issued_at)
        self._mark_overdue(command_id, issued_at)
        self._renegotiation_tick(command_id, issued_at)  # before dunning sees the due dates
        self._dunning_tick(command_id, issued_at)

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
        """Record money received; it settles `invoice_id` first, if given, then the oldest due."""
        self._check_payment(payment_id, amount_minor, currency, payment_method_kind, invoice_id)
        allocations = self._allocate(amount_minor, invoice_id, issued_at)
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
        _check_method_kind(payment_method_kind)
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
        invoice = self.invoices[invoice_id]
        if invoice.amount_minor == 0:  # a free cycle's invoice is settled as it is issued
            self._mark_if_paid(command_id, issued_at, invoice_id)
            return
        amount = min(self.credit_minor, invoice.outstanding_minor)
        if amount <= 0:
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
        self._mark_if_paid(command_id, issued_at, invoice_id)

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
        self, amount_minor: int, invoice_id: str | None, when: datetime
    ) -> tuple[Allocation, ...]:
        open_invoices = sorted(
            (i for i in self.invoices.values() if i.outstanding_minor > 0),
            key=lambda i: (i.invoice_id != invoice_id, i.due_at, i.invoice_id),
        )
        allocations = []
        remaining = amount_minor
        for invoice in open_invoices:
            if remaining == 0:
                break
            payable = invoice.outstanding_minor - invoice.discount_if_settled_at(when)
            settled = min(remaining, payable)
            allocations.append(Allocation(invoice.invoice_id, settled))
            remaining -= settled
        return tuple(allocations)

    def _check_payment(
        self,
        payment_id: str,
        amount_minor: int,
        currency: str,
        payment_method_kind: str,
        invoice_id: str | None,
    ) -> None:
        if not payment_id.strip():
            raise PaymentRuleViolation("payment_id must not be empty", field="payment_id")
        if payment_id in self.payment_ids:
            raise DuplicatePayment(
                f"payment {payment_id!r} is already recorded on account {self.account_id!r}",
                field="payment_id",
            )
        if amount_minor <= 0:
            raise NonPositivePayment(
                f"amount_minor must be more than zero, got {amount_minor}", field="amount_minor"
            )
        check_currency(currency)
        if currency != self.currency:
            raise CurrencyMismatch(
                f"the payment is in {currency} but account {self.account_id!r} is in "
                f"{self.currency}",
                field="currency",
            )
        _check_method_kind(payment_method_kind)
        if invoice_id is not None:
            # The money did arrive: say how to record it.
            self._open_invoice(invoice_id, instead=PAY_WITHOUT_INVOICE)

    def _open_invoice(
        self, invoice_id: str, *, field: str = "invoice_id", instead: str = ""
    ) -> Invoice:
        """The invoice, if it has something outstanding; else the rejection saying why not,
        naming `field` (`instead`, if given, ends the message of a written-off invoice)."""
        invoice = self._existing_invoice(invoice_id, field)
        self._check_not_renegotiated(invoice, field)
        self._check_not_written_off(invoice, field, instead=instead)
        if invoice.outstanding_minor == 0:
            raise InvoiceAlreadyPaid(f"invoice {invoice_id!r} is already paid", field=field)
        return invoice

    def _existing_invoice(self, invoice_id: str, field: str = "invoice_id") -> Invoice:
        """The invoice; UnknownInvoice naming `field` if the account has none of that id."""
        invoice = self.invoices.get(invoice_id)
        if invoice is None:
            raise UnknownInvoice(
                f"invoice {invoice_id!r} does not exist on account {self.account_id!r}",
                field=field,
            )
        return invoice

    def _check_not_written_off(self, invoice: Invoice, field: str, *, instead: str = "") -> None:
        """Refuse a command that needs `invoice` open when what it owed was written off."""
        # A write-off gives up on everything outstanding: a written-off invoice owes nothing.
        if invoice.written_off_minor == 0:
            return
        raise InvoiceAlreadyWrittenOff(
            f"invoice {invoice.invoice_id!r} was written off: the {invoice.written_off_minor} "
            f"it still owed was given up on, so it owes nothing{instead}",
            field=field,
        )


def _cycles_begun(sub: Subscription, now: datetime) -> int:
    """How many of the subscription's cycles not yet invoiced have begun by `now`.

    A paused or cancelled subscription has none; one cancelled at a period's end has none
    that start at or after that end.
    """
    if not sub.invoices_itself:
        return 0
    count = 0
    while count <= MAX_CYCLES_PER_ADVANCE:
        start = sub.period(sub.cycles_invoiced + count)[0]
        if start > now or (sub.cancel_at is not None and start >= sub.cancel_at):
            break
        count += 1
    return count


def _check_method_kind(kind: str, *, field: str = "payment_method_kind") -> None:
    """A payment method kind is a short lower-case word: credit_card, bank_transfer, ..."""
    if not (
        0 < len(kind) <= MAX_PAYMENT_METHOD_KIND_LENGTH
        and kind.isascii()
        and kind[0].isalpha()
        and kind.replace("_", "").isalnum()
        and kind == kind.lower()
    ):
        raise PaymentRuleViolation(
            f"{field} must be a lower-case word such as credit_card or bank_transfer, got {kind!r}",
            field=field,
        )


class TooManyCycles(RuleViolation):
    """Advancing the clock that far would issue too many invoices in one command."""

    code = "too_many_cycles"


class PaymentRuleViolation(RuleViolation):
    """A payment's details are not usable."""

    code = "invalid_payment"


class NonPositivePayment(RuleViolation):
    """A payment must move more than nothing."""

    code = "non_positive_amount"


class DuplicatePayment(RuleViolation):
    """The payment id is already recorded on the account."""

    code = "duplicate_payment"


class UnknownInvoice(RuleViolation):
    """The command names an invoice the account does not have."""

    code = "unknown_invoice"


class InvoiceAlreadyPaid(RuleViolation):
    """The invoice has nothing left to pay."""

    code = "invoice_already_paid"


class InvoiceAlreadyWrittenOff(RuleViolation):
    """What the invoice owed was written off: it owes nothing, though it was not paid."""

    code = "invoice_written_off"
