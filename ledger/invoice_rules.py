"""The checks a command naming a payment or an invoice must pass, and their rejections.

`InvoiceRules` is a part of the Account aggregate (a mixin) with no events of its own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ledger.renegotiation import RenegotiationPlan

from ledger.account_state import AccountPart, Invoice
from ledger.bounds import check_amount_bound, check_total
from ledger.errors import RuleViolation
from ledger.money import CurrencyMismatch, check_currency

MAX_PAYMENT_METHOD_KIND_LENGTH = 40
INVOICE_RENEGOTIATED = "invoice_renegotiated"  # the code of renegotiation.InvoiceRenegotiated


class InvoiceRules(AccountPart):
    """Finding the invoice a command names, and refusing it when it cannot take the command."""

    if TYPE_CHECKING:  # provided by Account
        payment_ids: set[str]
        renegotiations: dict[str, RenegotiationPlan]

        def _check_not_renegotiated(self, invoice: Invoice, field: str) -> None: ...

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
        check_positive(amount_minor)
        check_total(
            "received total", self.totals.received_minor, amount_minor, field="amount_minor"
        )
        check_total("customer credit", self.credit_minor, amount_minor, field="amount_minor")
        check_currency(currency)
        if currency != self.currency:
            raise CurrencyMismatch(
                f"the payment is in {currency} but account {self.account_id!r} is in "
                f"{self.currency}",
                field="currency",
            )
        check_method_kind(payment_method_kind)
        if invoice_id is not None:
            self._existing_invoice(invoice_id)  # an unknown one may be another account's

    def _payment_target(self, invoice_id: str | None) -> tuple[str | None, tuple[str, ...]]:
        """Why a payment naming `invoice_id` does not go to it (None: it does, or none is
        named), and the invoices it settles first: the named one if open, a renegotiated
        one's installments, or none (the oldest due come next in any case)."""
        if invoice_id is None:
            return None, ()
        invoice = self.invoices[invoice_id]
        if invoice.renegotiated_into is not None:
            plan = self.renegotiations[invoice.renegotiated_into]
            return INVOICE_RENEGOTIATED, plan.installment_ids
        if invoice.written_off_minor:
            return InvoiceAlreadyWrittenOff.code, ()
        if invoice.outstanding_minor == 0:
            return InvoiceAlreadyPaid.code, ()
        return None, (invoice_id,)

    def _open_invoice(self, invoice_id: str, *, field: str = "invoice_id") -> Invoice:
        """The invoice, if it has something outstanding; else the rejection saying why not,
        naming `field`."""
        invoice = self._existing_invoice(invoice_id, field)
        self._check_not_renegotiated(invoice, field)
        self._check_not_written_off(invoice, field)
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

    def _check_not_written_off(self, invoice: Invoice, field: str) -> None:
        """Refuse a command that needs `invoice` open when what it owed was written off."""
        # A write-off gives up on everything outstanding: a written-off invoice owes nothing.
        if invoice.written_off_minor == 0:
            return
        raise InvoiceAlreadyWrittenOff(
            f"invoice {invoice.invoice_id!r} was written off: the {invoice.written_off_minor} "
            f"it still owed was given up on, so it owes nothing",
            field=field,
        )


def check_positive(amount_minor: int, *, field: str = "amount_minor") -> int:
    """Answer an amount of money that moves: more than nothing, at most MAX_AMOUNT_MINOR."""
    if amount_minor <= 0:
        raise NonPositivePayment(f"{field} must be more than zero, got {amount_minor}", field=field)
    return check_amount_bound(amount_minor, field=field)


def check_method_kind(kind: str, *, field: str = "payment_method_kind") -> None:
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
