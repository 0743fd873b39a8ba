"""Charge requests, credit notes, refunds of customer credit and write-offs.

`Adjustments` is a part of the Account aggregate (a mixin); its events are account events.
A charge request moves no money: its outcome arrives later as RecordPayment or FailCharge.
A charge asks for what settles the invoice at the time: inside its early-payment window, the
outstanding less the discount. A credit note gives revenue back as customer credit, which
settles the invoice it is for first, then the other open invoices, oldest due first. A refund pays credit back; a write-off
gives up on what an invoice still owes.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from ledger.account_state import AccountEvent, AccountPart, Invoice
from ledger.bounds import check_total
from ledger.errors import RuleViolation, check_text
from ledger.invoice_rules import check_method_kind, check_positive
from ledger.postings import LedgerAccount, Posting, transfer

if TYPE_CHECKING:
    from ledger.payment_methods import PaymentMethod

MAX_ADJUSTMENT_ID_LENGTH = 128
MAX_REASON_LENGTH = 500


class Adjustments(AccountPart):
    """Asking for a charge, issuing credit notes, refunding credit, writing invoices off."""

    if TYPE_CHECKING:  # provided by Account
        failed_charges: dict[str, int]
        payment_methods: dict[str, PaymentMethod]
        default_payment_method_id: str | None
        credit_note_ids: set[str]
        refund_ids: set[str]

        def _open_invoice(self, invoice_id: str, *, field: str = "invoice_id") -> Invoice: ...

        def _existing_invoice(self, invoice_id: str, field: str = "invoice_id") -> Invoice: ...

        def _payment_method(self, payment_method_id: str) -> PaymentMethod: ...

        def _credit_note(
            self,
            command_id: str,
            issued_at: datetime,
            invoice: Invoice,
            reason: str,
            amount: int,
            credit_note_id: str | None = None,
        ) -> int: ...

    class ChargeRequested(AccountEvent):
        """The payment system is asked to charge what an invoice has outstanding."""

        invoice_id: str
        payment_method_id: str
        payment_method_kind: str
        amount_minor: int
        currency: str
        attempt: int

        def apply(self, aggregate: Any) -> None:
            pass  # nothing moved: the outcome arrives as a payment or a failed charge

    class CreditRefunded(AccountEvent):
        """Customer credit was paid back (Dr customer_credit, Cr the method's cash)."""

        refund_id: str
        amount_minor: int
        currency: str
        payment_method_kind: str
        postings: tuple[Posting, ...]

        def apply(self, aggregate: Any) -> None:
            aggregate.credit_minor -= self.amount_minor
            aggregate.totals.refunded_minor += self.amount_minor
            aggregate.refund_ids.add(self.refund_id)

    class InvoiceWrittenOff(AccountEvent):
        """What an invoice still owed was given up on (Dr write_off, Cr receivable)."""

        invoice_id: str
        amount_minor: int
        currency: str
        reason: str
        postings: tuple[Posting, ...]

        def apply(self, aggregate: Any) -> None:
            aggregate.invoices[self.invoice_id].written_off_minor += self.amount_minor

    def charge(
        self,
        *,
        command_id: str,
        issued_at: datetime,
        invoice_id: str,
        payment_method_id: str | None,
    ) -> None:
        """Ask for a charge of what settles `invoice_id` now (its outstanding, less the
        early-payment discount inside the window), by default with the default payment method."""
        invoice = self._open_invoice(invoice_id)
        method = self._method_to_charge(payment_method_id)
        self._record(
            self.ChargeRequested,
            issued_at,
            command_id,
            invoice_id=invoice_id,
            payment_method_id=method.payment_method_id,
            payment_method_kind=method.kind,
            amount_minor=invoice.payable_at(issued_at),
            currency=self.currency,
            attempt=self.failed_charges.get(invoice_id, 0) + 1,
        )

    def issue_credit_note(
        self,
        *,
        command_id: str,
        issued_at: datetime,
        credit_note_id: str,
        invoice_id: str,
        amount_minor: int,
        reason: str,
    ) -> None:
        """Give `amount_minor` of an invoice's revenue back as credit; the credit settles that
        invoice first if it is open, then the other open invoices, oldest due first."""
        check_text("credit_note_id", credit_note_id, MAX_ADJUSTMENT_ID_LENGTH)
        if credit_note_id in self.credit_note_ids:
            raise DuplicateCreditNote(
                f"credit note {credit_note_id!r} is already issued on account {self.account_id!r}",
                field="credit_note_id",
            )
        invoice = self._existing_invoice(invoice_id)
        check_positive(amount_minor)
        # A written-off share was never paid: crediting it would pay the customer for nothing.
        creditable = invoice.creditable_at(issued_at)
        if amount_minor > creditable:
            raise ExceedsInvoice(
                f"amount_minor {amount_minor} is more than the {creditable} of invoice "
                f"{invoice_id!r} charged net of discounts and forgiveness and not yet credited "
                "or written off",
                field="amount_minor",
            )
        check_total("customer credit", self.credit_minor, amount_minor, field="amount_minor")
        check_total(
            "credited total", self.totals.credited_minor, amount_minor, field="amount_minor"
        )
        check_text("reason", reason, MAX_REASON_LENGTH)
        self._credit_note(command_id, issued_at, invoice, reason, amount_minor, credit_note_id)

    def refund_credit(
        self,
        *,
        command_id: str,
        issued_at: datetime,
        refund_id: str,
        amount_minor: int,
        payment_method_kind: str,
    ) -> None:
        """Pay `amount_minor` of the account's credit back to the customer."""
        check_text("refund_id", refund_id, MAX_ADJUSTMENT_ID_LENGTH)
        if refund_id in self.refund_ids:
            raise DuplicateRefund(
                f"refund {refund_id!r} is already recorded on account {self.account_id!r}",
                field="refund_id",
            )
        check_positive(amount_minor)
        check_total(
            "refunded total", self.totals.refunded_minor, amount_minor, field="amount_minor"
        )
        if amount_minor > self.credit_minor:
            raise ExceedsCredit(
                f"amount_minor {amount_minor} is more than the {self.credit_minor} of credit "
                f"account {self.account_id!r} holds",
                field="amount_minor",
            )
        check_method_kind(payment_method_kind)
        self._record(
            self.CreditRefunded,
            issued_at,
            command_id,
            refund_id=refund_id,
            amount_minor=amount_minor,
            currency=self.currency,
            payment_method_kind=payment_method_kind,
            postings=transfer(
                LedgerAccount.CUSTOMER_CREDIT, LedgerAccount.cash(payment_method_kind), amount_minor
            ),
        )

    def write_off(
        self, *, command_id: str, issued_at: datetime, invoice_id: str, reason: str
    ) -> None:
        """Give up on what an open invoice still owes; it is settled without being paid."""
        invoice = self._open_invoice(invoice_id)
        check_text("reason", reason, MAX_REASON_LENGTH)
        amount = invoice.outstanding_minor
        self._record(
            self.InvoiceWrittenOff,
            issued_at,
            command_id,
            invoice_id=invoice_id,
            amount_minor=amount,
            currency=self.currency,
            reason=reason,
            postings=transfer(LedgerAccount.WRITE_OFF, LedgerAccount.RECEIVABLE, amount),
        )

    def _method_to_charge(self, payment_method_id: str | None) -> PaymentMethod:
        if payment_method_id is not None:
            return self._payment_method(payment_method_id)
        if self.default_payment_method_id is None:
            raise NoPaymentMethod(
                f"account {self.account_id!r} has no payment method on file to charge; "
                "add one, or name one in payment_method_id",
                field="payment_method_id",
            )
        return self.payment_methods[self.default_payment_method_id]


class NoPaymentMethod(RuleViolation):
    """A charge names no payment method and the account has none on file."""

    code = "no_payment_method"


class DuplicateCreditNote(RuleViolation):
    """The credit note id is already issued on the account."""

    code = "duplicate_credit_note"


class ExceedsInvoice(RuleViolation):
    """A credit note would give back more than is left of the invoice."""

    code = "exceeds_invoice"


class DuplicateRefund(RuleViolation):
    """The refund id is already recorded on the account."""

    code = "duplicate_refund"


class ExceedsCredit(RuleViolation):
    """A refund would pay back more credit than the account holds."""

    code = "exceeds_credit"
