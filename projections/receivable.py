"""What one account event does to the open balance of each invoice it touches.

The invoices and delinquency read models both follow invoices' open balances; this is the one
place that says which events change them, by how much and why. The changes of an event add up
to its postings on `receivable` (debit-positive), so the open balances of an account's
invoices always add up to its receivable.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class InvoiceChange:
    """One event's change to one invoice: its open balance moves by `change_minor` (may be 0),
    for `cause`; `due_at` is the invoice's due date from then on, if the event sets it."""

    invoice_id: str
    cause: str
    change_minor: int
    due_at: datetime | None = None


# Event type -> the cause of the change it makes to the one invoice it names (amount_minor off).
_SETTLEMENTS = {
    "CreditApplied": "credit_applied",
    "EarlyPaymentDiscountGranted": "discounted",
    "InvoiceWrittenOff": "written_off",
}


def invoice_changes(event_type: str, record: dict[str, Any]) -> list[InvoiceChange]:
    """The changes `record`, a decoded billing.events record of `event_type`, makes to invoices."""
    if event_type == "InvoiceIssued":
        return [
            InvoiceChange(record["invoice_id"], "issued", record["amount_minor"], record["due_at"])
        ]
    if event_type == "PaymentReceived":
        return [
            InvoiceChange(a["invoice_id"], "paid", -a["amount_minor"])
            for a in record["allocations"]
        ]
    if event_type in _SETTLEMENTS:
        return [
            InvoiceChange(record["invoice_id"], _SETTLEMENTS[event_type], -record["amount_minor"])
        ]
    if event_type == "DebtRenegotiated":
        return [
            InvoiceChange(d["invoice_id"], "renegotiated", -d["amount_minor"])
            for d in record["original_debts"]
        ] + [
            InvoiceChange(i["invoice_id"], "installment", i["amount_minor"], i["due_at"])
            for i in record["schedule"]
        ]
    if event_type == "RenegotiationDefaulted":
        return [
            InvoiceChange(invoice_id, "accelerated", 0, record["due_at"])
            for invoice_id in record["accelerated_invoice_ids"]
        ]
    return []


def debit_balance(ledger_account: str, postings: list[dict[str, Any]]) -> int:
    """The debit-positive balance of one ledger account over an event's postings."""
    return sum(
        p["amount_minor"] if p["side"] == "DEBIT" else -p["amount_minor"]
        for p in postings
        if p["ledger_account"] == ledger_account
    )
