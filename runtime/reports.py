"""`ledger report`: the read models as tables for people and JSON or CSV for scripts.

Reports read the read-model tables and functions only. Each kind is one entry of REPORTS: a
function from a connection and the options to a `Report`; runtime/report_output.py prints it.
Times count "as of" a business time: --as-of, or else the latest business time the read
models have seen (the last account event applied), never the wall clock.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from projections.dunning_schedule import OpenInvoice, Policy, next_action


@dataclass(frozen=True)
class Options:
    """What to report on: as of when, and which account or currency only."""

    as_of: datetime | None = None
    account: str | None = None
    currency: str | None = None


@dataclass(frozen=True)
class Report:
    """Rows under named columns; columns ending in `_minor` are amounts in the row's currency."""

    title: str
    as_of: datetime | None
    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]]


Build = Callable[[psycopg.Connection[Any], Options], Report]


@dataclass(frozen=True)
class ReportKind:
    """One kind of report: what it shows, and how it is built."""

    help: str
    build: Build


_FILTER = (
    "(%(account)s::text IS NULL OR account_id = %(account)s) "
    "AND (%(currency)s::text IS NULL OR currency = %(currency)s)"
)
BALANCE_COLUMNS = (
    "account_id",
    "currency",
    "invoiced_minor",
    "paid_minor",
    "discounted_minor",
    "credited_minor",
    "refunded_minor",
    "written_off_minor",
    "forgiven_minor",
    "customer_credit_minor",
)


def latest_business_time(connection: psycopg.Connection[Any]) -> datetime | None:
    """The business time of the last account event the read models applied (None: none yet)."""
    row = connection.execute("SELECT max(updated_at) FROM balances").fetchone()
    return None if row is None else row[0]


def _params(options: Options, as_of: datetime | None = None) -> dict[str, Any]:
    return {"account": options.account, "currency": options.currency, "as_of": as_of}


def balances(connection: psycopg.Connection[Any], options: Options) -> Report:
    """Per account: the totals moved, what it owes (outstanding) and the credit it holds."""
    columns = (*BALANCE_COLUMNS, "receivable_minor AS outstanding_minor")
    source = "balances"
    if options.as_of is not None:
        source = "account_balances_as_of(%(as_of)s)"
    rows = connection.execute(
        f"SELECT {', '.join(columns)} FROM {source} WHERE {_FILTER} ORDER BY account_id",
        _params(options, options.as_of),
    ).fetchall()
    names = (*BALANCE_COLUMNS, "outstanding_minor")
    return Report("Balances", options.as_of, names, rows)


def invoices(connection: psycopg.Connection[Any], options: Options) -> Report:
    """Per invoice: amount, due date, what settled it, what it owes and its status."""
    if options.as_of is not None:
        return _invoices_as_of(connection, options, options.as_of)
    columns = (
        "account_id",
        "invoice_id",
        "currency",
        "kind",
        "issued_at",
        "due_at",
        "amount_minor",
        "paid_minor",
        "credit_applied_minor",
        "discounted_minor",
        "credited_minor",
        "written_off_minor",
        "outstanding_minor",
        "status",
        "failed_attempts",
        "last_payment_method_kind",
    )
    rows = connection.execute(
        f"SELECT {', '.join(columns)} FROM invoices WHERE {_FILTER} "
        "ORDER BY account_id, due_at, invoice_id",
        _params(options),
    ).fetchall()
    return Report("Invoices", None, columns, rows)


def _invoices_as_of(
    connection: psycopg.Connection[Any], options: Options, as_of: datetime
) -> Report:
    columns = (
        "account_id",
        "invoice_id",
        "currency",
        "kind",
        "issued_at",
        "due_at",
        "amount_minor",
        "outstanding_minor",
        "status",
        "days_past_due",
    )
    rows = connection.execute(
        "SELECT i.account_id, i.invoice_id, i.currency, i.kind, i.issued_at, b.due_at, "
        "i.amount_minor, b.open_minor, CASE WHEN i.closed_at <= %(as_of)s THEN i.status "
        "WHEN b.days_past_due >= 1 THEN 'overdue' ELSE 'open' END, b.days_past_due "
        "FROM invoice_balances_as_of(%(as_of)s, %(account)s) b JOIN invoices i "
        "ON i.account_id = b.account_id AND i.invoice_id = b.invoice_id "
        "WHERE (%(currency)s::text IS NULL OR i.currency = %(currency)s) "
        "ORDER BY i.account_id, b.due_at, i.invoice_id",
        _params(options, as_of),
    ).fetchall()
    return Report("Invoices", as_of, columns, rows)


DELINQUENCY_COLUMNS = (
    "account_id",
    "currency",
    "status",
    "open_minor",
    "overdue_minor",
    "oldest_unpaid_due_at",
    "days_past_due",
    "dunning_stage",
    "failed_attempts",
    "installments_paid",
    "installments_missed",
    "installments_remaining",
    "renegotiation_remaining_minor",
    "next_installment_due_at",
    "hardship_until",
    "final_action",
)


def delinquency(connection: psycopg.Connection[Any], options: Options) -> Report:
    """Per account: status, days past due, dunning, next action, renegotiation, hardship."""
    as_of = options.as_of or latest_business_time(connection)
    if as_of is None:
        return Report(
            "Delinquency", None, (*DELINQUENCY_COLUMNS, "next_action", "next_action_at"), []
        )
    rows = connection.execute(
        f"SELECT {', '.join(DELINQUENCY_COLUMNS)} FROM delinquency_as_of(%(as_of)s, %(account)s) "
        "WHERE (%(currency)s::text IS NULL OR currency = %(currency)s) ORDER BY account_id",
        _params(options, as_of),
    ).fetchall()
    schedule = _next_actions(connection, options, as_of)
    with_actions = []
    for row in rows:
        action = schedule.get(row[0])
        with_actions.append((*row, *((action.kind, action.at) if action else (None, None))))
    columns = (*DELINQUENCY_COLUMNS, "next_action", "next_action_at")
    return Report("Delinquency", as_of, columns, with_actions)


def _next_actions(
    connection: psycopg.Connection[Any], options: Options, as_of: datetime
) -> dict[str, Any]:
    policies = {
        account_id: Policy(tuple(before), tuple(after), grace, final, hardship_until)
        for account_id, before, after, grace, final, hardship_until in connection.execute(
            "SELECT account_id, reminder_days_before_due, reminder_days_after_due, grace_days, "
            f"policy_final_action, hardship_until FROM delinquency WHERE {_FILTER}",
            _params(options),
        ).fetchall()
    }
    open_invoices: dict[str, list[OpenInvoice]] = {}
    for account_id, *fields in connection.execute(
        "SELECT account_id, invoice_id, due_at, dunning_stage, next_retry_at, final_action_at "
        f"FROM delinquency_invoices WHERE open_minor > 0 AND {_FILTER}",
        _params(options),
    ).fetchall():
        open_invoices.setdefault(account_id, []).append(OpenInvoice(*fields))
    return {
        account_id: next_action(policy, open_invoices.get(account_id, []), as_of)
        for account_id, policy in policies.items()
    }


AGING_BUCKETS = (
    "current_minor",
    "past_due_1_30_minor",
    "past_due_31_60_minor",
    "past_due_61_90_minor",
    "past_due_91_plus_minor",
)


def aging(connection: psycopg.Connection[Any], options: Options) -> Report:
    """Per account with an open balance: that balance by days past due, and totals per currency."""
    as_of = options.as_of or latest_business_time(connection)
    columns = ("account_id", "currency", *AGING_BUCKETS, "open_minor")
    if as_of is None:
        return Report("Aging", None, columns, [])
    rows = connection.execute(
        f"SELECT {', '.join(columns)} FROM delinquency_as_of(%(as_of)s, %(account)s) "
        "WHERE open_minor > 0 AND (%(currency)s::text IS NULL OR currency = %(currency)s) "
        "ORDER BY currency, account_id",
        _params(options, as_of),
    ).fetchall()
    totals: dict[str, list[int]] = {}
    for _, currency, *amounts in rows:
        sums = totals.setdefault(currency, [0] * len(amounts))
        totals[currency] = [a + b for a, b in zip(sums, amounts, strict=True)]
    total_rows = [("total", currency, *sums) for currency, sums in sorted(totals.items())]
    return Report("Aging", as_of, columns, [*rows, *total_rows])


REPORTS: dict[str, ReportKind] = {
    "balances": ReportKind(
        "per account: totals, outstanding, credit (--as-of: from postings)", balances
    ),
    "invoices": ReportKind(
        "per invoice: amount, due date, settlement, outstanding, status", invoices
    ),
    "delinquency": ReportKind(
        "per account: status, days past due, dunning and its next action, renegotiation, hardship",
        delinquency,
    ),
    "aging": ReportKind(
        "per account: the open balance by days past due (current, 1-30, 31-60, 61-90, 91+)", aging
    ),
}


def build(kind: str, connection: psycopg.Connection[Any], options: Options) -> Report:
    """The report of `kind` (a key of REPORTS), read in one read-only transaction."""
    with connection.transaction():
        connection.execute("SET TRANSACTION READ ONLY")
        connection.execute("SET LOCAL TIME ZONE 'UTC'")  # times print in UTC, as stored
        return REPORTS[kind].build(connection, options)
