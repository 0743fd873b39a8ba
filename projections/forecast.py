"""The cash-flow forecast's read model: what is owed, when it is due, and how it was settled.

The projection stores state only: receivable items (invoices and renegotiation installments)
with their due dates, every settlement of an item with its business time, and the payment
method kind an account is charged with. The forecast itself (scheduled and expected inflow,
the collection probabilities, the band and the accuracy of past days) is computed as of a
time by `projections/forecast_model.py` from these rows and `subscription_versions`, so that any
past day's forecast is reproduced exactly from what was known then.

Rows are keyed by account version (settlements) or keep the last account version applied
(items, accounts), so an event republished by the relay is applied once.
"""

from __future__ import annotations

from typing import Any

import psycopg

from projections.batch import EachEvent

SCHEMA = """
CREATE TABLE IF NOT EXISTS forecast_items (
    account_id text NOT NULL,
    item_id text NOT NULL,
    currency text NOT NULL,
    kind text NOT NULL,
    issued_at timestamptz NOT NULL,
    amount_minor bigint NOT NULL,
    due_at timestamptz NOT NULL,
    accelerated_at timestamptz,
    accelerated_due_at timestamptz,
    payment_method_kind text NOT NULL,
    account_version bigint NOT NULL,
    PRIMARY KEY (account_id, item_id)
);
COMMENT ON TABLE forecast_items IS
    'Every receivable item: an invoice or a renegotiation installment, with its amount and due date.';
COMMENT ON COLUMN forecast_items.kind IS 'invoice (InvoiceIssued) or installment (DebtRenegotiated schedule).';
COMMENT ON COLUMN forecast_items.issued_at IS 'Business time the item was issued: from then on it is known.';
COMMENT ON COLUMN forecast_items.amount_minor IS 'What the item asks for, in minor units of currency.';
COMMENT ON COLUMN forecast_items.due_at IS 'Its due date as issued.';
COMMENT ON COLUMN forecast_items.accelerated_at IS
    'When a renegotiation default made the installment due at once (RenegotiationDefaulted).';
COMMENT ON COLUMN forecast_items.accelerated_due_at IS 'The due date from accelerated_at on.';
COMMENT ON COLUMN forecast_items.payment_method_kind IS
    'Kind of the last charge attempt of the item, else of the account''s default method at issue; none without one.';
COMMENT ON COLUMN forecast_items.account_version IS 'The last account event applied to the row.';

CREATE TABLE IF NOT EXISTS forecast_settlements (
    account_id text NOT NULL,
    account_version bigint NOT NULL,
    item_id text NOT NULL,
    how text NOT NULL,
    settled_at timestamptz NOT NULL,
    amount_minor bigint NOT NULL,
    PRIMARY KEY (account_id, account_version, item_id, how)
);
CREATE INDEX IF NOT EXISTS forecast_settlements_by_item
    ON forecast_settlements (account_id, item_id);
COMMENT ON TABLE forecast_settlements IS
    'Every reduction of what an item owes, with its business time: the history of its open balance.';
COMMENT ON COLUMN forecast_settlements.how IS
    'cash (PaymentReceived allocation), credit (CreditApplied), discount (EarlyPaymentDiscountGranted), '
    'write_off (InvoiceWrittenOff) or renegotiated (taken over by a DebtRenegotiated plan). Only cash is collected.';
COMMENT ON COLUMN forecast_settlements.amount_minor IS 'The amount the item owes less from settled_at on, in minor units.';

CREATE TABLE IF NOT EXISTS forecast_payment_methods (
    account_id text NOT NULL,
    payment_method_id text NOT NULL,
    kind text NOT NULL,
    PRIMARY KEY (account_id, payment_method_id)
);
COMMENT ON TABLE forecast_payment_methods IS 'The kind of every payment method put on file (PaymentMethodAdded).';

CREATE TABLE IF NOT EXISTS forecast_accounts (
    account_id text PRIMARY KEY,
    currency text NOT NULL,
    default_method_kind text NOT NULL,
    account_version bigint NOT NULL
);
COMMENT ON TABLE forecast_accounts IS 'Each account''s currency and how it is charged now.';
COMMENT ON COLUMN forecast_accounts.default_method_kind IS
    'Kind of the default payment method (DefaultPaymentMethodSet); none without one. Future invoices are forecast with it.';
COMMENT ON COLUMN forecast_accounts.account_id IS 'The account (AccountOpened).';
COMMENT ON COLUMN forecast_accounts.currency IS 'ISO 4217 code of the account''s amounts (AccountOpened).';
COMMENT ON COLUMN forecast_accounts.account_version IS 'The last account event applied to the row.';
COMMENT ON COLUMN forecast_items.account_id IS 'The account the item is owed by.';
COMMENT ON COLUMN forecast_items.item_id IS 'The invoice id, or <plan_id>/<k> of a renegotiation installment.';
COMMENT ON COLUMN forecast_items.currency IS 'ISO 4217 code of amount_minor.';
COMMENT ON COLUMN forecast_settlements.account_id IS 'The account of the settling event.';
COMMENT ON COLUMN forecast_settlements.account_version IS 'The settling event (its account version).';
COMMENT ON COLUMN forecast_settlements.item_id IS 'The item it settles (forecast_items.item_id).';
COMMENT ON COLUMN forecast_settlements.settled_at IS 'Business time of the settling event.';
COMMENT ON COLUMN forecast_payment_methods.account_id IS 'The account the method is on file for.';
COMMENT ON COLUMN forecast_payment_methods.payment_method_id IS 'The method (PaymentMethodAdded).';
COMMENT ON COLUMN forecast_payment_methods.kind IS 'Its kind, e.g. credit_card or bank_transfer.';
"""

NO_METHOD = "none"
_SETTLEMENT_SQL = (
    "INSERT INTO forecast_settlements (account_id, account_version, item_id, how, settled_at, "
    "amount_minor) VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING"
)


class Forecast(EachEvent):
    """Applies account events to the forecast's tables, inside the caller's transaction."""

    name = "forecast"
    tables: tuple[str, ...] = (
        "forecast_items",
        "forecast_settlements",
        "forecast_payment_methods",
        "forecast_accounts",
    )
    schema = SCHEMA

    def apply(self, cursor: psycopg.Cursor[Any], event_type: str, record: dict[str, Any]) -> None:
        """Apply one decoded event; events that change no item, settlement or method are ignored."""
        handler = _HANDLERS.get(event_type)
        if handler is not None and "account_id" in record:
            handler(cursor, record)


def _opened(cursor: psycopg.Cursor[Any], record: dict[str, Any]) -> None:
    cursor.execute(
        "INSERT INTO forecast_accounts VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING",
        (record["account_id"], record["currency"], NO_METHOD, record["account_version"]),
    )


def _method_added(cursor: psycopg.Cursor[Any], record: dict[str, Any]) -> None:
    cursor.execute(
        "INSERT INTO forecast_payment_methods VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
        (record["account_id"], record["payment_method_id"], record["kind"]),
    )


def _default_set(cursor: psycopg.Cursor[Any], record: dict[str, Any]) -> None:
    cursor.execute(
        "UPDATE forecast_accounts SET default_method_kind = COALESCE(("
        "SELECT kind FROM forecast_payment_methods WHERE account_id = %s AND payment_method_id = %s"
        "), %s), account_version = %s WHERE account_id = %s AND account_version < %s",
        (
            record["account_id"],
            record["payment_method_id"],
            NO_METHOD,
            record["account_version"],
            record["account_id"],
            record["account_version"],
        ),
    )


def _insert_item(
    cursor: psycopg.Cursor[Any], record: dict[str, Any], item: tuple[str, str, int, Any]
) -> None:
    item_id, kind, amount_minor, due_at = item
    cursor.execute(
        "INSERT INTO forecast_items (account_id, item_id, currency, kind, issued_at, amount_minor, "
        "due_at, payment_method_kind, account_version) SELECT %s, %s, %s, %s, %s, %s, %s, "
        "COALESCE((SELECT default_method_kind FROM forecast_accounts WHERE account_id = %s), %s), %s "
        "ON CONFLICT DO NOTHING",
        (
            record["account_id"],
            item_id,
            record["currency"],
            kind,
            record["occurred_at"],
            amount_minor,
            due_at,
            record["account_id"],
            NO_METHOD,
            record["account_version"],
        ),
    )


def _invoice_issued(cursor: psycopg.Cursor[Any], record: dict[str, Any]) -> None:
    _insert_item(
        cursor, record, (record["invoice_id"], "invoice", record["amount_minor"], record["due_at"])
    )


def _renegotiated(cursor: psycopg.Cursor[Any], record: dict[str, Any]) -> None:
    for debt in record["original_debts"]:
        _settle(cursor, record, debt["invoice_id"], "renegotiated", debt["amount_minor"])
    for installment in record["schedule"]:
        item = (installment["invoice_id"], "installment", installment["amount_minor"])
        _insert_item(cursor, record, (*item, installment["due_at"]))


def _settle(
    cursor: psycopg.Cursor[Any], record: dict[str, Any], item_id: str, how: str, amount: int
) -> None:
    cursor.execute(
        _SETTLEMENT_SQL,
        (
            record["account_id"],
            record["account_version"],
            item_id,
            how,
            record["occurred_at"],
            amount,
        ),
    )


def _payment(cursor: psycopg.Cursor[Any], record: dict[str, Any]) -> None:
    for allocation in record["allocations"]:
        _settle(cursor, record, allocation["invoice_id"], "cash", allocation["amount_minor"])


def _by_event(how: str) -> Any:
    def settle(cursor: psycopg.Cursor[Any], record: dict[str, Any]) -> None:
        _settle(cursor, record, record["invoice_id"], how, record["amount_minor"])

    return settle


def _charge_attempt(cursor: psycopg.Cursor[Any], record: dict[str, Any]) -> None:
    _update_item(cursor, record, "payment_method_kind = %s", (record["payment_method_kind"],))


def _defaulted(cursor: psycopg.Cursor[Any], record: dict[str, Any]) -> None:
    for item_id in record["accelerated_invoice_ids"]:
        assignments = "accelerated_at = %s, accelerated_due_at = %s"
        values = (record["occurred_at"], record["due_at"])
        _update_item(cursor, record | {"invoice_id": item_id}, assignments, values)


def _update_item(
    cursor: psycopg.Cursor[Any], record: dict[str, Any], assignments: str, values: tuple[Any, ...]
) -> None:
    cursor.execute(
        f"UPDATE forecast_items SET {assignments}, account_version = %s "
        "WHERE account_id = %s AND item_id = %s AND account_version < %s",
        (
            *values,
            record["account_version"],
            record["account_id"],
            record["invoice_id"],
            record["account_version"],
        ),
    )


_HANDLERS = {
    "AccountOpened": _opened,
    "PaymentMethodAdded": _method_added,
    "DefaultPaymentMethodSet": _default_set,
    "InvoiceIssued": _invoice_issued,
    "DebtRenegotiated": _renegotiated,
    "PaymentReceived": _payment,
    "CreditApplied": _by_event("credit"),
    "EarlyPaymentDiscountGranted": _by_event("discount"),
    "InvoiceWrittenOff": _by_event("write_off"),
    "ChargeRequested": _charge_attempt,
    "ChargeFailed": _charge_attempt,
    "RenegotiationDefaulted": _defaulted,
}
