"""`ledger audit reconcile`, the database half: the trial balance of the postings, and every read
model against the read models built again from the events.

The read models are built again by the projections' own code (runtime.rebuild's loop, the
relay's encoding and the projector's decoding) into a schema of their own, inside the
snapshot's transaction, which is rolled back: nothing is left behind. Each table is then
compared with the live one row by row, by primary key, column by column.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from eventsourcing.persistence import Notification
from psycopg import sql

from audit.history import History
from audit.store import EVENTS_TABLE
from ledger.application import BillingLedger
from projections.projector import Projection, catch_up
from runtime.rebuild import apply_notifications
from wire.codec import AvroCodec

PAGE = 1000


@dataclass(frozen=True)
class Difference:
    """One thing that does not reconcile: which check, where, and what differs."""

    check: str
    where: str
    detail: str

    def describe(self) -> str:
        """One line for the auditor."""
        return f"{self.check}: {self.where}: {self.detail}"


def trial_balance(history: History) -> tuple[list[dict[str, Any]], list[Difference]]:
    """Debits and credits of every ledger account per currency; what does not balance.

    Debits must equal credits per currency overall and per customer account.
    """
    currency_of: dict[str, str] = {}
    lines: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    accounts: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for event in history.account_events(history.last_position):
        record = event.record
        if event.event_type == "AccountOpened":
            currency_of[record["account_id"]] = record["currency"]
        currency = currency_of.get(record["account_id"], "?")
        for posting in record.get("postings") or ():
            side = 0 if posting["side"] == "DEBIT" else 1
            lines[(currency, posting["ledger_account"])][side] += posting["amount_minor"]
            accounts[(currency, record["account_id"])][side] += posting["amount_minor"]
    rows = [
        {
            "currency": currency,
            "ledger_account": name,
            "debit_minor": debit,
            "credit_minor": credit,
            "balance_minor": debit - credit,
        }
        for (currency, name), (debit, credit) in sorted(lines.items())
    ]
    differences = [
        Difference("trial balance", f"account {account} ({currency})", _unbalanced(sides))
        for (currency, account), sides in sorted(accounts.items())
        if sides[0] != sides[1]
    ]
    for currency in sorted({currency for currency, _ in lines}):
        debit = sum(sides[0] for (c, _), sides in lines.items() if c == currency)
        credit = sum(sides[1] for (c, _), sides in lines.items() if c == currency)
        if debit != credit:
            differences.append(
                Difference("trial balance", f"currency {currency}", _unbalanced([debit, credit]))
            )
    return rows, differences


def _unbalanced(sides: Sequence[int]) -> str:
    return f"debits {sides[0]} != credits {sides[1]} (minor units)"


def read_model_differences(
    connection: psycopg.Connection[Any], models: Sequence[Projection]
) -> list[Difference]:
    """Every row and column of `models`' tables that differs from the events' replay.

    Runs in the caller's transaction, in a savepoint rolled back at the end.
    """
    row = connection.execute("SELECT current_schema()::text").fetchone()
    live = str(row[0]) if row else "public"
    scratch = f"audit_reconcile_{uuid.uuid4().hex[:8]}"
    with connection.transaction(force_rollback=True):
        connection.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(scratch)))
        connection.execute(sql.SQL("SET LOCAL search_path TO {}").format(sql.Identifier(scratch)))
        for model in models:
            connection.execute(model.schema)
        mapper = BillingLedger(env={"PERSISTENCE_MODULE": "eventsourcing.popo"}).mapper
        codec = AvroCodec()
        with connection.cursor() as cursor:
            for page in _pages(connection, live):
                apply_notifications(cursor, models, mapper, page, codec)
            catch_up(cursor, models)
        differences = []
        for table in (t for model in models for t in model.tables):
            differences += _compare_table(connection, live, scratch, table)
        connection.execute(sql.SQL("SET LOCAL search_path TO {}").format(sql.Identifier(live)))
    return differences


def _pages(connection: psycopg.Connection[Any], schema: str) -> Iterator[list[Notification]]:
    statement = sql.SQL(
        "SELECT notification_id, originator_id, originator_version, topic, state FROM {} "
        "WHERE notification_id > %s ORDER BY notification_id LIMIT %s"
    ).format(sql.Identifier(schema, EVENTS_TABLE))
    after = 0
    while True:
        rows = connection.execute(statement, (after, PAGE)).fetchall()
        if not rows:
            return
        yield [
            Notification(
                id=row[0],
                originator_id=row[1],
                originator_version=row[2],
                topic=row[3],
                state=bytes(row[4]),
            )
            for row in rows
        ]
        after = rows[-1][0]


def _compare_table(
    connection: psycopg.Connection[Any], live: str, scratch: str, table: str
) -> list[Difference]:
    where = f"read model {table}"
    exists = connection.execute(
        "SELECT to_regclass(format('%%I.%%I', %s::text, %s::text)) IS NOT NULL", (live, table)
    ).fetchone()
    if not exists or not exists[0]:
        return [Difference(where, "the table", "is missing from the read models")]
    key = _key_columns(connection, scratch, table)
    ours, theirs = (_rows(connection, schema, table, key) for schema in (live, scratch))
    differences = []
    for row_key in sorted(ours.keys() | theirs.keys(), key=repr):
        name = ", ".join(f"{k}={v}" for k, v in zip(key, row_key, strict=True))
        if row_key not in theirs:
            differences.append(Difference(where, name, "row in the read model, not in the replay"))
        elif row_key not in ours:
            differences.append(
                Difference(where, name, "row in the replay, missing from the read model")
            )
        else:
            differences += [
                Difference(
                    where,
                    name,
                    f"column {column}: read model {ours[row_key].get(column)!r}, replay {value!r}",
                )
                for column, value in theirs[row_key].items()
                if ours[row_key].get(column) != value
            ]
    return differences


def _key_columns(connection: psycopg.Connection[Any], schema: str, table: str) -> list[str]:
    """The primary key's columns (the first unique constraint's if none; else every column)."""
    rows = connection.execute(
        "SELECT c.conname, a.attname FROM pg_constraint c "
        "CROSS JOIN LATERAL unnest(c.conkey) WITH ORDINALITY k(attnum, n) "
        "JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum "
        "WHERE c.conrelid = format('%%I.%%I', %s::text, %s::text)::regclass "
        "AND c.contype IN ('p', 'u') ORDER BY c.contype = 'p' DESC, c.conname, k.n",
        (schema, table),
    ).fetchall()
    if rows:
        return [str(name) for constraint, name in rows if constraint == rows[0][0]]
    columns = connection.execute(
        "SELECT attname FROM pg_attribute "
        "WHERE attrelid = format('%%I.%%I', %s::text, %s::text)::regclass "
        "AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
        (schema, table),
    ).fetchall()
    return [str(r[0]) for r in columns]


def _rows(
    connection: psycopg.Connection[Any], schema: str, table: str, key: list[str]
) -> dict[tuple[Any, ...], dict[str, Any]]:
    statement = sql.SQL("SELECT to_jsonb(t) FROM {} t").format(sql.Identifier(schema, table))
    rows = [row[0] for row in connection.execute(statement).fetchall()]
    return {tuple(row.get(k) for k in key): row for row in rows}
