"""The delinquency read model: how late each account and invoice pays, and what dunning does about it.

Three tables: `delinquency` (per account), `delinquency_invoices` (per invoice) and
`receivable_movements` (the history of open balances, for aging as of a past date). Rows keep
the account version they have applied and movements are keyed by event, so an event
republished by the relay (at-least-once) is applied once. After every account event, the
account's row is refreshed with `delinquency_as_of` at the event's business time.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from projections.delinquency_schema import SCHEMA
from projections.receivable import InvoiceChange, invoice_changes

# The columns `delinquency_as_of` answers that the delinquency row keeps (as of updated_at).
STORED = (
    "status",
    "open_minor",
    "overdue_minor",
    "oldest_unpaid_due_at",
    "dunning_stage",
    "failed_attempts",
    "installments_paid",
    "installments_missed",
    "installments_remaining",
    "renegotiation_remaining_minor",
    "next_installment_due_at",
)
_REFRESH = sql.SQL(
    "UPDATE delinquency d SET {}, account_version = %(version)s, updated_at = %(at)s "
    "FROM delinquency_as_of(%(at)s, %(account)s) f "
    "WHERE d.account_id = f.account_id AND d.account_version < %(version)s"
).format(sql.SQL(", ").join(sql.SQL("{0} = f.{0}").format(sql.Identifier(c)) for c in STORED))
_NEW_ACCOUNT = (
    "INSERT INTO delinquency (account_id, currency, opened_at, account_version, updated_at) "
    "VALUES (%(account)s, %(currency)s, %(at)s, %(version)s, %(at)s) "
    "ON CONFLICT (account_id) DO NOTHING"
)
_NEW_INVOICE = (
    "INSERT INTO delinquency_invoices (account_id, invoice_id, currency, renegotiation_plan_id, "
    "due_at, open_minor, account_version, updated_at) VALUES (%(account)s, %(invoice)s, "
    "%(currency)s, %(plan)s, %(due_at)s, %(change)s, %(version)s, %(at)s) "
    "ON CONFLICT (account_id, invoice_id) DO NOTHING"
)
_MOVEMENT = (
    "INSERT INTO receivable_movements VALUES (%(event)s, %(account)s, %(invoice)s, %(currency)s, "
    "%(cause)s, %(change)s, %(due_at)s, %(at)s, %(version)s) "
    "ON CONFLICT (event_id, invoice_id) DO NOTHING"
)
_CHANGE_INVOICE = (
    "UPDATE delinquency_invoices SET open_minor = open_minor + %(change)s, "
    "due_at = coalesce(%(due_at)s, due_at), "
    "closed_at = CASE WHEN %(change)s < 0 AND open_minor + %(change)s <= 0 THEN %(at)s "
    "ELSE closed_at END, "
    "closed_by = CASE WHEN %(change)s < 0 AND open_minor + %(change)s <= 0 THEN %(cause)s "
    "ELSE closed_by END, account_version = %(version)s, updated_at = %(at)s "
    "WHERE account_id = %(account)s AND invoice_id = %(invoice)s AND account_version < %(version)s"
)
_NEW = "account_version < %(version)s"
# Event type -> (table, assignments, extra condition) of the updates it makes besides balances.
_FACTS: dict[str, tuple[str, str, str]] = {
    "DunningPolicySet": (
        "delinquency",
        "reminder_days_before_due = %(reminder_days_before_due)s, "
        "reminder_days_after_due = %(reminder_days_after_due)s, "
        "retry_days_after_failure = %(retry_days_after_failure)s, "
        "grace_days = %(grace_days)s, policy_final_action = %(final_action)s",
        "",
    ),
    "HardshipPauseStarted": (
        "delinquency",
        "hardship_reason = %(reason)s, hardship_started_at = %(at)s, hardship_until = %(until)s",
        "",
    ),
    "DunningFinalAction": (
        "delinquency",
        "final_action = %(action)s, final_action_at = %(at)s",
        "",
    ),
    "SubscriptionResumed": ("delinquency", "final_action = NULL, final_action_at = NULL", ""),
    "SubscriptionReactivated": ("delinquency", "final_action = NULL, final_action_at = NULL", ""),
    "PaymentReminderDue": (
        "delinquency_invoices",
        "last_reminder = %(stage)s, last_reminder_at = %(at)s, "
        "dunning_stage = greatest(dunning_stage, %(stage_number)s)",
        "AND invoice_id = %(invoice_id)s",
    ),
    "ChargeFailed": (
        "delinquency_invoices",
        "failed_attempts = %(attempt)s",
        "AND invoice_id = %(invoice_id)s",
    ),
    "ChargeRetryScheduled": (
        "delinquency_invoices",
        "next_retry_at = %(retry_at)s",
        "AND invoice_id = %(invoice_id)s",
    ),
    "ChargeRetryDue": (
        "delinquency_invoices",
        "next_retry_at = NULL",
        "AND invoice_id = %(invoice_id)s",
    ),
    "RenegotiationDefaulted": (
        "delinquency_invoices",
        "renegotiation_defaulted = true",
        "AND renegotiation_plan_id = %(plan_id)s",
    ),
}


class Delinquency:
    """Applies account events to the delinquency tables, inside the caller's transaction."""

    name = "delinquency"
    tables: tuple[str, ...] = ("delinquency", "delinquency_invoices", "receivable_movements")
    schema = SCHEMA

    def apply(self, cursor: psycopg.Cursor[Any], event_type: str, record: dict[str, Any]) -> None:
        """Apply one decoded account event, then refresh the account's row as of its time."""
        if "account_id" not in record:
            return
        params = _params(record)
        if event_type == "AccountOpened":
            cursor.execute(_NEW_ACCOUNT, params)
            return
        for change in invoice_changes(event_type, record):
            _apply_change(cursor, params, record, change)
        facts = _FACTS.get(event_type)
        if facts is not None:
            table, assignments, condition = facts
            cursor.execute(
                f"UPDATE {table} SET {assignments} "
                f"WHERE account_id = %(account)s AND {_NEW} {condition}",
                params | _fact_params(event_type, record),
            )
        if event_type == "DunningFinalAction":
            cursor.execute(
                "UPDATE delinquency_invoices SET final_action_at = %(at)s "
                f"WHERE account_id = %(account)s AND invoice_id = %(invoice_id)s AND {_NEW}",
                params | {"invoice_id": record["invoice_id"]},
            )
        cursor.execute(_REFRESH, params)


def _params(record: dict[str, Any]) -> dict[str, Any]:
    return {
        "event": record["event_id"],
        "account": record["account_id"],
        "currency": record.get("currency"),
        "version": record["account_version"],
        "at": record["occurred_at"],
    }


def _fact_params(event_type: str, record: dict[str, Any]) -> dict[str, Any]:
    params = dict(record)
    if event_type == "PaymentReminderDue":
        stage = str(record["stage"])
        number = stage.removeprefix("stage_") if stage.startswith("stage_") else "0"
        params["stage_number"] = int(number)
    return params


def _apply_change(
    cursor: psycopg.Cursor[Any],
    params: dict[str, Any],
    record: dict[str, Any],
    change: InvoiceChange,
) -> None:
    values = params | {
        "invoice": change.invoice_id,
        "cause": change.cause,
        "change": change.change_minor,
        "due_at": change.due_at,
        "plan": record.get("plan_id") if change.cause == "installment" else None,
    }
    cursor.execute(_MOVEMENT, values)
    if change.cause in ("issued", "installment"):
        cursor.execute(_NEW_INVOICE, values)
    else:
        cursor.execute(_CHANGE_INVOICE, values)
