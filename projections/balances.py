"""The balances read model: one row per account with what it owes, built from billing.events.

Each row keeps the account version it has applied, so an event republished by the relay
(at-least-once) is applied once.
"""

from __future__ import annotations

from typing import Any

import psycopg

SCHEMA = """
CREATE TABLE IF NOT EXISTS balances (
    account_id text PRIMARY KEY,
    currency text NOT NULL,
    customer_reference text NOT NULL,
    receivable_minor bigint NOT NULL DEFAULT 0,
    customer_credit_minor bigint NOT NULL DEFAULT 0,
    invoiced_minor bigint NOT NULL DEFAULT 0,
    subscriptions integer NOT NULL DEFAULT 0,
    account_version bigint NOT NULL,
    updated_at timestamptz NOT NULL
);
COMMENT ON TABLE balances IS
    'One row per account: receivable_minor is what the customer owes, in minor units of currency.';
"""


class Balances:
    """Applies account events to the balances table, inside the caller's transaction."""

    name = "balances"
    tables: tuple[str, ...] = ("balances",)
    schema = SCHEMA

    def apply(self, cursor: psycopg.Cursor[Any], event_type: str, record: dict[str, Any]) -> None:
        """Apply one decoded event; events of other types only advance the account version."""
        if "account_id" not in record:
            return  # a plan's event: the catalogue is the plans read model's
        if event_type == "AccountOpened":
            cursor.execute(
                "INSERT INTO balances (account_id, currency, customer_reference, "
                "account_version, updated_at) VALUES (%s, %s, %s, %s, %s) "
                "ON CONFLICT (account_id) DO NOTHING",
                (
                    record["account_id"],
                    record["currency"],
                    record["customer_reference"],
                    record["account_version"],
                    record["occurred_at"],
                ),
            )
            return
        postings = record.get("postings", [])
        cursor.execute(
            "UPDATE balances SET receivable_minor = receivable_minor + %s, "
            "customer_credit_minor = customer_credit_minor + %s, "
            "invoiced_minor = invoiced_minor + %s, subscriptions = subscriptions + %s, "
            "account_version = %s, updated_at = %s "
            "WHERE account_id = %s AND account_version < %s",
            (
                _debit_balance("receivable", postings),
                -_debit_balance("customer_credit", postings),
                invoiced_minor(event_type, record),
                1 if event_type == "Subscribed" else 0,
                record["account_version"],
                record["occurred_at"],
                record["account_id"],
                record["account_version"],
            ),
        )


def invoiced_minor(event_type: str, record: dict[str, Any]) -> int:
    """What the event bills: an invoice's amount, or a renegotiation's interest (revenue billed
    on the installments)."""
    if event_type == "InvoiceIssued":
        return int(record["amount_minor"])
    if event_type == "DebtRenegotiated":
        return int(record["interest_minor"])
    return 0


def _debit_balance(ledger_account: str, postings: list[dict[str, Any]]) -> int:
    return sum(
        p["amount_minor"] if p["side"] == "DEBIT" else -p["amount_minor"]
        for p in postings
        if p["ledger_account"] == ledger_account
    )


def account_ids(connection: psycopg.Connection[Any]) -> list[str]:
    """Every account the balances read model knows, in id order."""
    rows = connection.execute("SELECT account_id FROM balances ORDER BY account_id").fetchall()
    return [str(row[0]) for row in rows]
