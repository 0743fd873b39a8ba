"""The dashboard's cash charts: forecast, forecast against actual, aging, charges, dunning,
renegotiations and the collection rates."""

from __future__ import annotations

from collections import defaultdict

import plotly.graph_objects as go

from demo.chart_kit import (
    BLUE,
    GREEN,
    GREY,
    ORANGE,
    RED,
    TEAL,
    Chart,
    amount_text,
    base_layout,
    drawn,
    empty,
    major,
    money_format,
    money_hover,
    month_label,
)  # fmt: skip
from demo.dashboard_data import CurrencyBook
from runtime.reports import AGING_BUCKETS

AGING_COLOURS = ("#2e9d6a", "#f6c343", "#f0932b", "#e8613c", "#b03030")
AGING_LABELS = ("Current", "1-30 days", "31-60 days", "61-90 days", "91+ days")
OUTCOMES = {"completed": GREEN, "in_progress": BLUE, "defaulted": RED}


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
        go.Scatter(x=x, y=series("low_minor"), name="Low", line=line, hoverinfo="skip",
                   showlegend=False),
        go.Scatter(x=x, y=series("high_minor"), name="Band (low-high)", line=line,
                   fill="tonexty", fillcolor="rgba(56,103,214,0.18)", hoverinfo="skip"),
        go.Bar(x=x, y=series("scheduled_minor"), name="Scheduled (due)", marker_color="#d5dbe3",
               hovertemplate=money_hover("Scheduled", code)),
        go.Scatter(x=x, y=series("expected_minor"), name="Expected", mode="lines",
                   line={"color": BLUE, "width": 2}, hovertemplate=money_hover("Expected", code)),
        go.Scatter(x=x, y=cumulative, name="Expected, cumulative (right axis)", yaxis="y2",
                   mode="lines", line={"color": GREEN, "width": 2, "dash": "dot"},
                   hovertemplate=money_hover("Cumulative", code)),
    ]  # fmt: skip
    y2 = {"title": {"text": f"{code}, cumulative"}, "overlaying": "y", "side": "right",
          "tickformat": ",.0f", "rangemode": "tozero", "showgrid": False}  # fmt: skip
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
    note = f"the last {len(days)} days, {code}; " + (
        f"mean absolute percentage error {mape:.1f}%" if mape is not None else "no cash yet"
    )
    chart = Chart("accuracy", "Forecast against actual", note)
    if not any(row["collected_minor"] or row["expected_minor"] for row in days):
        return empty(chart, "No cash was expected or collected in the last days.")
    x = [row["day"] for row in days]
    traces = [
        go.Bar(x=x, y=[major(r["collected_minor"], code) for r in days], name="Collected",
               marker_color=GREEN, hovertemplate=money_hover("Collected", code)),
        go.Scatter(x=x, y=[major(r["expected_minor"], code) for r in days],
                   name="Expected 7 days before", mode="lines+markers",
                   line={"color": BLUE, "width": 2}, hovertemplate=money_hover("Expected", code)),
    ]  # fmt: skip
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


def charges_chart(book: CurrencyBook) -> Chart:
    """Of the volume charged per payment-method kind: paid at the first attempt, recovered
    after retries, not collected (yet)."""
    chart = Chart(
        "charges", "Charge success by payment method", "share of the volume charged, all months"
    )
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for row in book.metrics.get("charges", []):
        sums = totals[row["payment_method_kind"]]
        sums[0] += row["charged_minor"]
        sums[1] += row["first_attempt_minor"]
        sums[2] += row["recovered_after_retries_minor"]
    kinds = sorted(kind for kind, sums in totals.items() if sums[0])
    if not kinds:
        return empty(chart, "No invoice has been charged yet.")
    labels = [kind.replace("_", " ") for kind in kinds]

    def share(kind: str, part: int) -> float:
        charged, first, recovered = totals[kind]
        amount = (first, recovered, charged - first - recovered)[part]
        return 100 * amount / charged

    traces = [
        go.Bar(y=labels, x=[share(kind, part) for kind in kinds], name=name, orientation="h",
               marker_color=colour, textangle=0, textposition="inside",
               text=[_label(share(kind, part)) for kind in kinds],
               hovertemplate=f"{name}: %{{x:.1f}}%<extra></extra>")
        for part, (name, colour) in enumerate(
            (("First attempt", GREEN), ("After retries", TEAL), ("Not collected yet", RED))
        )
    ]  # fmt: skip
    layout = base_layout(
        barmode="stack",
        hovermode="closest",
        xaxis={"title": {"text": "% of volume charged"}, "range": [0, 100]},
        legend={"orientation": "h", "y": -0.25, "x": 0, "traceorder": "normal"},
        margin={"l": 100, "r": 24, "t": 12, "b": 40},
    )
    return drawn(chart, go.Figure(traces, layout))


def _label(percent: float) -> str:
    return f"{percent:.1f}%" if percent >= 6 else ""  # a narrower bar has no room for it


def dunning_chart(book: CurrencyBook) -> Chart:
    """Per month invoices went past due: what they owed then, what of it was recovered since,
    and the recovery rate."""
    rows, code = book.metrics.get("dunning", []), book.currency
    chart = Chart("dunning", "Dunning recovery", f"by month invoices went past due, {code}")
    if not rows:
        return empty(chart, "No invoice has gone past due yet.")
    months = [month_label(row["month"]) for row in rows]
    traces = [
        go.Bar(x=months, y=[major(r["overdue_minor"], code) for r in rows], name="Went past due",
               marker_color=ORANGE, hovertemplate=money_hover("Past due", code)),
        go.Bar(x=months, y=[major(r["recovered_minor"], code) for r in rows],
               name="Recovered since", marker_color=GREEN,
               hovertemplate=money_hover("Recovered", code)),
        go.Scatter(x=months, y=[r["recovery_rate_pct"] for r in rows], name="Recovery rate",
                   yaxis="y2", mode="lines+markers", line={"color": BLUE, "width": 2},
                   hovertemplate="Recovery rate: %{y:.1f}%<extra></extra>"),
    ]  # fmt: skip
    y2 = {"title": {"text": "recovered, %"}, "overlaying": "y", "side": "right",
          "range": [0, 100], "dtick": 25, "showgrid": False}  # fmt: skip
    return drawn(chart, go.Figure(traces, base_layout(code, yaxis2=y2)))


def renegotiations_chart(book: CurrencyBook) -> Chart:
    """Renegotiation plans per month agreed, by outcome at the as-of time."""
    rows = book.metrics.get("renegotiations", [])
    chart = Chart("renegotiations", "Renegotiation outcomes", "plans by month agreed")
    if not rows:
        return empty(chart, "No debt has been renegotiated yet.")
    months = sorted({row["month"] for row in rows})
    plans = {(row["month"], row["outcome"]): row["plans"] for row in rows}
    traces = [
        go.Bar(x=[month_label(m) for m in months], y=[plans.get((m, outcome), 0) for m in months],
               name=outcome.replace("_", " ").capitalize(), marker_color=colour)
        for outcome, colour in OUTCOMES.items()
    ]  # fmt: skip
    layout = base_layout(
        barmode="stack", bargap=0.5, yaxis={"title": {"text": "plans"}, "dtick": 1}
    )
    return drawn(chart, go.Figure(traces, layout))


BAND_LABELS = {"current": "Not yet due", "1-30": "1-30 days", "31-60": "31-60 days",
               "61-90": "61-90 days", "91+": "91+ days"}  # fmt: skip


KIND_COLOURS = {"credit_card": BLUE, "debit_card": TEAL, "bank_transfer": ORANGE, "*": GREY}


def collection_chart(book: CurrencyBook) -> Chart:
    """The collection rates the forecast observed, per payment-method kind and days past due."""
    rows = [
        r for r in book.forecast.get("probabilities", []) if r["band"] != "*" and r["observations"]
    ]
    chart = Chart(
        "collection", "Collection rates",
        "share of the open amount collected, by payment method and days past due "
        "(the forecast's rates)",
    )  # fmt: skip
    if not rows:
        return empty(chart, "No invoice has a known outcome yet.")
    kinds = sorted({r["payment_method_kind"] for r in rows}, key=lambda k: (k == "*", k))
    bands = [band for band in BAND_LABELS if any(r["band"] == band for r in rows)]
    rate = {(r["payment_method_kind"], r["band"]): r for r in rows}
    traces = [
        go.Bar(x=[BAND_LABELS[b] for b in bands],
               y=[100 * rate[(k, b)]["probability"] if (k, b) in rate else None for b in bands],
               customdata=[rate[(k, b)]["observations"] if (k, b) in rate else 0 for b in bands],
               name="all kinds" if k == "*" else k.replace("_", " "),
               marker_color=KIND_COLOURS.get(k, GREY),
               hovertemplate="%{y:.1f}% of %{customdata} observations"
               "<extra>%{fullData.name}</extra>")
        for k in kinds
    ]  # fmt: skip
    layout = base_layout(barmode="group", hovermode="closest",
                     yaxis={"title": {"text": "% collected"}, "range": [0, 100]})  # fmt: skip
    return drawn(chart, go.Figure(traces, layout))
