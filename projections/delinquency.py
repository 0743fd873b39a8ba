"""The delinquency read model: how late each account and invoice pays, and what dunning does about it.

Four tables: `delinquency` (per account), `delinquency_invoices` (per invoice),
`receivable_movements` (the history of open balances, for aging as of a past date) and
`delinquency_invoice_facts` (the history of dunning stages, failed charges and defaults, for
delinquency as of a past date). Rows keep
the account version they have applied and movements are keyed by event, so an event
republished by the relay (at-least-once) is applied once. After a batch's events, each
account's row is refreshed with `delinquency_as_of` at its last event's business time, in one
statement for the batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import sql

from projections.batch import Batched, Event
from projections.delinquency_invoices import InvoiceRows
from projections.delinquency_schema import SCHEMA

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
# The rows of a batch's accounts, each as of its last event (account, business time, version).
_REFRESH = sql.SQL(
    "UPDATE delinquency d SET {}, account_version = u.version, updated_at = u.at "
    "FROM unnest(%s::text[], %s::timestamptz[], %s::bigint[]) u(account, at, version) "
    "CROSS JOIN LATERAL account_delinquency_as_of(u.at, u.account) f "
    "WHERE d.account_id = u.account AND d.account_version < u.version"
).format(sql.SQL(", ").join(sql.SQL("{0} = f.{0}").format(sql.Identifier(c)) for c in STORED))
_NEW_ACCOUNT = (
    "INSERT INTO delinquency (account_id, currency, opened_at, account_version, updated_at) "
    "VALUES (%(account)s, %(currency)s, %(at)s, %(version)s, %(at)s) "
    "ON CONFLICT (account_id) DO NOTHING"
)
_NEW = "account_version < %(version)s"
# Event type -> what it sets on its account's row.
_FACTS: dict[str, str] = {
    "DunningPolicySet": (
        "reminder_days_before_due = %(reminder_days_before_due)s, "
        "reminder_days_after_due = %(reminder_days_after_due)s, "
        "retry_days_after_failure = %(retry_days_after_failure)s, "
        "grace_days = %(grace_days)s, policy_final_action = %(final_action)s"
    ),
    "HardshipPauseStarted": (
        "hardship_reason = %(reason)s, hardship_started_at = %(at)s, hardship_until = %(until)s"
    ),
    "DunningFinalAction": "final_action = %(action)s, final_action_at = %(at)s",
    "SubscriptionResumed": "final_action = NULL, final_action_at = NULL",
    "SubscriptionReactivated": "final_action = NULL, final_action_at = NULL",
}


class Delinquency(Batched):
    """Applies account events to the delinquency tables, inside the caller's transaction."""

    name = "delinquency"
    tables: tuple[str, ...] = (
        "delinquency",
        "delinquency_invoices",
        "receivable_movements",
        "delinquency_invoice_facts",
    )
    schema = SCHEMA

    def apply_batch(self, cursor: psycopg.Cursor[Any], events: Sequence[Event]) -> None:
        """Apply decoded account events, then refresh each account's row once, as of its last
        event's time: the same row a refresh after each event would leave."""
        accounts = sorted({r["account_id"] for _, r in events if "account_id" in r})
        if not accounts:
            return
        invoices = InvoiceRows(cursor, accounts)
        last: dict[str, tuple[Any, int]] = {}  # account -> (business time, version)
        with cursor.connection.pipeline():  # the statements of the events, sent at once
            for event_type, record in events:
                if "account_id" not in record:
                    continue
                if event_type == "AccountOpened":
                    cursor.execute(_NEW_ACCOUNT, _params(record))
                    continue
                invoices.apply(event_type, record)
                _apply_facts(cursor, event_type, record)
                last[record["account_id"]] = (record["occurred_at"], record["account_version"])
        invoices.write(cursor)
        if last:
            cursor.execute(
                _REFRESH,
                (list(last), [at for at, _ in last.values()], [v for _, v in last.values()]),
            )


def _apply_facts(cursor: psycopg.Cursor[Any], event_type: str, record: dict[str, Any]) -> None:
    """What an event sets on its account's row besides the refreshed balances."""
    assignments = _FACTS.get(event_type)
    if assignments is not None:
        cursor.execute(
            f"UPDATE delinquency SET {assignments} WHERE account_id = %(account)s AND {_NEW}",
            _params(record) | dict(record),
        )


def _params(record: dict[str, Any]) -> dict[str, Any]:
    return {
        "event": record["event_id"],
        "account": record["account_id"],
        "currency": record.get("currency"),
        "version": record["account_version"],
        "at": record["occurred_at"],
    }
