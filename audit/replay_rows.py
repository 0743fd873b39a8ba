"""A replayed account's figures as report rows: balances, invoices, delinquency, and what changed.

Delinquency is counted as `delinquency_as_of` counts it (projections/delinquency_schema.py):
UTC calendar days past the due date, an invoice at least one day past due is overdue, and the
account's status is the first of cancelled_for_nonpayment, suspended, hardship,
renegotiated, in_dunning, overdue, written_off and current that holds.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from audit.replay import AccountView, InvoiceView, View

Row = dict[str, Any]


def balance_row(account: AccountView) -> Row:
    """The account's balances: receivable, credit held, and the totals moved."""
    return {
        "account_id": account.account_id,
        "currency": account.currency,
        "receivable_minor": account.receivable_minor,
        "customer_credit_minor": account.customer_credit_minor,
        "invoiced_minor": account.invoiced_minor,
        **account.totals,
    }


def days_past_due(invoice: InvoiceView, as_of: datetime) -> int:
    """UTC calendar days from the due date to `as_of`; 0 until the day after the due date."""
    days = (as_of.astimezone(UTC).date() - invoice.due_at.astimezone(UTC).date()).days
    return max(0, days)


def invoice_status(invoice: InvoiceView, as_of: datetime) -> str:
    """renegotiated, written_off, overdue, open, credited or paid, as the invoices read model."""
    if invoice.settled.get("renegotiated"):
        return "renegotiated"
    if invoice.settled.get("written_off"):
        return "written_off"
    if invoice.open_minor > 0:
        return "overdue" if days_past_due(invoice, as_of) >= 1 else "open"
    if invoice.amount_minor > 0 and invoice.credited_minor >= invoice.amount_minor:
        return "credited"
    return "paid"


def invoice_rows(account: AccountView, as_of: datetime) -> list[Row]:
    """Each invoice issued by `as_of`: amount, due date, what settled it, what is still open."""
    return [
        {
            "account_id": account.account_id,
            "invoice_id": invoice.invoice_id,
            "issued_at": invoice.issued_at,
            "due_at": invoice.due_at,
            "amount_minor": invoice.amount_minor,
            **{f"{cause}_minor": invoice.settled.get(cause, 0) for cause in _SETTLED_COLUMNS},
            "credited_minor": invoice.credited_minor,
            "open_minor": invoice.open_minor,
            "days_past_due": days_past_due(invoice, as_of) if invoice.open_minor > 0 else 0,
            "status": invoice_status(invoice, as_of),
        }
        for invoice in account.invoices.values()
    ]


_SETTLED_COLUMNS = ("paid", "credit_applied", "discounted", "written_off", "renegotiated")


def delinquency_row(account: AccountView, as_of: datetime) -> Row:
    """How late the account pays as of `as_of`."""
    invoices = list(account.invoices.values())
    open_ = [i for i in invoices if i.open_minor > 0]
    late = [i for i in open_ if days_past_due(i, as_of) >= 1]
    installments = [i for i in invoices if i.renegotiation_plan_id is not None]
    open_installments = [i for i in installments if i.open_minor > 0]
    upcoming = [i.due_at for i in open_installments if i.due_at >= as_of]
    return {
        "account_id": account.account_id,
        "currency": account.currency,
        "status": _status(account, as_of, open_, late),
        "open_minor": sum(i.open_minor for i in open_),
        "overdue_minor": sum(i.open_minor for i in late),
        "oldest_unpaid_due_at": min((i.due_at for i in open_), default=None),
        "days_past_due": max((days_past_due(i, as_of) for i in open_), default=0),
        "dunning_stage": max((i.dunning_stage for i in open_), default=0),
        "failed_attempts": sum(i.failed_attempts for i in open_),
        "installments_paid": len(installments) - len(open_installments),
        "installments_missed": sum(1 for i in open_installments if days_past_due(i, as_of) >= 1),
        "installments_remaining": len(open_installments),
        "renegotiation_remaining_minor": sum(i.open_minor for i in open_installments),
        "next_installment_due_at": min(upcoming, default=None),
    }


def _status(
    account: AccountView, as_of: datetime, open_: list[InvoiceView], late: list[InvoiceView]
) -> str:
    if account.final_action == "CANCEL":
        return "cancelled_for_nonpayment"
    if account.final_action == "SUSPEND":
        return "suspended"
    if account.hardship is not None and account.hardship[0] <= as_of < account.hardship[1]:
        return "hardship"
    if any(
        i.renegotiation_plan_id is not None
        and i.renegotiation_plan_id not in account.defaulted_plans
        for i in open_
    ):
        return "renegotiated"
    if any(i.dunning_stage > 0 or i.failed_attempts > 0 for i in late):
        return "in_dunning"
    if late:
        return "overdue"
    closed = [i for i in account.invoices.values() if i.open_minor <= 0 and i.closed_at]
    if not open_ and closed and max(closed, key=_closed_at).closed_by == "written_off":
        return "written_off"
    return "current"


def _closed_at(invoice: InvoiceView) -> datetime:
    assert invoice.closed_at is not None
    return invoice.closed_at


def figures(account: AccountView, as_of: datetime) -> Row:
    """Every figure of the account by name, for comparing two views of it."""
    found = {f"balance {k}": v for k, v in balance_row(account).items() if k != "account_id"}
    found |= {f"delinquency {k}": v for k, v in delinquency_row(account, as_of).items()}
    for row in invoice_rows(account, as_of):
        invoice_id = row.pop("invoice_id")
        found |= {f"invoice {invoice_id} {k}": v for k, v in row.items() if k != "account_id"}
    found.pop("delinquency account_id")
    return found


def changes(before: View, after: View, as_of: datetime) -> list[Row]:
    """Every figure that differs between two views, by account: (account, figure, both values)."""
    rows = []
    for account_id in sorted(before.keys() | after.keys()):
        old = figures(before[account_id], as_of) if account_id in before else {}
        new = figures(after[account_id], as_of) if account_id in after else {}
        for name in [*old, *(n for n in new if n not in old)]:
            if old.get(name) != new.get(name):
                rows.append(
                    {
                        "account_id": account_id,
                        "figure": name,
                        "before": old.get(name),
                        "after": new.get(name),
                    }
                )
    return rows
