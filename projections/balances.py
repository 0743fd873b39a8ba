"""The balances read model: one row per account with what it owes, holds and has moved so far.

Each row keeps the account version it has applied, so an event republished by the relay
(at-least-once) is applied once. A batch reads its accounts' rows once, applies its events
to them in memory and writes the rows it changed in one statement.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import sql

from projections.batch import Batched, Event, upsert
from projections.receivable import debit_balance

# Totals kept per account, each a sum of amounts of one kind of event (minor units).
TOTALS = (
    "paid_minor",
    "discounted_minor",
    "credited_minor",
    "refunded_minor",
    "written_off_minor",
    "forgiven_minor",
)
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
ALTER TABLE balances
    ADD COLUMN IF NOT EXISTS paid_minor bigint NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS discounted_minor bigint NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS credited_minor bigint NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS refunded_minor bigint NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS written_off_minor bigint NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS forgiven_minor bigint NOT NULL DEFAULT 0;
COMMENT ON TABLE balances IS
    'One row per account: what it owes (receivable_minor), the credit it holds and the totals '
    'moved so far; amounts in minor units of currency. See docs/read-models.md.';
COMMENT ON COLUMN balances.account_id IS 'The upstream account id.';
COMMENT ON COLUMN balances.currency IS 'ISO 4217 code of every amount of the account.';
COMMENT ON COLUMN balances.customer_reference IS 'The upstream system''s customer id.';
COMMENT ON COLUMN balances.receivable_minor IS
    'Outstanding: what the customer owes now, the debit balance of the receivable ledger account.';
COMMENT ON COLUMN balances.customer_credit_minor IS
    'Credit the account holds (overpayments, credit notes), the credit balance of customer_credit.';
COMMENT ON COLUMN balances.invoiced_minor IS
    'Total invoiced: InvoiceIssued amounts plus the interest of renegotiation plans.';
COMMENT ON COLUMN balances.subscriptions IS 'Subscriptions taken out (Subscribed events).';
COMMENT ON COLUMN balances.paid_minor IS
    'Money received: PaymentReceived amounts, including the part that became credit.';
COMMENT ON COLUMN balances.discounted_minor IS 'Early-payment discounts granted.';
COMMENT ON COLUMN balances.credited_minor IS
    'Credit notes issued (revenue given back as credit), including prorated cancellations.';
COMMENT ON COLUMN balances.refunded_minor IS 'Customer credit paid back (CreditRefunded).';
COMMENT ON COLUMN balances.written_off_minor IS 'What invoices owed and was given up on (InvoiceWrittenOff).';
COMMENT ON COLUMN balances.forgiven_minor IS 'Debt forgiven by renegotiation plans (DebtRenegotiated).';
COMMENT ON COLUMN balances.account_version IS 'The version of the last account event applied.';
COMMENT ON COLUMN balances.updated_at IS 'The business time of the last account event applied.';
"""
# Every column, with its type, in the table's order.
COLUMNS = {
    "account_id": "text",
    "currency": "text",
    "customer_reference": "text",
    "receivable_minor": "bigint",
    "customer_credit_minor": "bigint",
    "invoiced_minor": "bigint",
    "subscriptions": "integer",
    "account_version": "bigint",
    "updated_at": "timestamptz",
    **dict.fromkeys(TOTALS, "bigint"),
}
# Event type -> the total its amount_minor adds to.
_TOTAL_OF_EVENT = {
    "PaymentReceived": "paid_minor",
    "EarlyPaymentDiscountGranted": "discounted_minor",
    "CreditNoteIssued": "credited_minor",
    "CreditRefunded": "refunded_minor",
    "InvoiceWrittenOff": "written_off_minor",
}


class Balances(Batched):
    """Applies account events to the balances table, inside the caller's transaction."""

    name = "balances"
    tables: tuple[str, ...] = ("balances",)
    schema = SCHEMA

    def apply_batch(self, cursor: psycopg.Cursor[Any], events: Sequence[Event]) -> None:
        """Apply decoded events to the rows of their accounts, read once and written once;
        events of other types only advance the account version."""
        accounts = {r["account_id"] for _, r in events if "account_id" in r}
        if not accounts:
            return  # plans' events: the catalogue is the plans read model's
        cursor.execute(
            sql.SQL("SELECT {} FROM balances WHERE account_id = ANY(%s)").format(
                sql.SQL(", ").join(map(sql.Identifier, COLUMNS))
            ),
            (list(accounts),),
        )
        rows = {row[0]: dict(zip(COLUMNS, row, strict=True)) for row in cursor.fetchall()}
        changed: set[str] = set()
        for event_type, record in events:
            if "account_id" in record and _apply(rows, event_type, record):
                changed.add(record["account_id"])
        upsert(
            cursor,
            "balances",
            COLUMNS,
            ("account_id",),
            (tuple(rows[account].values()) for account in sorted(changed)),
        )


def _apply(rows: dict[str, dict[str, Any]], event_type: str, record: dict[str, Any]) -> bool:
    """Apply one event to its account's row in `rows`; answer whether it changed it."""
    account = record["account_id"]
    row = rows.get(account)
    if event_type == "AccountOpened":
        if row is not None:
            return False
        rows[account] = dict.fromkeys(COLUMNS, 0) | {
            "account_id": account,
            "currency": record["currency"],
            "customer_reference": record["customer_reference"],
            "account_version": record["account_version"],
            "updated_at": record["occurred_at"],
        }
        return True
    if row is None or row["account_version"] >= record["account_version"]:
        return False
    postings = record.get("postings", [])
    row["receivable_minor"] += debit_balance("receivable", postings)
    row["customer_credit_minor"] -= debit_balance("customer_credit", postings)
    row["invoiced_minor"] += invoiced_of(event_type, record)
    for total, amount in totals_of(event_type, record).items():
        row[total] += amount
    row["subscriptions"] += 1 if event_type == "Subscribed" else 0
    row["account_version"] = record["account_version"]
    row["updated_at"] = record["occurred_at"]
    return True


def invoiced_of(event_type: str, record: dict[str, Any]) -> int:
    """What an event adds to the invoiced total: an invoice's amount, a plan's interest."""
    if event_type == "InvoiceIssued":
        return int(record["amount_minor"])
    if event_type == "DebtRenegotiated":
        return int(record["interest_minor"])
    return 0


def totals_of(event_type: str, record: dict[str, Any]) -> dict[str, int]:
    """The totals (of TOTALS) an event adds to, and by how much."""
    if event_type == "DebtRenegotiated":
        return {"forgiven_minor": int(record["forgiven_minor"])}
    total = _TOTAL_OF_EVENT.get(event_type)
    return {} if total is None else {total: int(record["amount_minor"])}


def account_ids(connection: psycopg.Connection[Any]) -> list[str]:
    """Every account the balances read model knows, in id order."""
    rows = connection.execute("SELECT account_id FROM balances ORDER BY account_id").fetchall()
    return [str(row[0]) for row in rows]
