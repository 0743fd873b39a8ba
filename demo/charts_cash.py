"""The dashboard's cash-flow charts: the forecast, forecast against actual, and aging."""

from __future__ import annotations

import plotly.graph_objects as go

from demo.chart_kit import (
    BLUE,
    GREEN,
    Chart,
    amount_text,
    base_layout,
    drawn,
    empty,
    major,
    money_format,
    money_hover,
)
from demo.dashboard_data import CurrencyBook
from runtime.reports import AGING_BUCKETS

AGING_COLOURS = ("#2e9d6a", "#f6c343", "#f0932b", "#e8613c", "#b03030")
AGING_LABELS = ("Current", "1-30 days", "31-60 days", "61-90 days", "91+ days")


def forecast_chart(book: CurrencyBook) -> Chart:
    """Expected inflow per day over the horizon, its low-high band, and what is scheduled."""
    days, code = book.forecast.get("days", []), book.currency
    chart = Chart(
        "forecast",
        "Cash-flow forecast",
        f"expected inflow per day with its ~95% band, against what is due, {code}",
        wide=True,
    )
    past_due = book.forecast.get("past_due", [])
    if past_due and past_due[0]["scheduled_minor"]:
        due, expected = past_due[0]["scheduled_minor"], past_due[0]["expected_minor"]
        note = (
            f"; besides, {amount_text(due, code)} already past due, "
            f"{amount_text(expected, code)} of it expected"
        )
        chart = Chart(chart.key, chart.title, chart.note + note, wide=True)
    if not any(row["scheduled_minor"] for row in days):
        return empty(chart, "Nothing is due in the forecast's horizon.")
    x = [row["day"] for row in days]
    running, cumulative = 0, []
    for row in days:
        running += row["expected_minor"]
        cumulative.append(major(running, code))

    def series(column: str) -> list[float]:
        return [major(row[column], code) for row in days]

    line = {"width": 0}
    traces = [
        go.Scatter(
            x=x, y=series("low_minor"), name="Low", line=line, hoverinfo="skip", showlegend=False
        ),
        go.Scatter(
            x=x,
            y=series("high_minor"),
            name="Band (low-high)",
            line=line,
            fill="tonexty",
            fillcolor="rgba(56,103,214,0.18)",
            hoverinfo="skip",
        ),
        go.Bar(
            x=x,
            y=series("scheduled_minor"),
            name="Scheduled (due)",
            marker_color="#d5dbe3",
            hovertemplate=money_hover("Scheduled", code),
        ),
        go.Scatter(
            x=x,
            y=series("expected_minor"),
            name="Expected",
            mode="lines",
            line={"color": BLUE, "width": 2},
            hovertemplate=money_hover("Expected", code),
        ),
        go.Scatter(
            x=x,
            y=cumulative,
            name="Expected, cumulative (right axis)",
            yaxis="y2",
            mode="lines",
            line={"color": GREEN, "width": 2, "dash": "dot"},
            hovertemplate=money_hover("Cumulative", code),
        ),
    ]
    y2 = {
        "title": {"text": f"{code}, cumulative"},
        "overlaying": "y",
        "side": "right",
        "tickformat": ",.0f",
        "rangemode": "tozero",
        "showgrid": False,
    }
    layout = base_layout(
        code, xaxis={"type": "date", "tickformat": "%d %b"}, bargap=0.15, yaxis2=y2
    )
    layout["margin"] = layout["margin"] | {"r": 72}
    return drawn(chart, go.Figure(traces, layout))


def accuracy_chart(book: CurrencyBook) -> Chart:
    """Cash collected on each past day against what the forecast seven days before expected."""
    rows, code = book.forecast.get("accuracy", []), book.currency
    days = [row for row in rows if row["day"] != "mean"]
    mape = next((row["absolute_percentage_error"] for row in rows if row["day"] == "mean"), None)
    note = (f"the last {len(days)} days, {code}; " if days else f"past days, {code}; ") + (
        f"mean absolute percentage error {mape:.1f}%" if mape is not None else "no cash yet"
    )
    # The error counts timing too: the forecast dates each amount on its due date.
    note += "; each amount is expected on its due date, so cash collected earlier counts as error"
    chart = Chart("accuracy", "Forecast against actual", note)
    if not any(row["collected_minor"] or row["expected_minor"] for row in days):
        return empty(chart, "No cash was expected or collected in the last days.")
    x = [row["day"] for row in days]
    traces = [
        go.Bar(
            x=x,
            y=[major(r["collected_minor"], code) for r in days],
            name="Collected",
            marker_color=GREEN,
            hovertemplate=money_hover("Collected", code),
        ),
        go.Scatter(
            x=x,
            y=[major(r["expected_minor"], code) for r in days],
            name="Expected 7 days before",
            mode="lines+markers",
            line={"color": BLUE, "width": 2},
            hovertemplate=money_hover("Expected", code),
        ),
    ]
    layout = base_layout(code, xaxis={"type": "date", "tickformat": "%d %b"})
    return drawn(chart, go.Figure(traces, layout))


def aging_chart(book: CurrencyBook) -> Chart:
    """What the open invoices owe, by days past due."""
    code = book.currency
    chart = Chart("aging", "Receivable aging", f"open balance by days past due, {code}")
    amounts = [int(book.aging.get(bucket, 0)) for bucket in AGING_BUCKETS]
    if not any(amounts):
        return empty(chart, "Nothing is owed: every invoice is settled.")
    trace = go.Bar(
        x=list(AGING_LABELS),
        y=[major(amount, code) for amount in amounts],
        marker_color=list(AGING_COLOURS),
        text=[f"{major(a, code):{money_format(code)}}" for a in amounts],
        textposition="outside",
        cliponaxis=False,
        hovertemplate=f"%{{x}}: %{{y:{money_format(code)}}} {code}<extra></extra>",
    )
    return drawn(chart, go.Figure([trace], base_layout(code, hovermode="closest")))
