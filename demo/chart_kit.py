"""What the dashboard's charts share: the chart of the page, colours, units and plotly layout.

Amounts are turned from integer minor units into major units here, for display only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import plotly.graph_objects as go

from ledger.money import MINOR_UNIT_DIGITS

GREEN, BLUE, TEAL, ORANGE, RED, GREY = (
    "#2e9d6a",
    "#3867d6",
    "#20a4b8",
    "#f0932b",
    "#d64541",
    "#9aa3ad",
)


@dataclass(frozen=True)
class Chart:
    """One chart of the page: a figure, or the sentence shown when there is nothing to draw."""

    key: str
    title: str
    note: str
    figure: go.Figure | None = None
    empty: str = ""
    wide: bool = False


def major(amount_minor: int, currency: str) -> float:
    """`amount_minor` in major units of `currency`, for drawing only (never stored or summed)."""
    scale: int = 10 ** MINOR_UNIT_DIGITS.get(currency, 2)
    return amount_minor / scale


def money_format(currency: str) -> str:
    """The d3 number format of amounts of `currency`: thousands separated, its minor digits."""
    return f",.{MINOR_UNIT_DIGITS.get(currency, 2)}f"


def month_start(period: str) -> str:
    """The month `2026-03` as the date plotly places it at, `2026-03-01`."""
    return datetime.strptime(period, "%Y-%m").date().isoformat()


def month_axis(months: int) -> dict[str, Any]:
    """An x axis of `months` months: a tick a month (a quarter past 13), `Mar` over `2026`."""
    return {
        "type": "date",
        "tickformat": "%b\n%Y",
        "hoverformat": "%B %Y",
        "dtick": "M1" if months <= 13 else "M3",
    }


def base_layout(currency: str | None = None, **extra: Any) -> dict[str, Any]:
    """The plotly layout every chart starts from; with a currency, its amounts on the y axis."""
    layout: dict[str, Any] = {
        "template": "plotly_white",
        "height": 320,
        "margin": {"l": 64, "r": 24, "t": 12, "b": 40},
        "font": {"family": "Inter, system-ui, -apple-system, Segoe UI, sans-serif", "size": 12},
        "legend": {"orientation": "h", "y": -0.18, "x": 0},
        "hovermode": "x unified",
    }
    if currency:
        layout["yaxis"] = {"title": {"text": currency}, "tickformat": ",~f", "rangemode": "tozero"}
    return layout | extra


def money_hover(name: str, currency: str) -> str:
    """A hover label of an amount of `currency` on the y axis."""
    return f"{name}: %{{y:{money_format(currency)}}} {currency}<extra></extra>"


def amount_text(amount_minor: int, currency: str) -> str:
    """`amount_minor` as text in major units of `currency`, as a chart's note shows it."""
    return f"{major(amount_minor, currency):{money_format(currency)}} {currency}"


def empty(chart: Chart, sentence: str) -> Chart:
    """`chart` with nothing to draw, and `sentence` saying why."""
    return Chart(chart.key, chart.title, chart.note, None, sentence, chart.wide)


def drawn(chart: Chart, figure: go.Figure) -> Chart:
    """`chart` with its figure."""
    return Chart(chart.key, chart.title, chart.note, figure, "", chart.wide)
