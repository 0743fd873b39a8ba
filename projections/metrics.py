"""The metrics' read model beside subscription_versions: invoices' charges and dunning,
renegotiation plans, and feedback scores.

MRR, its movements, churn and retention are computed by `runtime/metrics_model.py` from
`subscription_versions`; charge success, dunning recovery, renegotiation outcomes and the
feedback split from the tables here. Rows keep the last account version applied (or are
keyed by an id the account gives once), so an event republished by the relay is applied once.
"""

from __future__ import annotations

from typing import Any

import psycopg

from projections.batch import EachEvent

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

_INVOICE_SQL = (
    "INSERT INTO metrics_invoices (account_id, invoice_id, currency, amount_minor, issued_at, "
    "renegotiation_plan_id, account_version) VALUES (%s, %s, %s, %s, %s, %s, %s) "
    "ON CONFLICT DO NOTHING"
)


class Metrics(EachEvent):
    """Applies account events to the metrics' tables, inside the caller's transaction."""

    name = "metrics"
    tables: tuple[str, ...] = ("metrics_invoices", "metrics_renegotiations", "metrics_feedback")
    schema = SCHEMA

    def apply(self, cursor: psycopg.Cursor[Any], event_type: str, record: dict[str, Any]) -> None:
        """Apply one decoded event; events that change no row here are ignored."""
        handler = _HANDLERS.get(event_type)
        if handler is not None and "account_id" in record:
            handler(cursor, record)


def _invoice_issued(cursor: psycopg.Cursor[Any], record: dict[str, Any]) -> None:
    cursor.execute(
        _INVOICE_SQL,
        (
            record["account_id"],
            record["invoice_id"],
            record["currency"],
            record["amount_minor"],
            record["occurred_at"],
            None,
            record["account_version"],
        ),
    )


def _renegotiated(cursor: psycopg.Cursor[Any], record: dict[str, Any]) -> None:
    schedule = record["schedule"]
    cursor.execute(
        "INSERT INTO metrics_renegotiations (account_id, plan_id, currency, agreed_at, "
        "amount_minor, installments, account_version) VALUES (%s, %s, %s, %s, %s, %s, %s) "
        "ON CONFLICT DO NOTHING",
        (
            record["account_id"],
            record["plan_id"],
            record["currency"],
            record["occurred_at"],
            sum(installment["amount_minor"] for installment in schedule),
            len(schedule),
            record["account_version"],
        ),
    )
    for installment in schedule:
        cursor.execute(
            _INVOICE_SQL,
            (
                record["account_id"],
                installment["invoice_id"],
                record["currency"],
                installment["amount_minor"],
                record["occurred_at"],
                record["plan_id"],
                record["account_version"],
            ),
        )


def _charge_requested(cursor: psycopg.Cursor[Any], record: dict[str, Any]) -> None:
    _update_invoice(
        cursor,
        record,
        "payment_method_kind = COALESCE(payment_method_kind, %s), "
        "first_attempt_at = COALESCE(first_attempt_at, %s)",
        (record["payment_method_kind"], record["occurred_at"]),
    )


def _charge_failed(cursor: psycopg.Cursor[Any], record: dict[str, Any]) -> None:
    _update_invoice(
        cursor,
        record,
        "payment_method_kind = COALESCE(payment_method_kind, %s), "
        "first_attempt_at = COALESCE(first_attempt_at, %s), failed_attempts = failed_attempts + 1",
        (record["payment_method_kind"], record["occurred_at"]),
    )


def _overdue(cursor: psycopg.Cursor[Any], record: dict[str, Any]) -> None:
    _update_invoice(
        cursor,
        record,
        "overdue_at = COALESCE(overdue_at, %s), overdue_minor = COALESCE(overdue_minor, %s)",
        (record["occurred_at"], record["outstanding_minor"]),
    )


def _paid(cursor: psycopg.Cursor[Any], record: dict[str, Any]) -> None:
    cursor.execute(
        "UPDATE metrics_invoices SET paid_at = %s, account_version = %s "
        "WHERE account_id = %s AND invoice_id = %s AND account_version < %s AND paid_at IS NULL "
        "RETURNING renegotiation_plan_id",
        (
            record["occurred_at"],
            record["account_version"],
            record["account_id"],
            record["invoice_id"],
            record["account_version"],
        ),
    )
    row = cursor.fetchone()
    if row is None or row[0] is None:
        return
    cursor.execute(
        "UPDATE metrics_renegotiations SET installments_paid = installments_paid + 1, "
        "completed_at = CASE WHEN installments_paid + 1 = installments THEN %s END, "
        "account_version = %s WHERE account_id = %s AND plan_id = %s AND account_version < %s",
        (
            record["occurred_at"],
            record["account_version"],
            record["account_id"],
            row[0],
            record["account_version"],
        ),
    )


def _defaulted(cursor: psycopg.Cursor[Any], record: dict[str, Any]) -> None:
    cursor.execute(
        "UPDATE metrics_renegotiations SET defaulted_at = COALESCE(defaulted_at, %s), "
        "account_version = %s WHERE account_id = %s AND plan_id = %s AND account_version < %s",
        (
            record["occurred_at"],
            record["account_version"],
            record["account_id"],
            record["plan_id"],
            record["account_version"],
        ),
    )


def _feedback(cursor: psycopg.Cursor[Any], record: dict[str, Any]) -> None:
    cursor.execute(
        "INSERT INTO metrics_feedback VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
        (record["account_id"], record["feedback_id"], record["score"], record["occurred_at"]),
    )


def _update_invoice(
    cursor: psycopg.Cursor[Any], record: dict[str, Any], assignments: str, values: tuple[Any, ...]
) -> None:
    cursor.execute(
        f"UPDATE metrics_invoices SET {assignments}, account_version = %s "
        "WHERE account_id = %s AND invoice_id = %s AND account_version < %s",
        (
            *values,
            record["account_version"],
            record["account_id"],
            record["invoice_id"],
            record["account_version"],
        ),
    )


_HANDLERS = {
    "InvoiceIssued": _invoice_issued,
    "DebtRenegotiated": _renegotiated,
    "ChargeRequested": _charge_requested,
    "ChargeFailed": _charge_failed,
    "InvoiceOverdue": _overdue,
    "InvoicePaid": _paid,
    "RenegotiationDefaulted": _defaulted,
    "FeedbackRecorded": _feedback,
}
