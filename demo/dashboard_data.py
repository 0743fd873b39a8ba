"""What the dashboard shows, read from the read models in one read-only transaction.

Every figure comes from the reports' own builders (runtime/reports.py, report_forecast.py,
report_metrics.py), so the page and `ledger report` never disagree. Amounts stay integer minor
units here; only the page turns them into major units, for display.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg

from runtime import reports
from runtime.report_forecast import forecast_report
from runtime.report_metrics import metrics_report

Row = dict[str, Any]
DELINQUENT_ACCOUNTS = 10  # rows of the table of the most delinquent accounts, per currency
PAST_DUE_BUCKETS = reports.AGING_BUCKETS[1:]


@dataclass
class CurrencyBook:
    """The rows of one currency: every section the page draws, amounts in minor units."""

    currency: str
    metrics: dict[str, list[Row]] = field(default_factory=dict)
    forecast: dict[str, list[Row]] = field(default_factory=dict)
    aging: Row = field(default_factory=dict)  # the currency's `total` row of the aging report
    delinquent: list[Row] = field(default_factory=list)  # the most delinquent accounts, worst first

    @property
    def mrr_minor(self) -> int:
        """MRR at the as-of time (0 before any subscription)."""
        monthly = self.metrics.get("monthly", [])
        return int(monthly[-1]["mrr_minor"]) if monthly else 0

    @property
    def mrr_change_minor(self) -> int:
        """MRR gained (or lost, negative) since the as-of time's month began."""
        monthly = self.metrics.get("monthly", [])
        return int(monthly[-1]["mrr_minor"] - monthly[-1]["mrr_start_minor"]) if monthly else 0

    @property
    def active_subscriptions(self) -> int:
        """Subscriptions with MRR at the as-of time."""
        monthly = self.metrics.get("monthly", [])
        return int(monthly[-1]["active_subscriptions"]) if monthly else 0

    @property
    def receivable_minor(self) -> int:
        """What the open invoices still owe."""
        return int(self.aging.get("open_minor", 0))

    @property
    def overdue_minor(self) -> int:
        """What invoices at least one day past due still owe."""
        return sum(int(self.aging.get(bucket, 0)) for bucket in PAST_DUE_BUCKETS)

    @property
    def expected_inflow_minor(self) -> int:
        """Expected inflow over the forecast's days (90 by default)."""
        return sum(int(row["expected_minor"]) for row in self.forecast.get("days", []))

    @property
    def scheduled_inflow_minor(self) -> int:
        """Scheduled inflow over the forecast's days: what is due, whether paid or not."""
        return sum(int(row["scheduled_minor"]) for row in self.forecast.get("days", []))


@dataclass(frozen=True)
class Dashboard:
    """The page's content: the as-of time and one book per currency, in currency order."""

    as_of: datetime | None
    books: tuple[CurrencyBook, ...]


def collect(
    connection: psycopg.Connection[Any],
    as_of: datetime | None = None,
    currency: str | None = None,
) -> Dashboard:
    """Read every section of the page as of `as_of` (default: the latest business time the
    read models have seen), for `currency` only if given."""
    with connection.transaction():
        connection.execute("SET TRANSACTION READ ONLY")
        connection.execute("SET LOCAL TIME ZONE 'UTC'")
        as_of = as_of or reports.latest_business_time(connection)
        if as_of is None:
            return Dashboard(None, ())
        options = reports.Options(as_of, None, currency)
        books: dict[str, CurrencyBook] = {}
        for name, rows in metrics_report(connection, as_of, currency).items():
            for row in rows:
                _book(books, row["currency"]).metrics.setdefault(name, []).append(row)
        for name, rows in forecast_report(connection, as_of, currency).items():
            for row in rows:
                _book(books, row["currency"]).forecast.setdefault(name, []).append(row)
        for row in _rows(reports.aging(connection, options)):
            if row["account_id"] == "total":
                _book(books, row["currency"]).aging = row
        for code, rows in _most_delinquent(connection, options).items():
            _book(books, code).delinquent = rows
    return Dashboard(as_of, tuple(books[code] for code in sorted(books)))


def _book(books: dict[str, CurrencyBook], currency: str) -> CurrencyBook:
    if currency not in books:
        books[currency] = CurrencyBook(currency)
    return books[currency]


def _rows(report: reports.Report) -> list[Row]:
    return [dict(zip(report.columns, row, strict=True)) for row in report.rows]


def _most_delinquent(
    connection: psycopg.Connection[Any], options: reports.Options
) -> dict[str, list[Row]]:
    """Per currency, the accounts owing something past due: most days past due first, then the
    largest amount overdue; with the customer reference of each."""
    references = dict(
        connection.execute("SELECT account_id, customer_reference FROM balances").fetchall()
    )
    overdue = [
        row for row in _rows(reports.delinquency(connection, options)) if row["overdue_minor"]
    ]
    overdue.sort(key=lambda r: (-(r["days_past_due"] or 0), -r["overdue_minor"], r["account_id"]))
    by_currency: dict[str, list[Row]] = defaultdict(list)
    for row in overdue:
        if len(by_currency[row["currency"]]) < DELINQUENT_ACCOUNTS:
            row["customer_reference"] = references.get(row["account_id"])
            by_currency[row["currency"]].append(row)
    return dict(by_currency)
