"""The invoices read model: one row per invoice (a cycle's, a proration's, an installment's).

Each row keeps the account version it has applied, so an event republished by the relay
(at-least-once) is applied once. The outstanding amount and the status are generated columns,
computed by PostgreSQL from the amounts.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import psycopg
from psycopg import sql

from projections.receivable import invoice_changes

_OUTSTANDING = (
    "amount_minor - paid_minor - credit_applied_minor - discounted_minor - written_off_minor "
    "- renegotiated_minor"
)
SCHEMA = f"""
CREATE TABLE IF NOT EXISTS invoices (
    account_id text NOT NULL,
    invoice_id text NOT NULL,
    currency text NOT NULL,
    kind text NOT NULL CHECK (kind IN ('cycle', 'proration', 'installment')),
    subscription_id text,
    cycle integer,
    renegotiation_plan_id text,
    period_start timestamptz,
    period_end timestamptz,
    issued_at timestamptz NOT NULL,
    amount_minor bigint NOT NULL,
    due_at timestamptz NOT NULL,
    paid_minor bigint NOT NULL DEFAULT 0,
    credit_applied_minor bigint NOT NULL DEFAULT 0,
    discounted_minor bigint NOT NULL DEFAULT 0,
    written_off_minor bigint NOT NULL DEFAULT 0,
    renegotiated_minor bigint NOT NULL DEFAULT 0,
    renegotiated_into text,
    credited_minor bigint NOT NULL DEFAULT 0,
    outstanding_minor bigint GENERATED ALWAYS AS ({_OUTSTANDING}) STORED,
    overdue boolean NOT NULL DEFAULT false,
    status text GENERATED ALWAYS AS (CASE
        WHEN renegotiated_into IS NOT NULL THEN 'renegotiated'
        WHEN written_off_minor > 0 THEN 'written_off'
        WHEN {_OUTSTANDING} > 0 THEN CASE WHEN overdue THEN 'overdue' ELSE 'open' END
        WHEN amount_minor > 0 AND credited_minor >= amount_minor THEN 'credited'
        ELSE 'paid' END) STORED,
    failed_attempts integer NOT NULL DEFAULT 0,
    last_payment_method_kind text,
    last_attempt_at timestamptz,
    closed_at timestamptz,
    account_version bigint NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (account_id, invoice_id)
);
COMMENT ON TABLE invoices IS
    'One row per invoice: its amount, due date, what settled it and its status; amounts in '
    'minor units of currency. See docs/read-models.md.';
COMMENT ON COLUMN invoices.account_id IS 'The upstream account id.';
COMMENT ON COLUMN invoices.invoice_id IS
    'The invoice: <subscription>/<cycle + 1>, <subscription>/<cycle + 1>/change-<n> or <plan>/<k>.';
COMMENT ON COLUMN invoices.currency IS 'ISO 4217 code of every amount of the invoice.';
COMMENT ON COLUMN invoices.kind IS
    'cycle (a subscription''s billing cycle), proration (a plan change''s part of a cycle) or '
    'installment (of a renegotiation plan).';
COMMENT ON COLUMN invoices.subscription_id IS 'The subscription invoiced; NULL for an installment.';
COMMENT ON COLUMN invoices.cycle IS 'The billing cycle invoiced, from 0; NULL for an installment.';
COMMENT ON COLUMN invoices.renegotiation_plan_id IS 'The plan an installment belongs to.';
COMMENT ON COLUMN invoices.period_start IS 'Start of the period invoiced (NULL for an installment).';
COMMENT ON COLUMN invoices.period_end IS 'End of the period invoiced (NULL for an installment).';
COMMENT ON COLUMN invoices.issued_at IS 'Business time the invoice was issued.';
COMMENT ON COLUMN invoices.amount_minor IS 'The amount invoiced.';
COMMENT ON COLUMN invoices.due_at IS
    'When it is due; a renegotiation plan''s default moves its later installments'' to the default.';
COMMENT ON COLUMN invoices.paid_minor IS 'Payments allocated to it (PaymentReceived allocations).';
COMMENT ON COLUMN invoices.credit_applied_minor IS 'Customer credit that settled part of it.';
COMMENT ON COLUMN invoices.discounted_minor IS 'Its early-payment discount, once granted.';
COMMENT ON COLUMN invoices.written_off_minor IS 'What it still owed when written off.';
COMMENT ON COLUMN invoices.renegotiated_minor IS
    'What it still owed when a renegotiation plan took it over.';
COMMENT ON COLUMN invoices.renegotiated_into IS 'The renegotiation plan that took it over.';
COMMENT ON COLUMN invoices.credited_minor IS
    'Credit notes issued against it (revenue given back as customer credit).';
COMMENT ON COLUMN invoices.outstanding_minor IS
    'What is still to be paid: amount less paid, credit applied, discount, written off and '
    'renegotiated.';
COMMENT ON COLUMN invoices.overdue IS 'The ledger marked it overdue (InvoiceOverdue).';
COMMENT ON COLUMN invoices.status IS
    'renegotiated, written_off, overdue (outstanding and marked overdue), open (outstanding), '
    'credited (settled, credit notes of at least its amount) or paid (settled), in that order.';
COMMENT ON COLUMN invoices.failed_attempts IS 'Charges of it that failed (ChargeFailed).';
COMMENT ON COLUMN invoices.last_payment_method_kind IS
    'Payment method kind of the last charge requested, charge failed or payment allocated to it.';
COMMENT ON COLUMN invoices.last_attempt_at IS 'Business time of that last attempt.';
COMMENT ON COLUMN invoices.closed_at IS
    'When it stopped owing anything: paid (InvoicePaid), written off or renegotiated.';
COMMENT ON COLUMN invoices.account_version IS 'The version of the last account event applied to it.';
COMMENT ON COLUMN invoices.updated_at IS 'The business time of that event.';
"""
_INSERT = (
    "INSERT INTO invoices (account_id, invoice_id, currency, kind, subscription_id, cycle, "
    "renegotiation_plan_id, period_start, period_end, issued_at, amount_minor, due_at, "
    "account_version, updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
    "ON CONFLICT (account_id, invoice_id) DO NOTHING"
)
# The column each cause of a change of the open balance adds to (the change with its sign off).
_SETTLED_BY = {
    "paid": "paid_minor",
    "credit_applied": "credit_applied_minor",
    "discounted": "discounted_minor",
    "written_off": "written_off_minor",
    "renegotiated": "renegotiated_minor",
}
_CLOSING = ("InvoicePaid", "InvoiceWrittenOff")
_ATTEMPTS = ("ChargeRequested", "ChargeFailed", "PaymentReceived")


class Update:
    """What one event changes on one invoice row: amounts to add and values to set."""

    def __init__(self) -> None:
        self.add: dict[str, int] = defaultdict(int)
        self.assign: dict[str, Any] = {}


class Invoices:
    """Applies account events to the invoices table, inside the caller's transaction."""

    name = "invoices"
    tables: tuple[str, ...] = ("invoices",)
    schema = SCHEMA

    def apply(self, cursor: psycopg.Cursor[Any], event_type: str, record: dict[str, Any]) -> None:
        """Apply one decoded event to the invoices it concerns."""
        if "account_id" not in record:
            return
        if event_type == "InvoiceIssued":
            _insert_issued(cursor, record)
        elif event_type == "DebtRenegotiated":
            _insert_installments(cursor, record)
        for invoice_id, update in updates_of(event_type, record).items():
            _update(cursor, record, invoice_id, update)


def updates_of(event_type: str, record: dict[str, Any]) -> dict[str, Update]:
    """The row updates an event makes, by invoice id (not the rows it inserts)."""
    updates: dict[str, Update] = defaultdict(Update)
    at = record["occurred_at"]
    for change in invoice_changes(event_type, record):
        if change.cause == "installment":
            continue  # inserted as a row of its own
        update = updates[change.invoice_id]
        if change.cause in _SETTLED_BY:
            update.add[_SETTLED_BY[change.cause]] -= change.change_minor
        if change.cause == "renegotiated":
            update.assign |= {"renegotiated_into": record["plan_id"], "closed_at": at}
        if change.cause == "accelerated":
            update.assign["due_at"] = change.due_at
    invoice_id: str = record.get("invoice_id", "")
    if event_type == "CreditNoteIssued":
        updates[invoice_id].add["credited_minor"] += record["amount_minor"]
    elif event_type == "InvoiceOverdue":
        updates[invoice_id].assign["overdue"] = True
    elif event_type in _CLOSING:
        updates[invoice_id].assign["closed_at"] = at
    if event_type in _ATTEMPTS:
        attempt = {"last_payment_method_kind": record["payment_method_kind"], "last_attempt_at": at}
        if event_type == "PaymentReceived":
            targets = [a["invoice_id"] for a in record["allocations"]]
        else:
            targets = [invoice_id]
        for target in targets:
            updates[target].assign |= attempt
    if event_type == "ChargeFailed":
        updates[invoice_id].assign["failed_attempts"] = record["attempt"]
    return updates


def _insert_issued(cursor: psycopg.Cursor[Any], record: dict[str, Any]) -> None:
    cycle_id = f"{record['subscription_id']}/{record['cycle'] + 1}"
    cursor.execute(
        _INSERT,
        (
            record["account_id"],
            record["invoice_id"],
            record["currency"],
            "cycle" if record["invoice_id"] == cycle_id else "proration",
            record["subscription_id"],
            record["cycle"],
            None,
            record["period_start"],
            record["period_end"],
            record["occurred_at"],
            record["amount_minor"],
            record["due_at"],
            record["account_version"],
            record["occurred_at"],
        ),
    )


def _insert_installments(cursor: psycopg.Cursor[Any], record: dict[str, Any]) -> None:
    cursor.executemany(
        _INSERT,
        [
            (
                record["account_id"],
                line["invoice_id"],
                record["currency"],
                "installment",
                None,
                None,
                record["plan_id"],
                None,
                None,
                record["occurred_at"],
                line["amount_minor"],
                line["due_at"],
                record["account_version"],
                record["occurred_at"],
            )
            for line in record["schedule"]
        ],
    )


def _update(
    cursor: psycopg.Cursor[Any], record: dict[str, Any], invoice_id: str, update: Update
) -> None:
    sets = [sql.SQL("{0} = {0} + %s").format(sql.Identifier(c)) for c in update.add]
    sets += [sql.SQL("{} = %s").format(sql.Identifier(c)) for c in update.assign]
    statement = sql.SQL(
        "UPDATE invoices SET {}account_version = %s, updated_at = %s "
        "WHERE account_id = %s AND invoice_id = %s AND account_version < %s"
    ).format(sql.SQL("").join(s + sql.SQL(", ") for s in sets))
    version = record["account_version"]
    cursor.execute(
        statement,
        (
            *update.add.values(),
            *update.assign.values(),
            version,
            record["occurred_at"],
            record["account_id"],
            invoice_id,
            version,
        ),
    )
