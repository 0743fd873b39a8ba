"""The invoices read model: one row per invoice (a cycle's, a proration's, an installment's).

Each row keeps the account version it has applied, so an event republished by the relay
(at-least-once) is applied once. A batch reads the rows its events name once, applies its
events to them in memory and writes the rows it changed in one statement. The outstanding amount and the status are generated columns,
computed by PostgreSQL from the amounts.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import sql

from projections.batch import Batched, Event, upsert
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
# Every column but the generated ones, with its type, in the table's order.
COLUMNS = {
    "account_id": "text",
    "invoice_id": "text",
    "currency": "text",
    "kind": "text",
    "subscription_id": "text",
    "cycle": "integer",
    "renegotiation_plan_id": "text",
    "period_start": "timestamptz",
    "period_end": "timestamptz",
    "issued_at": "timestamptz",
    "amount_minor": "bigint",
    "due_at": "timestamptz",
    "paid_minor": "bigint",
    "credit_applied_minor": "bigint",
    "discounted_minor": "bigint",
    "written_off_minor": "bigint",
    "renegotiated_minor": "bigint",
    "renegotiated_into": "text",
    "credited_minor": "bigint",
    "overdue": "boolean",
    "failed_attempts": "integer",
    "last_payment_method_kind": "text",
    "last_attempt_at": "timestamptz",
    "closed_at": "timestamptz",
    "account_version": "bigint",
    "updated_at": "timestamptz",
}
# A new row's columns that no event sets when it is issued.
_UNSET = {
    "paid_minor": 0,
    "credit_applied_minor": 0,
    "discounted_minor": 0,
    "written_off_minor": 0,
    "renegotiated_minor": 0,
    "renegotiated_into": None,
    "credited_minor": 0,
    "overdue": False,
    "failed_attempts": 0,
    "last_payment_method_kind": None,
    "last_attempt_at": None,
    "closed_at": None,
}
Key = tuple[str, str]  # (account id, invoice id)
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


class Invoices(Batched):
    """Applies account events to the invoices table, inside the caller's transaction."""

    name = "invoices"
    tables: tuple[str, ...] = ("invoices",)
    schema = SCHEMA

    def apply_batch(self, cursor: psycopg.Cursor[Any], events: Sequence[Event]) -> None:
        """Apply decoded events to the invoices they name, read once and written once."""
        named = sorted(
            {(r["account_id"], i) for t, r in events if "account_id" in r for i in _named(t, r)}
        )
        if not named:
            return
        cursor.execute(
            sql.SQL(
                "SELECT {} FROM invoices WHERE (account_id, invoice_id) IN "
                "(SELECT * FROM unnest(%b::text[], %b::text[]))"
            ).format(sql.SQL(", ").join(map(sql.Identifier, COLUMNS))),
            ([account for account, _ in named], [invoice for _, invoice in named]),
        )
        rows = {row[:2]: dict(zip(COLUMNS, row, strict=True)) for row in cursor.fetchall()}
        changed: set[Key] = set()
        for event_type, record in events:
            if "account_id" in record:
                changed |= _apply(rows, event_type, record)
        upsert(
            cursor,
            "invoices",
            COLUMNS,
            ("account_id", "invoice_id"),
            (tuple(rows[key].values()) for key in sorted(changed)),
        )


def _apply(rows: dict[Key, dict[str, Any]], event_type: str, record: dict[str, Any]) -> set[Key]:
    """Apply one event to the invoice rows in `rows`; answer the keys of those it changed."""
    account, version = record["account_id"], record["account_version"]
    changed = set()
    for row in _issued(event_type, record):
        key = (account, row["invoice_id"])
        if key not in rows:
            rows[key] = row
            changed.add(key)
    for invoice_id, update in updates_of(event_type, record).items():
        current = rows.get((account, invoice_id))
        if current is None or current["account_version"] >= version:
            continue
        for column, amount in update.add.items():
            current[column] += amount
        current |= update.assign | {"account_version": version, "updated_at": record["occurred_at"]}
        changed.add((account, invoice_id))
    return changed


def _named(event_type: str, record: dict[str, Any]) -> list[str]:
    """The invoices an event issues or changes."""
    return [row["invoice_id"] for row in _issued(event_type, record)] + list(
        updates_of(event_type, record)
    )


def _issued(event_type: str, record: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows of the invoices an event issues: an invoice, a renegotiation's installments."""
    if event_type not in ("InvoiceIssued", "DebtRenegotiated"):
        return []
    common = {
        "account_id": record["account_id"],
        "currency": record["currency"],
        "issued_at": record["occurred_at"],
        "account_version": record["account_version"],
        "updated_at": record["occurred_at"],
    }
    if event_type == "InvoiceIssued":
        cycle_id = f"{record['subscription_id']}/{record['cycle'] + 1}"
        issued = {
            "invoice_id": record["invoice_id"],
            "kind": "cycle" if record["invoice_id"] == cycle_id else "proration",
            "subscription_id": record["subscription_id"],
            "cycle": record["cycle"],
            "renegotiation_plan_id": None,
            "period_start": record["period_start"],
            "period_end": record["period_end"],
            "amount_minor": record["amount_minor"],
            "due_at": record["due_at"],
        }
        return [_row(common | issued)]
    return [
        _row(
            common
            | {
                "invoice_id": line["invoice_id"],
                "kind": "installment",
                "subscription_id": None,
                "cycle": None,
                "renegotiation_plan_id": record["plan_id"],
                "period_start": None,
                "period_end": None,
                "amount_minor": line["amount_minor"],
                "due_at": line["due_at"],
            }
        )
        for line in record["schedule"]
    ]


def _row(values: dict[str, Any]) -> dict[str, Any]:
    """A new row: `values` and the columns no event has set yet, in the table's order."""
    return {column: values[column] if column in values else _UNSET[column] for column in COLUMNS}


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
