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

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from projections.batch import Batched, Event, newer_row, select_rows, upsert

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
ITEM_COLUMNS = {
    "account_id": "text",
    "item_id": "text",
    "currency": "text",
    "kind": "text",
    "issued_at": "timestamptz",
    "amount_minor": "bigint",
    "due_at": "timestamptz",
    "accelerated_at": "timestamptz",
    "accelerated_due_at": "timestamptz",
    "payment_method_kind": "text",
    "account_version": "bigint",
}
SETTLEMENT_COLUMNS = {
    "account_id": "text",
    "account_version": "bigint",
    "item_id": "text",
    "how": "text",
    "settled_at": "timestamptz",
    "amount_minor": "bigint",
}
METHOD_COLUMNS = {"account_id": "text", "payment_method_id": "text", "kind": "text"}
ACCOUNT_COLUMNS = {
    "account_id": "text",
    "currency": "text",
    "default_method_kind": "text",
    "account_version": "bigint",
}
# Events naming items by their invoice_id (inserted, or changed if there).
_NAME_AN_ITEM = frozenset(("InvoiceIssued", "ChargeRequested", "ChargeFailed"))


@dataclass
class ForecastRows:
    """A batch's rows of the forecast tables: read once, changed in memory in the events'
    order, the changed ones written once (what one statement per event would leave)."""

    accounts: dict[str, dict[str, Any]]
    methods: dict[tuple[str, str], str]
    items: dict[tuple[str, str], dict[str, Any]]
    settlements: dict[tuple[str, int, str, str], Any] = field(default_factory=dict)
    changed_accounts: set[str] = field(default_factory=set)
    new_methods: set[tuple[str, str]] = field(default_factory=set)
    changed_items: set[tuple[str, str]] = field(default_factory=set)

    def write(self, cursor: psycopg.Cursor[Any]) -> None:
        """One statement per table; methods and settlements are never changed once stored."""
        accounts = (tuple(self.accounts[a].values()) for a in sorted(self.changed_accounts))
        upsert(cursor, "forecast_accounts", ACCOUNT_COLUMNS, ("account_id",), accounts)
        methods = ((*key, self.methods[key]) for key in sorted(self.new_methods))
        upsert(
            cursor,
            "forecast_payment_methods",
            METHOD_COLUMNS,
            tuple(METHOD_COLUMNS)[:2],
            methods,
            replace=False,
        )
        items = (tuple(self.items[key].values()) for key in sorted(self.changed_items))
        upsert(cursor, "forecast_items", ITEM_COLUMNS, tuple(ITEM_COLUMNS)[:2], items)
        settlements = ((*key, *self.settlements[key]) for key in sorted(self.settlements))
        upsert(
            cursor,
            "forecast_settlements",
            SETTLEMENT_COLUMNS,
            tuple(SETTLEMENT_COLUMNS)[:4],
            settlements,
            replace=False,
        )

    def default_kind(self, account_id: str) -> str:
        """The account's default method kind as it stands now; none for an unknown account."""
        account = self.accounts.get(account_id)
        return account["default_method_kind"] if account is not None else NO_METHOD

    def item(self, record: dict[str, Any], item_id: str) -> dict[str, Any] | None:
        """The item's row if the event is newer than it, now at the event's version."""
        key = (record["account_id"], item_id)
        row = newer_row(self.items, key, record)
        if row is not None:
            self.changed_items.add(key)
        return row


class Forecast(Batched):
    """Applies account events to the forecast's tables, inside the caller's transaction."""

    name = "forecast"
    tables: tuple[str, ...] = (
        "forecast_items",
        "forecast_settlements",
        "forecast_payment_methods",
        "forecast_accounts",
    )
    schema = SCHEMA

    def apply_batch(self, cursor: psycopg.Cursor[Any], events: Sequence[Event]) -> None:
        """Apply decoded events to the rows they name, read once and written once; events that
        change no item, settlement or method are ignored."""
        events = [(t, r) for t, r in events if t in _HANDLERS and "account_id" in r]
        if not events:
            return
        accounts = sorted({r["account_id"] for _, r in events})
        rows = ForecastRows(
            _accounts(cursor, accounts), _methods(cursor, accounts), _items(cursor, events)
        )
        for event_type, record in events:
            _HANDLERS[event_type](rows, record)
        rows.write(cursor)


def _accounts(cursor: psycopg.Cursor[Any], accounts: list[str]) -> dict[str, dict[str, Any]]:
    names = sql.SQL(", ").join(map(sql.Identifier, ACCOUNT_COLUMNS))
    cursor.execute(
        sql.SQL("SELECT {} FROM forecast_accounts WHERE account_id = ANY(%s)").format(names),
        (accounts,),
    )
    return {row[0]: dict(zip(ACCOUNT_COLUMNS, row, strict=True)) for row in cursor.fetchall()}


def _methods(cursor: psycopg.Cursor[Any], accounts: list[str]) -> dict[tuple[str, str], str]:
    cursor.execute(
        "SELECT account_id, payment_method_id, kind FROM forecast_payment_methods "
        "WHERE account_id = ANY(%s)",
        (accounts,),
    )
    return {(row[0], row[1]): row[2] for row in cursor.fetchall()}


def _items(cursor: psycopg.Cursor[Any], events: Sequence[Event]) -> dict[tuple[str, str], Any]:
    """The stored item rows the events name."""
    keys = {(r["account_id"], r["invoice_id"]) for t, r in events if t in _NAME_AN_ITEM}
    for event_type, record in events:
        if event_type == "DebtRenegotiated":
            keys |= {(record["account_id"], i["invoice_id"]) for i in record["schedule"]}
        elif event_type == "RenegotiationDefaulted":
            keys |= {(record["account_id"], i) for i in record["accelerated_invoice_ids"]}
    return select_rows(cursor, "forecast_items", ITEM_COLUMNS, "item_id", keys)


def _opened(rows: ForecastRows, record: dict[str, Any]) -> None:
    account_id = record["account_id"]
    if account_id not in rows.accounts:
        rows.accounts[account_id] = {
            "account_id": account_id,
            "currency": record["currency"],
            "default_method_kind": NO_METHOD,
            "account_version": record["account_version"],
        }
        rows.changed_accounts.add(account_id)


def _method_added(rows: ForecastRows, record: dict[str, Any]) -> None:
    key = (record["account_id"], record["payment_method_id"])
    if key not in rows.methods:
        rows.methods[key] = record["kind"]
        rows.new_methods.add(key)


def _default_set(rows: ForecastRows, record: dict[str, Any]) -> None:
    account = newer_row(rows.accounts, record["account_id"], record)
    if account is not None:
        key = (record["account_id"], record["payment_method_id"])
        account["default_method_kind"] = rows.methods.get(key, NO_METHOD)
        rows.changed_accounts.add(record["account_id"])


def _insert_item(
    rows: ForecastRows, record: dict[str, Any], item: tuple[str, str, int, Any]
) -> None:
    item_id, kind, amount_minor, due_at = item
    key = (record["account_id"], item_id)
    if key in rows.items:
        return
    rows.items[key] = dict.fromkeys(ITEM_COLUMNS) | {
        "account_id": record["account_id"],
        "item_id": item_id,
        "currency": record["currency"],
        "kind": kind,
        "issued_at": record["occurred_at"],
        "amount_minor": amount_minor,
        "due_at": due_at,
        "payment_method_kind": rows.default_kind(record["account_id"]),
        "account_version": record["account_version"],
    }
    rows.changed_items.add(key)


def _invoice_issued(rows: ForecastRows, record: dict[str, Any]) -> None:
    _insert_item(
        rows, record, (record["invoice_id"], "invoice", record["amount_minor"], record["due_at"])
    )


def _renegotiated(rows: ForecastRows, record: dict[str, Any]) -> None:
    for debt in record["original_debts"]:
        _settle(rows, record, debt["invoice_id"], "renegotiated", debt["amount_minor"])
    for installment in record["schedule"]:
        item = (installment["invoice_id"], "installment", installment["amount_minor"])
        _insert_item(rows, record, (*item, installment["due_at"]))


def _settle(
    rows: ForecastRows, record: dict[str, Any], item_id: str, how: str, amount: int
) -> None:
    key = (record["account_id"], record["account_version"], item_id, how)
    rows.settlements.setdefault(key, (record["occurred_at"], amount))  # the first one stays


def _payment(rows: ForecastRows, record: dict[str, Any]) -> None:
    for allocation in record["allocations"]:
        _settle(rows, record, allocation["invoice_id"], "cash", allocation["amount_minor"])


def _by_event(how: str) -> Any:
    def settle(rows: ForecastRows, record: dict[str, Any]) -> None:
        _settle(rows, record, record["invoice_id"], how, record["amount_minor"])

    return settle


def _charge_attempt(rows: ForecastRows, record: dict[str, Any]) -> None:
    item = rows.item(record, record["invoice_id"])
    if item is not None:
        item["payment_method_kind"] = record["payment_method_kind"]


def _defaulted(rows: ForecastRows, record: dict[str, Any]) -> None:
    for item_id in record["accelerated_invoice_ids"]:
        item = rows.item(record, item_id)
        if item is not None:
            item["accelerated_at"] = record["occurred_at"]
            item["accelerated_due_at"] = record["due_at"]


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
