"""The delinquency read model's per-invoice rows and movements, applied in memory for a batch.

A batch reads its accounts' `delinquency_invoices` rows once, applies each event to them in
the order and under the version checks of one statement per change, and writes the rows it
changed and the movements it made in one statement each (projections/delinquency.py).
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from projections.batch import upsert
from projections.receivable import InvoiceChange, invoice_changes

# Every column, with its type, in the table's order.
COLUMNS = {
    "account_id": "text",
    "invoice_id": "text",
    "currency": "text",
    "renegotiation_plan_id": "text",
    "renegotiation_defaulted": "boolean",
    "due_at": "timestamptz",
    "open_minor": "bigint",
    "dunning_stage": "integer",
    "last_reminder": "text",
    "last_reminder_at": "timestamptz",
    "failed_attempts": "integer",
    "next_retry_at": "timestamptz",
    "final_action_at": "timestamptz",
    "closed_at": "timestamptz",
    "closed_by": "text",
    "account_version": "bigint",
    "updated_at": "timestamptz",
}
MOVEMENT_COLUMNS = {
    "event_id": "text",
    "account_id": "text",
    "invoice_id": "text",
    "currency": "text",
    "cause": "text",
    "change_minor": "bigint",
    "due_at": "timestamptz",
    "occurred_at": "timestamptz",
    "account_version": "bigint",
}
FACT_COLUMNS = {
    "account_id": "text",
    "invoice_id": "text",
    "account_version": "bigint",
    "occurred_at": "timestamptz",
    "dunning_stage": "integer",
    "failed_attempts": "integer",
    "renegotiation_defaulted": "boolean",
}
Key = tuple[str, str]  # (account id, invoice id)


class InvoiceRows:
    """A batch's delinquency_invoices rows and receivable_movements, until written."""

    def __init__(self, cursor: psycopg.Cursor[Any], accounts: list[str]) -> None:
        cursor.execute(
            sql.SQL("SELECT {} FROM delinquency_invoices WHERE account_id = ANY(%s)").format(
                sql.SQL(", ").join(map(sql.Identifier, COLUMNS))
            ),
            (accounts,),
        )
        self.rows = {row[:2]: dict(zip(COLUMNS, row, strict=True)) for row in cursor.fetchall()}
        self.changed: set[Key] = set()
        self.movements: list[tuple[Any, ...]] = []
        self.facts: list[tuple[Any, ...]] = []  # delinquency_invoice_facts rows

    def apply(self, event_type: str, record: dict[str, Any]) -> None:
        """Apply one account event's changes of open balances, then its facts about invoices."""
        for change in invoice_changes(event_type, record):
            self._change(record, change)
        facts = _FACTS.get(event_type)
        if facts is not None:
            for key in self._targets(event_type, record):
                row = self.rows[key]
                facts(row, record)
                self.changed.add(key)
                if event_type in DATED_FACTS:
                    self.facts.append(
                        (
                            *key,
                            record["account_version"],
                            record["occurred_at"],
                            row["dunning_stage"],
                            row["failed_attempts"],
                            row["renegotiation_defaulted"],
                        )
                    )

    def write(self, cursor: psycopg.Cursor[Any]) -> None:
        """Write the movements and the rows changed, one statement each."""
        key = ("event_id", "invoice_id")
        upsert(cursor, "receivable_movements", MOVEMENT_COLUMNS, key, self.movements, replace=False)
        fact_key = ("account_id", "invoice_id", "account_version")
        upsert(
            cursor, "delinquency_invoice_facts", FACT_COLUMNS, fact_key, self.facts, replace=False
        )
        rows = (tuple(self.rows[key].values()) for key in sorted(self.changed))
        upsert(cursor, "delinquency_invoices", COLUMNS, ("account_id", "invoice_id"), rows)

    def _change(self, record: dict[str, Any], change: InvoiceChange) -> None:
        account, version, at = (
            record["account_id"],
            record["account_version"],
            record["occurred_at"],
        )
        self.movements.append(
            (
                record["event_id"],
                account,
                change.invoice_id,
                record.get("currency"),
                change.cause,
                change.change_minor,
                change.due_at,
                at,
                version,
            )
        )
        key = (account, change.invoice_id)
        row = self.rows.get(key)
        if change.cause in ("issued", "installment"):
            if row is None:
                plan = record.get("plan_id") if change.cause == "installment" else None
                self.rows[key] = _new_row(record, change, plan)
                self.changed.add(key)
            return
        if row is None or row["account_version"] >= version:
            return
        if change.change_minor < 0 and row["open_minor"] + change.change_minor <= 0:
            row["closed_at"], row["closed_by"] = at, change.cause
        row["open_minor"] += change.change_minor
        if change.due_at is not None:
            row["due_at"] = change.due_at
        row["account_version"], row["updated_at"] = version, at
        self.changed.add(key)

    def _targets(self, event_type: str, record: dict[str, Any]) -> list[Key]:
        """The rows an event's facts apply to: not changed by a later (or this) event."""
        account, version = record["account_id"], record["account_version"]
        if event_type == "RenegotiationDefaulted":
            keys = [
                key
                for key, row in self.rows.items()
                if key[0] == account and row["renegotiation_plan_id"] == record["plan_id"]
            ]
        else:
            keys = [(account, record["invoice_id"])]
        return [
            key
            for key in sorted(keys)
            if key in self.rows and self.rows[key]["account_version"] < version
        ]


def _new_row(record: dict[str, Any], change: InvoiceChange, plan: str | None) -> dict[str, Any]:
    values = {
        "account_id": record["account_id"],
        "invoice_id": change.invoice_id,
        "currency": record.get("currency"),
        "renegotiation_plan_id": plan,
        "renegotiation_defaulted": False,
        "due_at": change.due_at,
        "open_minor": change.change_minor,
        "dunning_stage": 0,
        "failed_attempts": 0,
        "account_version": record["account_version"],
        "updated_at": record["occurred_at"],
    }
    return {column: values.get(column) for column in COLUMNS}


def _reminded(row: dict[str, Any], record: dict[str, Any]) -> None:
    stage = str(record["stage"])
    number = int(stage.removeprefix("stage_")) if stage.startswith("stage_") else 0
    row["last_reminder"], row["last_reminder_at"] = stage, record["occurred_at"]
    row["dunning_stage"] = max(row["dunning_stage"], number)


def _charge_failed(row: dict[str, Any], record: dict[str, Any]) -> None:
    row["failed_attempts"] = record["attempt"]


def _retry_scheduled(row: dict[str, Any], record: dict[str, Any]) -> None:
    row["next_retry_at"] = record["retry_at"]


def _retry_due(row: dict[str, Any], record: dict[str, Any]) -> None:
    row["next_retry_at"] = None


def _defaulted(row: dict[str, Any], record: dict[str, Any]) -> None:
    row["renegotiation_defaulted"] = True


def _final_action(row: dict[str, Any], record: dict[str, Any]) -> None:
    row["final_action_at"] = record["occurred_at"]


# The facts `delinquency_as_of` counts as of a past time: each change is kept, dated.
DATED_FACTS = frozenset({"PaymentReminderDue", "ChargeFailed", "RenegotiationDefaulted"})
# Event type -> what it sets on the invoice rows it names (besides their open balances).
_FACTS = {
    "PaymentReminderDue": _reminded,
    "ChargeFailed": _charge_failed,
    "ChargeRetryScheduled": _retry_scheduled,
    "ChargeRetryDue": _retry_due,
    "RenegotiationDefaulted": _defaulted,
    "DunningFinalAction": _final_action,
}
