"""`ledger report dashboard`: one self-contained HTML page of the read models for a finance team.

The page carries everything it needs inline (plotly.js, the figures as JSON, the styles), so it
opens from a file with no server and no network. When every chart is drawn it sets
`document.body.dataset.ready` to `true` (`error` if plotly failed), which the browser test waits
for.
"""

from __future__ import annotations

import json
from datetime import datetime
from html import escape
from pathlib import Path
from typing import Any

import plotly
import plotly.io
from plotly.offline import get_plotlyjs

from demo.chart_kit import Chart
from demo.charts_cash import accuracy_chart, aging_chart, forecast_chart
from demo.charts_collections import (
    charges_chart,
    collection_chart,
    dunning_chart,
    renegotiations_chart,
)
from demo.charts_revenue import actives_chart, feedback_chart, movements_chart, mrr_chart
from demo.dashboard_data import CurrencyBook, Dashboard, Row, collect
from infra.postgres import connect
from ledger.money import MINOR_UNIT_DIGITS

STYLE = (Path(__file__).with_name("dashboard.css")).read_text()
# The charts of each currency, in the page's order (two to a row, the forecast a row of its own).
CHARTS = (
    mrr_chart,
    movements_chart,
    actives_chart,
    feedback_chart,
    forecast_chart,
    accuracy_chart,
    aging_chart,
    charges_chart,
    dunning_chart,
    renegotiations_chart,
    collection_chart,
)
READY_SCRIPT = """
const charts = JSON.parse(document.getElementById("dashboard-charts").textContent);
const config = {displayModeBar: false, responsive: true};
Promise.all(charts.map(c => Plotly.newPlot(c.id, c.figure.data, c.figure.layout, config)))
  .then(() => { document.body.dataset.ready = "true"; })
  .catch(error => { document.body.dataset.ready = "error"; console.error(error); });
"""


def write_dashboard(
    database_url: str,
    out: Path,
    as_of: datetime | None = None,
    currency: str | None = None,
) -> Path:
    """Read the read models at `database_url` and write the dashboard page to `out`."""
    with connect(database_url) as connection:
        dashboard = collect(connection, as_of, currency)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page(dashboard), encoding="utf-8")
    return out


def page(dashboard: Dashboard) -> str:
    """The whole HTML page of `dashboard`."""
    figures: list[dict[str, Any]] = []
    sections = [
        _currency_section(book, figures, len(dashboard.books) > 1) for book in dashboard.books
    ]
    if not sections:
        sections = [
            '<p class="empty page-empty">The read models hold no account yet: run the ledger '
            "and send it commands (or run <code>ledger demo</code>).</p>"
        ]
    as_of = dashboard.as_of.strftime("%d %b %Y, %H:%M UTC") if dashboard.as_of else "no data"
    data = json.dumps(figures, separators=(",", ":")).replace("</", "<\\/")
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>Billing ledger dashboard, as of {escape(as_of)}</title>
<style>{STYLE}</style>
<script>{get_plotlyjs()}</script>
</head>
<body data-ready="false">
<header>
  <h1>Billing ledger</h1>
  <p class="as-of">Business time <strong>{escape(as_of)}</strong> · read models only ·
  amounts in major units of each currency</p>
</header>
<main>
{"".join(sections)}
</main>
<footer>Written by <code>ledger report dashboard</code> with plotly {plotly.__version__};
definitions in docs/read-models.md.</footer>
<script type="application/json" id="dashboard-charts">{data}</script>
<script>{READY_SCRIPT}</script>
</body>
</html>
"""


def _currency_section(book: CurrencyBook, figures: list[dict[str, Any]], label: bool) -> str:
    heading = f'<h2 class="currency">{escape(book.currency)}</h2>' if label else ""
    cards = "".join(_chart(chart, book.currency, figures) for chart in charts(book))
    return (
        f'<section class="book" data-currency="{escape(book.currency)}">{heading}'
        f'{_headline(book)}<div class="grid">{cards}</div>{_delinquent(book)}</section>'
    )


def charts(book: CurrencyBook) -> list[Chart]:
    """Every chart of one currency, in the page's order."""
    return [draw(book) for draw in CHARTS]


def amount(amount_minor: int | None, currency: str) -> str:
    """`amount_minor` as people read it: `12,345.67 EUR`, from the integer, digits per currency."""
    if amount_minor is None:
        return ""
    digits = MINOR_UNIT_DIGITS.get(currency, 2)
    whole, fraction = divmod(abs(amount_minor), 10**digits)
    sign = "-" if amount_minor < 0 else ""
    decimals = f".{fraction:0{digits}d}" if digits else ""
    return f"{sign}{whole:,}{decimals} {currency}"


def _headline(book: CurrencyBook) -> str:
    code = book.currency
    receivable, overdue = book.receivable_minor, book.overdue_minor
    overdue_share = (
        f"{100 * overdue / receivable:.1f}% of receivable" if receivable else "nothing owed"
    )
    scheduled = book.scheduled_inflow_minor
    change = ("+" if book.mrr_change_minor >= 0 else "") + amount(book.mrr_change_minor, code)
    figures = (
        ("MRR", amount(book.mrr_minor, code), f"{change} this month"),
        ("Active subscriptions", f"{book.active_subscriptions:,}", "with MRR"),
        ("Receivable", amount(receivable, code), "what open invoices owe"),
        ("Overdue", amount(overdue, code), overdue_share),
        (
            "Expected inflow, 90 days",
            amount(book.expected_inflow_minor, code),
            f"of {amount(scheduled, code)} scheduled",
        ),
    )
    return (
        '<div class="headline">'
        + "".join(
            f'<div class="figure"><span class="label">{escape(label)}</span>'
            f'<span class="value">{escape(value)}</span>'
            f'<span class="sub">{escape(sub)}</span></div>'
            for label, value, sub in figures
        )
        + "</div>"
    )


def _chart(chart: Chart, currency: str, figures: list[dict[str, Any]]) -> str:
    element_id = f"chart-{currency}-{chart.key}"
    if chart.figure is None:
        body = f'<div class="empty" data-empty="{escape(chart.key)}">{escape(chart.empty)}</div>'
    else:
        figures.append({"id": element_id, "figure": json.loads(plotly.io.to_json(chart.figure))})
        body = f'<div class="chart" id="{element_id}" data-chart="{escape(chart.key)}"></div>'
    wide = " wide" if chart.wide else ""
    return (
        f'<article class="card{wide}"><h3>{escape(chart.title)}</h3>'
        f'<p class="note">{escape(chart.note)}</p>{body}</article>'
    )


DELINQUENT_COLUMNS = (
    ("Account", "account_id"),
    ("Customer", "customer_reference"),
    ("Status", "status"),
    ("Overdue", "overdue_minor"),
    ("Open", "open_minor"),
    ("Days past due", "days_past_due"),
    ("Dunning stage", "dunning_stage"),
    ("Failed charges", "failed_attempts"),
    ("Next action", "next_action"),
)


def _delinquent(book: CurrencyBook) -> str:
    code = escape(book.currency)
    title = (
        "<h3>Most delinquent accounts</h3>"
        f'<p class="note">owing past due, most days past due first, {code}</p>'
    )
    if not book.delinquent:
        return (
            f'<article class="card wide table">{title}<div class="empty" '
            'data-empty="delinquent">No account owes anything past due.</div></article>'
        )
    head = "".join(f"<th>{escape(name)}</th>" for name, _ in DELINQUENT_COLUMNS)
    body = "".join(
        "<tr>"
        + "".join(_cell(row, column, book.currency) for _, column in DELINQUENT_COLUMNS)
        + "</tr>"
        for row in book.delinquent
    )
    return (
        f'<article class="card wide table">{title}<table id="delinquent-{code}">'
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></article>"
    )


def _cell(row: Row, column: str, currency: str) -> str:
    value = row.get(column)
    if column.endswith("_minor"):
        return f'<td class="num">{escape(amount(value, currency))}</td>'
    if column == "status":
        text = str(value or "")
        return (
            f'<td><span class="status {escape(text)}">{escape(text.replace("_", " "))}</span></td>'
        )
    if column == "next_action" and value:
        at = row.get("next_action_at")
        when = f" on {at:%d %b %Y}" if isinstance(at, datetime) else ""
        return f"<td>{escape(str(value).replace('_', ' '))}{escape(when)}</td>"
    css = ' class="num"' if isinstance(value, int) else ""
    return f"<td{css}>{escape('' if value is None else str(value))}</td>"
