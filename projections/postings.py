"""The postings read model: every double-entry posting of every money event, with its business time.

A posting is keyed by its event and its place among the event's postings, so an event
republished by the relay (at-least-once) is inserted once. The functions `trial_balance` and
`account_balances_as_of` answer the ledger's balances at any past business time from it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg

from projections.batch import Batched, Event, upsert

SCHEMA = """
CREATE TABLE IF NOT EXISTS postings (
    event_id text NOT NULL,
    leg integer NOT NULL,
    account_id text NOT NULL,
    event_type text NOT NULL,
    invoice_id text,
    ledger_account text NOT NULL,
    side text NOT NULL CHECK (side IN ('DEBIT', 'CREDIT')),
    amount_minor bigint NOT NULL CHECK (amount_minor > 0),
    signed_minor bigint GENERATED ALWAYS AS
        (CASE WHEN side = 'DEBIT' THEN amount_minor ELSE -amount_minor END) STORED,
    currency text NOT NULL,
    occurred_at timestamptz NOT NULL,
    account_version bigint NOT NULL,
    PRIMARY KEY (event_id, leg)
);
CREATE INDEX IF NOT EXISTS postings_by_account ON postings (account_id, occurred_at);
COMMENT ON TABLE postings IS
    'Every posting (one leg of a journal entry) of every money event; the debits and credits '
    'of one currency always sum to the same. See docs/read-models.md.';
COMMENT ON COLUMN postings.event_id IS 'The event that made the posting (event_id on billing.events).';
COMMENT ON COLUMN postings.leg IS 'The place of the posting among its event''s postings, from 0.';
COMMENT ON COLUMN postings.account_id IS 'The customer account of the event.';
COMMENT ON COLUMN postings.event_type IS 'The type of the event, e.g. InvoiceIssued, PaymentReceived.';
COMMENT ON COLUMN postings.invoice_id IS
    'The invoice all of the event''s postings concern, for events that name one: InvoiceIssued, '
    'CreditApplied, EarlyPaymentDiscountGranted, InvoiceWrittenOff, CreditNoteIssued.';
COMMENT ON COLUMN postings.ledger_account IS
    'receivable, revenue, customer_credit, discounts, write_off or cash:<payment method kind>.';
COMMENT ON COLUMN postings.side IS 'DEBIT or CREDIT.';
COMMENT ON COLUMN postings.amount_minor IS 'The amount, positive, in minor units of currency.';
COMMENT ON COLUMN postings.signed_minor IS 'The amount, debit-positive and credit-negative.';
COMMENT ON COLUMN postings.currency IS 'ISO 4217 code of the amount.';
COMMENT ON COLUMN postings.occurred_at IS 'The business time of the event.';
COMMENT ON COLUMN postings.account_version IS 'The account version of the event.';

CREATE OR REPLACE FUNCTION trial_balance(as_of timestamptz DEFAULT 'infinity')
RETURNS TABLE (currency text, ledger_account text, debit_minor bigint, credit_minor bigint,
               balance_minor bigint)
LANGUAGE sql STABLE AS $$
    SELECT p.currency, p.ledger_account,
           coalesce(sum(p.amount_minor) FILTER (WHERE p.side = 'DEBIT'), 0)::bigint,
           coalesce(sum(p.amount_minor) FILTER (WHERE p.side = 'CREDIT'), 0)::bigint,
           sum(p.signed_minor)::bigint
    FROM postings p WHERE p.occurred_at <= as_of
    GROUP BY p.currency, p.ledger_account ORDER BY p.currency, p.ledger_account
$$;
COMMENT ON FUNCTION trial_balance(timestamptz) IS
    'Debits, credits and debit-positive balance of each ledger account per currency, from the '
    'postings up to as_of (all by default); the balances of one currency sum to zero.';

CREATE OR REPLACE FUNCTION account_balances_as_of(as_of timestamptz)
RETURNS TABLE (account_id text, currency text, receivable_minor bigint,
               customer_credit_minor bigint, invoiced_minor bigint, paid_minor bigint,
               discounted_minor bigint, credited_minor bigint, refunded_minor bigint,
               written_off_minor bigint, forgiven_minor bigint)
LANGUAGE sql STABLE AS $$
    SELECT p.account_id, p.currency,
        coalesce(sum(p.signed_minor) FILTER (WHERE p.ledger_account = 'receivable'), 0)::bigint,
        (-coalesce(sum(p.signed_minor)
            FILTER (WHERE p.ledger_account = 'customer_credit'), 0))::bigint,
        coalesce(sum(p.amount_minor) FILTER (WHERE p.ledger_account = 'revenue'
            AND p.side = 'CREDIT' AND p.event_type IN ('InvoiceIssued', 'DebtRenegotiated')),
            0)::bigint,
        coalesce(sum(p.amount_minor) FILTER (WHERE p.event_type = 'PaymentReceived'
            AND p.side = 'DEBIT'), 0)::bigint,
        coalesce(sum(p.amount_minor) FILTER (WHERE p.ledger_account = 'discounts'), 0)::bigint,
        coalesce(sum(p.amount_minor) FILTER (WHERE p.event_type = 'CreditNoteIssued'
            AND p.side = 'CREDIT'), 0)::bigint,
        coalesce(sum(p.amount_minor) FILTER (WHERE p.event_type = 'CreditRefunded'
            AND p.side = 'DEBIT'), 0)::bigint,
        coalesce(sum(p.amount_minor) FILTER (WHERE p.event_type = 'InvoiceWrittenOff'
            AND p.side = 'DEBIT'), 0)::bigint,
        coalesce(sum(p.amount_minor) FILTER (WHERE p.event_type = 'DebtRenegotiated'
            AND p.ledger_account = 'write_off'), 0)::bigint
    FROM postings p WHERE p.occurred_at <= as_of
    GROUP BY p.account_id, p.currency
$$;
COMMENT ON FUNCTION account_balances_as_of(timestamptz) IS
    'The balances columns of each account with a posting up to as_of, as they stood at as_of, '
    'computed from the postings.';
"""
# Events whose postings all concern the one invoice they name.
ONE_INVOICE_EVENTS = frozenset(
    {
        "InvoiceIssued",
        "CreditApplied",
        "EarlyPaymentDiscountGranted",
        "InvoiceWrittenOff",
        "CreditNoteIssued",
    }
)
COLUMNS = {
    "event_id": "text",
    "leg": "integer",
    "account_id": "text",
    "event_type": "text",
    "invoice_id": "text",
    "ledger_account": "text",
    "side": "text",
    "amount_minor": "bigint",
    "currency": "text",
    "occurred_at": "timestamptz",
    "account_version": "bigint",
}


class Postings(Batched):
    """Inserts the postings of each money event into the postings table."""

    name = "postings"
    tables: tuple[str, ...] = ("postings",)
    schema = SCHEMA

    def apply_batch(self, cursor: psycopg.Cursor[Any], events: Sequence[Event]) -> None:
        """Insert the events' postings (those not inserted before) in one statement."""
        rows = (row for event_type, record in events for row in _rows(event_type, record))
        upsert(cursor, "postings", COLUMNS, ("event_id", "leg"), rows, replace=False)


def _rows(event_type: str, record: dict[str, Any]) -> list[tuple[Any, ...]]:
    """The postings rows of one event (none for an event without postings)."""
    return [
        (
            record["event_id"],
            leg,
            record["account_id"],
            event_type,
            record.get("invoice_id") if event_type in ONE_INVOICE_EVENTS else None,
            posting["ledger_account"],
            posting["side"],
            posting["amount_minor"],
            record["currency"],
            record["occurred_at"],
            record["account_version"],
        )
        for leg, posting in enumerate(record.get("postings") or ())
    ]
