"""The dashboard's subscription charts: MRR, its movements, active subscriptions, feedback."""

from __future__ import annotations

import plotly.graph_objects as go

from demo.chart_kit import (
    BLUE,
    GREEN,
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
from demo.dashboard_data import CurrencyBook, Row


def mrr_chart(book: CurrencyBook) -> Chart:
    """MRR at each month's end (the last month up to the as-of time)."""
    monthly, code = book.metrics.get("monthly", []), book.currency
    chart = Chart("mrr", "Monthly recurring revenue", f"at each month's end, {code}")
    if not any(row["mrr_minor"] for row in monthly):
        return empty(chart, "No subscription has been invoiced yet: there is no MRR.")
    months = [month_start(row["period"]) for row in monthly]
    trace = go.Scatter(
        x=months,
        y=[major(row["mrr_minor"], code) for row in monthly],
        name="MRR",
        mode="lines+markers",
        fill="tozeroy",
        fillcolor="rgba(56,103,214,0.12)",
        line={"color": BLUE, "width": 3},
        hovertemplate=money_hover("MRR", code),
    )
    return drawn(chart, go.Figure([trace], base_layout(code, xaxis=month_axis(len(months)))))


MOVEMENTS = (
    ("new_minor", "New", 1, GREEN),
    ("expansion_minor", "Expansion", 1, TEAL),
    ("reactivation_minor", "Reactivation", 1, BLUE),
    ("contraction_minor", "Contraction", -1, ORANGE),
    ("churn_minor", "Churn", -1, RED),
)


def movements_chart(book: CurrencyBook) -> Chart:
    """MRR gained (new, expansion, reactivation) and lost (contraction, churn) per month."""
    monthly, code = book.metrics.get("monthly", []), book.currency
    chart = Chart("movements", "MRR movements", f"gained above the line, lost below, {code}")
    if not any(row[column] for row in monthly for column, *_ in MOVEMENTS):
        return empty(chart, "MRR has not moved yet.")
    months = [month_start(row["period"]) for row in monthly]
    traces = [
        go.Bar(
            x=months,
            y=[sign * major(row[column], code) for row in monthly],
            name=name,
            marker_color=colour,
            hovertemplate=money_hover(name, code),
        )
        for column, name, sign, colour in MOVEMENTS
    ]
    return drawn(
        chart,
        go.Figure(traces, base_layout(code, barmode="relative", xaxis=month_axis(len(months)))),
    )


def actives_chart(book: CurrencyBook) -> Chart:
    """Active subscriptions and customers (with MRR) at each month's end."""
    monthly = book.metrics.get("monthly", [])
    chart = Chart("actives", "Active subscriptions", "with MRR at each month's end")
    if not any(row["active_subscriptions"] for row in monthly):
        return empty(chart, "No subscription is active yet.")
    months = [month_start(row["period"]) for row in monthly]
    traces = [
        go.Scatter(
            x=months,
            y=[row[column] for row in monthly],
            name=name,
            mode="lines+markers",
            line={"color": colour, "width": 3, "dash": dash},
        )
        for column, name, colour, dash in (
            ("active_subscriptions", "Subscriptions", BLUE, "solid"),
            ("active_customers", "Customers", TEAL, "dot"),
        )
    ]
    layout = base_layout(
        yaxis={"title": {"text": "count"}, "rangemode": "tozero"}, xaxis=month_axis(len(months))
    )
    return drawn(chart, go.Figure(traces, layout))


def feedback_chart(book: CurrencyBook) -> Chart:
    """Per month of feedback: the net score beside the share of its respondents who churned."""
    rows: list[Row] = book.metrics.get("feedback", [])
    chart = Chart(
        "feedback",
        "Feedback next to churn",
        "net score (% promoters - % detractors) and the respondents who have churned since",
    )
    if not rows:
        return empty(chart, "No feedback has been recorded yet.")
    months = [month_start(row["month"]) for row in rows]
    traces = [
        go.Bar(
            x=months,
            y=[r["net_score"] for r in rows],
            name="Net score",
            marker_color=[GREEN if r["net_score"] >= 0 else ORANGE for r in rows],
            customdata=[[r["responses"], r["average_score"]] for r in rows],
            hovertemplate="Net score %{y:.0f} (%{customdata[0]} responses, "
            "average %{customdata[1]:.1f})<extra></extra>",
        ),
        go.Scatter(
            x=months,
            y=[r["churn_pct"] for r in rows],
            name="Respondents churned",
            yaxis="y2",
            mode="lines+markers",
            line={"color": RED, "width": 2},
            hovertemplate="Churned since: %{y:.1f}%<extra></extra>",
        ),
    ]
    layout = base_layout(
        xaxis=month_axis(len(months)),
        yaxis={"title": {"text": "net score"}, "range": [-100, 100]},
        yaxis2={
            "title": {"text": "% churned"},
            "overlaying": "y",
            "side": "right",
            "range": [0, 100],
            "showgrid": False,
        },
    )
    return drawn(chart, go.Figure(traces, layout))
