"""The reports `ledger demo` ends with: `ledger report`'s own, summed to fit a terminal.

Each is a `runtime.reports.Report`, so it prints as `ledger report` prints (amounts in major
units on a terminal, integer minor units in JSON): balances and aging summed per currency,
the forecast summed per 30 days ahead, and the metrics by month, payment method and outcome.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, timedelta
from typing import Any

import psycopg

from runtime import reports
from runtime.report_forecast import forecast_report
from runtime.report_metrics import metrics_report
from runtime.reports import Report

Row = Mapping[str, Any]
FORECAST_WINDOW_DAYS = 30
MONTHLY_COLUMNS = (
    "period",
    "currency",
    "mrr_minor",
    "new_minor",
    "expansion_minor",
    "contraction_minor",
    "churn_minor",
    "active_subscriptions",
    "logo_churn_pct",
)


def demo_reports(connection: psycopg.Connection[Any]) -> list[Report]:
    """Balances, aging, forecast and metrics of the whole book, a few rows each."""
    with connection.transaction():
        connection.execute("SET TRANSACTION READ ONLY")
        forecast = forecast_report(connection)
        metrics = metrics_report(connection)
    return [
        balances_summary(reports.build("balances", connection, reports.Options())),
        aging_summary(reports.build("aging", connection, reports.Options())),
        forecast_summary(forecast),
        _report("MRR by month", MONTHLY_COLUMNS, metrics["monthly"]),
        charges_summary(metrics["charges"]),
        outcomes_summary(metrics["dunning"], metrics["renegotiations"]),
    ]


def balances_summary(balances: Report) -> Report:
    """The balances report summed per currency: one row per total, the accounts in the title."""
    amounts = [c for c in balances.columns if c.endswith("_minor")]
    totals: dict[str, dict[str, int]] = {}
    accounts: dict[str, int] = {}
    for row in balances.rows:
        values = dict(zip(balances.columns, row, strict=True))
        currency = values["currency"]
        accounts[currency] = accounts.get(currency, 0) + 1
        sums = totals.setdefault(currency, dict.fromkeys(amounts, 0))
        for column in amounts:
            sums[column] += int(values[column] or 0)
    rows = [
        (currency, column.removesuffix("_minor"), amount)
        for currency, sums in sorted(totals.items())
        for column, amount in sums.items()
    ]
    counted = ", ".join(f"{n:,} {currency}" for currency, n in sorted(accounts.items()))
    title = f"Balances of all accounts ({counted})" if counted else "Balances"
    return Report(title, balances.as_of, ("currency", "total", "amount_minor"), rows)


def aging_summary(aging: Report) -> Report:
    """The aging report's totals per currency (its rows per account left out)."""
    rows = [row[1:] for row in aging.rows if row[0] == "total"]
    return Report("Aging: open balances by days past due", aging.as_of, aging.columns[1:], rows)


def forecast_summary(sections: Mapping[str, Sequence[Row]]) -> Report:
    """What is past due, then the expected inflow summed per 30 days ahead, per currency;
    and how far the forecast was off (mean absolute percentage error, last 30 days)."""
    columns = ("currency", "when", "scheduled_minor", "expected_minor", "at_risk_minor")
    rows: list[tuple[Any, ...]] = []
    errors = {
        r["currency"]: r["absolute_percentage_error"]
        for r in sections["accuracy"]
        if r.get("day") == "mean"
    }
    for row in sections["past_due"]:
        rows.append((row["currency"], "past due", *_estimate(row)))
    for (currency, first, last), window in _windows(sections["days"]).items():
        sums = [sum(amounts) for amounts in zip(*(_estimate(r) for r in window), strict=True)]
        rows.append((currency, f"{first} to {last}", *sums))
    rows.sort(key=lambda row: row[0])
    mape = ", ".join(f"{c} {e}%" for c, e in sorted(errors.items()) if e is not None)
    title = "Cash-flow forecast" + (f" (off by {mape} on the last 30 days)" if mape else "")
    return Report(title, None, columns, rows)


def _estimate(row: Row) -> tuple[int, int, int]:
    return int(row["scheduled_minor"]), int(row["expected_minor"]), int(row["at_risk_minor"])


def _windows(days: Iterable[Row]) -> dict[tuple[str, str, str], list[Row]]:
    """The forecast's days by currency and window of FORECAST_WINDOW_DAYS, first day first."""
    by_currency: defaultdict[str, list[Row]] = defaultdict(list)
    for row in days:
        by_currency[row["currency"]].append(row)
    windows: dict[tuple[str, str, str], list[Row]] = {}
    for currency, rows in by_currency.items():
        first = date.fromisoformat(rows[0]["day"])
        for start in range(0, len(rows), FORECAST_WINDOW_DAYS):
            window = rows[start : start + FORECAST_WINDOW_DAYS]
            last = first + timedelta(days=start + len(window) - 1)
            windows[(currency, str(first + timedelta(days=start)), str(last))] = window
    return windows


def charges_summary(charges: Sequence[Row]) -> Report:
    """Charge success per payment-method kind over the whole book, by amount."""
    totals: dict[tuple[str, str], list[int]] = {}
    for row in charges:
        sums = totals.setdefault((row["currency"], row["payment_method_kind"]), [0, 0, 0, 0])
        sums[0] += int(row["charged_invoices"])
        sums[1] += int(row["charged_minor"])
        sums[2] += int(row["first_attempt_minor"])
        sums[3] += int(row["recovered_after_retries_minor"])
    columns = (
        "currency",
        "payment_method_kind",
        "charged_invoices",
        "charged_minor",
        "first_attempt_success_pct",
        "recovered_after_retries_pct",
    )
    rows = [
        (currency, kind, count, charged, _pct(first, charged), _pct(recovered, charged))
        for (currency, kind), (count, charged, first, recovered) in sorted(totals.items())
    ]
    return Report("Charges by payment method", None, columns, rows)


def outcomes_summary(dunning: Sequence[Row], renegotiations: Sequence[Row]) -> Report:
    """How dunning and renegotiations ended over the whole book, per currency."""
    totals: dict[tuple[str, str], list[int]] = {}
    for row in dunning:
        entered = totals.setdefault((row["currency"], "dunning: entered"), [0, 0])
        recovered = totals.setdefault((row["currency"], "dunning: recovered"), [0, 0])
        entered[0] += int(row["entered_dunning"])
        entered[1] += int(row["overdue_minor"])
        recovered[0] += int(row["recovered"])
        recovered[1] += int(row["recovered_minor"])
    for row in renegotiations:
        sums = totals.setdefault((row["currency"], f"renegotiation: {row['outcome']}"), [0, 0])
        sums[0] += int(row["plans"])
        sums[1] += int(row["amount_minor"])
    rows = [(currency, what, n, amount) for (currency, what), (n, amount) in totals.items()]
    columns = ("currency", "outcome", "count", "amount_minor")
    return Report("Dunning and renegotiation outcomes", None, columns, sorted(rows))


def _report(title: str, columns: Sequence[str], rows: Sequence[Row]) -> Report:
    return Report(title, None, tuple(columns), [tuple(r.get(c) for c in columns) for r in rows])


def _pct(part: int, whole: int) -> float | None:
    return round(100 * part / whole, 1) if whole else None
