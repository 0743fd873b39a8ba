"""The metrics' read model beside subscription_versions: invoices' charges and dunning,
renegotiation plans, and feedback scores.

MRR, its movements, churn and retention are computed by `runtime/metrics_model.py` from
`subscription_versions`; charge success, dunning recovery, renegotiation outcomes and the
feedback split from the tables here. Rows keep the last account version applied (or are
keyed by an id the account gives once), so an event republished by the relay is applied once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from projections.batch import Batched, Event, keyed, newer_row, select_rows, upsert

SCHEMA = """
CREATE TABLE IF NOT EXISTS metrics_invoices (
    account_id text NOT NULL,
    invoice_id text NOT NULL,
    currency text NOT NULL,
    amount_minor bigint NOT NULL,
    issued_at timestamptz NOT NULL,
    renegotiation_plan_id text,
    payment_method_kind text,
    first_attempt_at timestamptz,
    failed_attempts integer NOT NULL DEFAULT 0,
    overdue_at timestamptz,
    overdue_minor bigint,
    paid_at timestamptz,
    account_version bigint NOT NULL,
    PRIMARY KEY (account_id, invoice_id)
);
COMMENT ON TABLE metrics_invoices IS
    'Every invoice and installment with its charge attempts and dunning: feeds charge success and dunning recovery.';
COMMENT ON COLUMN metrics_invoices.amount_minor IS 'What the invoice asks for, in minor units of currency.';
COMMENT ON COLUMN metrics_invoices.renegotiation_plan_id IS 'The renegotiation plan an installment belongs to; null for an invoice.';
COMMENT ON COLUMN metrics_invoices.payment_method_kind IS 'Kind of the first charge attempt (ChargeRequested or ChargeFailed).';
COMMENT ON COLUMN metrics_invoices.first_attempt_at IS 'Business time of the first charge attempt; null: never charged.';
COMMENT ON COLUMN metrics_invoices.failed_attempts IS 'Charges that failed (ChargeFailed).';
COMMENT ON COLUMN metrics_invoices.overdue_at IS 'When it was marked past due (InvoiceOverdue): it entered dunning.';
COMMENT ON COLUMN metrics_invoices.overdue_minor IS 'What it still owed when marked past due.';
COMMENT ON COLUMN metrics_invoices.paid_at IS 'When it was paid in full (InvoicePaid).';
COMMENT ON COLUMN metrics_invoices.account_version IS 'The last account event applied to the row.';

CREATE TABLE IF NOT EXISTS metrics_renegotiations (
    account_id text NOT NULL,
    plan_id text NOT NULL,
    currency text NOT NULL,
    agreed_at timestamptz NOT NULL,
    amount_minor bigint NOT NULL,
    installments integer NOT NULL,
    installments_paid integer NOT NULL DEFAULT 0,
    defaulted_at timestamptz,
    completed_at timestamptz,
    account_version bigint NOT NULL,
    PRIMARY KEY (account_id, plan_id)
);
COMMENT ON TABLE metrics_renegotiations IS
    'Every renegotiation plan (DebtRenegotiated) and its outcome: defaulted, completed or in progress.';
COMMENT ON COLUMN metrics_renegotiations.amount_minor IS 'What the installments ask for in all, in minor units.';
COMMENT ON COLUMN metrics_renegotiations.installments_paid IS 'Installments paid in full (InvoicePaid).';
COMMENT ON COLUMN metrics_renegotiations.defaulted_at IS 'When an installment missed its grace (RenegotiationDefaulted).';
COMMENT ON COLUMN metrics_renegotiations.completed_at IS 'When the last installment was paid.';
COMMENT ON COLUMN metrics_renegotiations.account_version IS 'The last account event applied to the row.';

CREATE TABLE IF NOT EXISTS metrics_feedback (
    account_id text NOT NULL,
    feedback_id text NOT NULL,
    score integer NOT NULL,
    recorded_at timestamptz NOT NULL,
    PRIMARY KEY (account_id, feedback_id)
);
COMMENT ON TABLE metrics_feedback IS 'Every feedback score from 0 to 10 (FeedbackRecorded).';
COMMENT ON COLUMN metrics_feedback.account_id IS 'The account that answered.';
COMMENT ON COLUMN metrics_feedback.feedback_id IS 'The feedback (FeedbackRecorded.feedback_id).';
COMMENT ON COLUMN metrics_feedback.score IS 'The score, 0 to 10: 0-6 detractor, 7-8 passive, 9-10 promoter.';
COMMENT ON COLUMN metrics_feedback.recorded_at IS 'Business time it was recorded.';
COMMENT ON COLUMN metrics_invoices.account_id IS 'The account invoiced.';
COMMENT ON COLUMN metrics_invoices.invoice_id IS 'The invoice (InvoiceIssued) or installment (DebtRenegotiated schedule).';
COMMENT ON COLUMN metrics_invoices.currency IS 'ISO 4217 code of its amounts.';
COMMENT ON COLUMN metrics_invoices.issued_at IS 'Business time it was issued.';
COMMENT ON COLUMN metrics_renegotiations.account_id IS 'The account renegotiated.';
COMMENT ON COLUMN metrics_renegotiations.plan_id IS 'The renegotiation plan (DebtRenegotiated.plan_id).';
COMMENT ON COLUMN metrics_renegotiations.currency IS 'ISO 4217 code of its amounts.';
COMMENT ON COLUMN metrics_renegotiations.agreed_at IS 'Business time the plan was agreed.';
COMMENT ON COLUMN metrics_renegotiations.installments IS 'Installments of its schedule.';
"""

INVOICE_COLUMNS = {
    "account_id": "text",
    "invoice_id": "text",
    "currency": "text",
    "amount_minor": "bigint",
    "issued_at": "timestamptz",
    "renegotiation_plan_id": "text",
    "payment_method_kind": "text",
    "first_attempt_at": "timestamptz",
    "failed_attempts": "integer",
    "overdue_at": "timestamptz",
    "overdue_minor": "bigint",
    "paid_at": "timestamptz",
    "account_version": "bigint",
}
RENEGOTIATION_COLUMNS = {
    "account_id": "text",
    "plan_id": "text",
    "currency": "text",
    "agreed_at": "timestamptz",
    "amount_minor": "bigint",
    "installments": "integer",
    "installments_paid": "integer",
    "defaulted_at": "timestamptz",
    "completed_at": "timestamptz",
    "account_version": "bigint",
}
FEEDBACK_COLUMNS = {
    "account_id": "text",
    "feedback_id": "text",
    "score": "integer",
    "recorded_at": "timestamptz",
}
Key = tuple[str, str]  # (account, invoice / plan / feedback id)
Rows = dict[Key, dict[str, Any]]
# Events that name an invoice row by their invoice_id; one that names a plan row by plan_id.
_NAME_AN_INVOICE = frozenset(
    ("InvoiceIssued", "ChargeRequested", "ChargeFailed", "InvoiceOverdue", "InvoicePaid")
)
_NAME_PLANS = frozenset(("DebtRenegotiated", "RenegotiationDefaulted", "InvoicePaid"))


@dataclass
class MetricsRows:
    """A batch's rows of the metrics tables: read once, changed in memory, written once."""

    invoices: Rows
    renegotiations: Rows
    feedback: Rows = field(default_factory=dict)
    changed: set[tuple[str, Key]] = field(default_factory=set)  # (table, key)

    def write(self, cursor: psycopg.Cursor[Any]) -> None:
        """Upsert the changed rows, one statement per table; a feedback row is never read, so
        one stored already is left as it is."""
        for table, rows, columns in (
            ("metrics_invoices", self.invoices, INVOICE_COLUMNS),
            ("metrics_renegotiations", self.renegotiations, RENEGOTIATION_COLUMNS),
            ("metrics_feedback", self.feedback, FEEDBACK_COLUMNS),
        ):
            keys = sorted(key for name, key in self.changed if name == table)
            upsert(
                cursor,
                table,
                columns,
                tuple(columns)[:2],
                (tuple(rows[key].values()) for key in keys),
                replace=table != "metrics_feedback",
            )

    def insert(self, table: str, rows: Rows, row: dict[str, Any]) -> None:
        """A new row, unless its key is there (as INSERT ... ON CONFLICT DO NOTHING)."""
        account, item = list(row.values())[:2]  # every table here is keyed by its first two
        key = (account, item)
        if key not in rows:
            rows[key] = row
            self.changed.add((table, key))

    def newer(
        self, table: str, rows: Rows, key: Key, record: dict[str, Any]
    ) -> dict[str, Any] | None:
        """The row of `key` if the event is newer than it, now at the event's version."""
        row = newer_row(rows, key, record)
        if row is not None:
            self.changed.add((table, key))
        return row


class Metrics(Batched):
    """Applies account events to the metrics' tables, inside the caller's transaction."""

    name = "metrics"
    tables: tuple[str, ...] = ("metrics_invoices", "metrics_renegotiations", "metrics_feedback")
    schema = SCHEMA

    def apply_batch(self, cursor: psycopg.Cursor[Any], events: Sequence[Event]) -> None:
        """Apply decoded events to the rows they name, read once and written once, in the
        order of the events: the rows one statement per event would leave."""
        events = [(t, r) for t, r in events if t in _HANDLERS and "account_id" in r]
        if not events:
            return
        rows = MetricsRows(_invoices(cursor, events), _renegotiations(cursor, events))
        for event_type, record in events:
            _HANDLERS[event_type](rows, record)
        rows.write(cursor)


def _invoices(cursor: psycopg.Cursor[Any], events: Sequence[Event]) -> Rows:
    """The stored invoice rows the events name (an installment is named only when issued)."""
    keys = {(r["account_id"], r["invoice_id"]) for t, r in events if t in _NAME_AN_INVOICE}
    keys |= {
        (r["account_id"], installment["invoice_id"])
        for t, r in events
        if t == "DebtRenegotiated"
        for installment in r["schedule"]
    }
    return select_rows(cursor, "metrics_invoices", INVOICE_COLUMNS, "invoice_id", keys)


def _renegotiations(cursor: psycopg.Cursor[Any], events: Sequence[Event]) -> Rows:
    """The stored plan rows of the accounts whose events may change one (a paid installment
    names its plan only through its invoice row)."""
    accounts = sorted({r["account_id"] for t, r in events if t in _NAME_PLANS})
    if not accounts:
        return {}
    names = sql.SQL(", ").join(map(sql.Identifier, RENEGOTIATION_COLUMNS))
    cursor.execute(
        sql.SQL("SELECT {} FROM metrics_renegotiations WHERE account_id = ANY(%s)").format(names),
        (accounts,),
    )
    return keyed(cursor.fetchall(), RENEGOTIATION_COLUMNS)


def _new_invoice(
    record: dict[str, Any], invoice_id: str, amount_minor: int, plan_id: str | None
) -> dict[str, Any]:
    return dict.fromkeys(INVOICE_COLUMNS) | {
        "account_id": record["account_id"],
        "invoice_id": invoice_id,
        "currency": record["currency"],
        "amount_minor": amount_minor,
        "issued_at": record["occurred_at"],
        "renegotiation_plan_id": plan_id,
        "failed_attempts": 0,
        "account_version": record["account_version"],
    }


def _invoice_issued(rows: MetricsRows, record: dict[str, Any]) -> None:
    invoice = _new_invoice(record, record["invoice_id"], record["amount_minor"], None)
    rows.insert("metrics_invoices", rows.invoices, invoice)


def _renegotiated(rows: MetricsRows, record: dict[str, Any]) -> None:
    schedule = record["schedule"]
    plan = dict.fromkeys(RENEGOTIATION_COLUMNS) | {
        "account_id": record["account_id"],
        "plan_id": record["plan_id"],
        "currency": record["currency"],
        "agreed_at": record["occurred_at"],
        "amount_minor": sum(installment["amount_minor"] for installment in schedule),
        "installments": len(schedule),
        "installments_paid": 0,
        "account_version": record["account_version"],
    }
    rows.insert("metrics_renegotiations", rows.renegotiations, plan)
    for installment in schedule:
        invoice = _new_invoice(
            record, installment["invoice_id"], installment["amount_minor"], record["plan_id"]
        )
        rows.insert("metrics_invoices", rows.invoices, invoice)


def _charged(failed: int) -> Callable[[MetricsRows, dict[str, Any]], None]:
    """A charge attempt (ChargeRequested, or ChargeFailed: `failed` 1): the first one's kind
    and time are kept."""

    def charge(rows: MetricsRows, record: dict[str, Any]) -> None:
        row = _invoice(rows, record)
        if row is not None:
            kind, at = record["payment_method_kind"], record["occurred_at"]
            _first(row, payment_method_kind=kind, first_attempt_at=at)
            row["failed_attempts"] += failed

    return charge


def _overdue(rows: MetricsRows, record: dict[str, Any]) -> None:
    row = _invoice(rows, record)
    if row is not None:
        _first(row, overdue_at=record["occurred_at"], overdue_minor=record["outstanding_minor"])


def _paid(rows: MetricsRows, record: dict[str, Any]) -> None:
    key = (record["account_id"], record["invoice_id"])
    row = rows.invoices.get(key)
    if row is None or row["paid_at"] is not None:
        return
    row = rows.newer("metrics_invoices", rows.invoices, key, record)
    if row is None:
        return
    row["paid_at"] = record["occurred_at"]
    if row["renegotiation_plan_id"] is None:
        return
    plan_key = (record["account_id"], row["renegotiation_plan_id"])
    plan = rows.newer("metrics_renegotiations", rows.renegotiations, plan_key, record)
    if plan is not None:
        plan["installments_paid"] += 1
        done = plan["installments_paid"] == plan["installments"]
        plan["completed_at"] = record["occurred_at"] if done else None


def _defaulted(rows: MetricsRows, record: dict[str, Any]) -> None:
    key = (record["account_id"], record["plan_id"])
    plan = rows.newer("metrics_renegotiations", rows.renegotiations, key, record)
    if plan is not None:
        _first(plan, defaulted_at=record["occurred_at"])


def _feedback(rows: MetricsRows, record: dict[str, Any]) -> None:
    feedback = {
        "account_id": record["account_id"],
        "feedback_id": record["feedback_id"],
        "score": record["score"],
        "recorded_at": record["occurred_at"],
    }
    rows.insert("metrics_feedback", rows.feedback, feedback)


def _first(row: dict[str, Any], **values: Any) -> None:
    """Each column of `values` that is still null takes its value (SQL's COALESCE)."""
    for column, value in values.items():
        if row[column] is None:
            row[column] = value


def _invoice(rows: MetricsRows, record: dict[str, Any]) -> dict[str, Any] | None:
    """The invoice row the event names, if the event is newer than it."""
    key = (record["account_id"], record["invoice_id"])
    return rows.newer("metrics_invoices", rows.invoices, key, record)


_HANDLERS: dict[str, Callable[[MetricsRows, dict[str, Any]], None]] = {
    "InvoiceIssued": _invoice_issued,
    "DebtRenegotiated": _renegotiated,
    "ChargeRequested": _charged(0),
    "ChargeFailed": _charged(1),
    "InvoiceOverdue": _overdue,
    "InvoicePaid": _paid,
    "RenegotiationDefaulted": _defaulted,
    "FeedbackRecorded": _feedback,
}
