"""The dashboard's collection charts: charge success, dunning recovery, renegotiation outcomes
and the collection rates the forecast observed."""

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
    base_layout,
    drawn,
    empty,
    major,
    money_hover,
    month_axis,
    month_start,
)
from demo.dashboard_data import CurrencyBook

OUTCOMES = {"completed": GREEN, "in_progress": BLUE, "defaulted": RED}


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
        go.Bar(
            y=labels,
            x=[share(kind, part) for kind in kinds],
            name=name,
            orientation="h",
            marker_color=colour,
            textangle=0,
            textposition="inside",
            text=[_label(share(kind, part)) for kind in kinds],
            hovertemplate=f"{name}: %{{x:.1f}}%<extra></extra>",
        )
        for part, (name, colour) in enumerate(
            (("First attempt", GREEN), ("After retries", TEAL), ("Not collected yet", RED))
        )
    ]
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
    months = [month_start(row["month"]) for row in rows]
    traces = [
        go.Bar(
            x=months,
            y=[major(r["overdue_minor"], code) for r in rows],
            name="Went past due",
            marker_color=ORANGE,
            hovertemplate=money_hover("Past due", code),
        ),
        go.Bar(
            x=months,
            y=[major(r["recovered_minor"], code) for r in rows],
            name="Recovered since",
            marker_color=GREEN,
            hovertemplate=money_hover("Recovered", code),
        ),
        go.Scatter(
            x=months,
            y=[r["recovery_rate_pct"] for r in rows],
            name="Recovery rate",
            yaxis="y2",
            mode="lines+markers",
            line={"color": BLUE, "width": 2},
            hovertemplate="Recovery rate: %{y:.1f}%<extra></extra>",
        ),
    ]
    y2 = {
        "title": {"text": "recovered, %"},
        "overlaying": "y",
        "side": "right",
        "range": [0, 100],
        "dtick": 25,
        "showgrid": False,
    }
    return drawn(
        chart, go.Figure(traces, base_layout(code, yaxis2=y2, xaxis=month_axis(len(months))))
    )


def renegotiations_chart(book: CurrencyBook) -> Chart:
    """Renegotiation plans per month agreed, by outcome at the as-of time."""
    rows = book.metrics.get("renegotiations", [])
    chart = Chart("renegotiations", "Renegotiation outcomes", "plans by month agreed")
    if not rows:
        return empty(chart, "No debt has been renegotiated yet.")
    months = sorted({row["month"] for row in rows})
    plans = {(row["month"], row["outcome"]): row["plans"] for row in rows}
    traces = [
        go.Bar(
            x=[month_start(m) for m in months],
            y=[plans.get((m, outcome), 0) for m in months],
            name=outcome.replace("_", " ").capitalize(),
            marker_color=colour,
        )
        for outcome, colour in OUTCOMES.items()
    ]
    layout = base_layout(
        barmode="stack",
        bargap=0.5,
        xaxis=month_axis(len(months)),
        yaxis={"title": {"text": "plans"}, "dtick": 1},
    )
    return drawn(chart, go.Figure(traces, layout))


BAND_LABELS = {
    "current": "Not yet due",
    "1-30": "1-30 days",
    "31-60": "31-60 days",
    "61-90": "61-90 days",
    "91+": "91+ days",
}


KIND_COLOURS = {"credit_card": BLUE, "debit_card": TEAL, "bank_transfer": ORANGE, "*": GREY}


def collection_chart(book: CurrencyBook) -> Chart:
    """The collection rates the forecast observed, per payment-method kind and days past due."""
    rows = [
        r for r in book.forecast.get("probabilities", []) if r["band"] != "*" and r["observations"]
    ]
    chart = Chart(
        "collection",
        "Collection rates",
        "share of the open amount collected, by payment method and days past due "
        "(the forecast's rates)",
    )
    if not rows:
        return empty(chart, "No invoice has a known outcome yet.")
    kinds = sorted({r["payment_method_kind"] for r in rows}, key=lambda k: (k == "*", k))
    bands = [band for band in BAND_LABELS if any(r["band"] == band for r in rows)]
    rate = {(r["payment_method_kind"], r["band"]): r for r in rows}
    traces = [
        go.Bar(
            x=[BAND_LABELS[b] for b in bands],
            y=[100 * rate[(k, b)]["probability"] if (k, b) in rate else None for b in bands],
            customdata=[rate[(k, b)]["observations"] if (k, b) in rate else 0 for b in bands],
            name="all kinds" if k == "*" else k.replace("_", " "),
            marker_color=KIND_COLOURS.get(k, GREY),
            hovertemplate="%{y:.1f}% of %{customdata} observations<extra>%{fullData.name}</extra>",
        )
        for k in kinds
    ]
    layout = base_layout(
        barmode="group",
        hovermode="closest",
        yaxis={"title": {"text": "% collected"}, "range": [0, 100]},
    )
    return drawn(chart, go.Figure(traces, layout))
