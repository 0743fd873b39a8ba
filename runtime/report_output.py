"""Printing a report: a table for a terminal (rich), JSON or CSV for scripts.

A report is one `Report` (balances, invoices, delinquency, aging) or named sections of rows
(forecast, metrics); both print the same way. Tables show amounts in major units of the row's
currency (10.00 EUR); JSON and CSV keep integer minor units, with the column names ending in
`_minor`, and times in ISO 8601.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any, TextIO

from rich.console import Console
from rich.table import Table

from ledger.money import MINOR_UNIT_DIGITS
from runtime.reports import Report

FORMATS = ("table", "json", "csv")

Sections = Mapping[str, Sequence[Mapping[str, Any]]]


def write(report: Report, kind: str, output_format: str, stream: TextIO) -> None:
    """Write `report` to `stream` in `output_format`, one of FORMATS."""
    if output_format == "json":
        json.dump(as_json(report, kind), stream, indent=2)
        stream.write("\n")
    elif output_format == "csv":
        _csv(report, stream)
    else:
        _table(report, stream)


def write_sections(sections: Sections, output_format: str, stream: TextIO) -> None:
    """Write named sections of rows: JSON as an object of arrays; CSV as one block per section
    headed `# <section>`, blocks parted by a blank line; a table per section."""
    if output_format == "json":
        json.dump({name: list(rows) for name, rows in sections.items()}, stream, indent=2)
        stream.write("\n")
        return
    for n, (name, rows) in enumerate(sections.items()):
        report = section_report(name, rows)
        if output_format == "csv":
            stream.write(("\n" if n else "") + f"# {name}\n")
            if report.columns:
                _csv(report, stream)
        elif report.columns:
            _table(report, stream)
        else:
            stream.write(f"{name}: none\n")


def section_report(name: str, rows: Sequence[Mapping[str, Any]]) -> Report:
    """A section as a Report: its columns in the order the rows first name them."""
    columns: dict[str, None] = {}
    for row in rows:
        columns |= dict.fromkeys(row)
    names = tuple(columns)
    return Report(name, None, names, [tuple(row.get(c) for c in names) for row in rows])


def as_json(report: Report, kind: str) -> dict[str, Any]:
    """The report as a JSON document: its kind, as-of time and one object per row."""
    return {
        "report": kind,
        "as_of": _plain(report.as_of) or None,
        "rows": [
            {column: _json_value(value) for column, value in zip(report.columns, row, strict=True)}
            for row in report.rows
        ],
    }


def as_table(report: Report) -> Table:
    """The report as a rich table, amounts in major units of each row's currency."""
    title = report.title + (f" as of {report.as_of.isoformat()}" if report.as_of else "")
    table = Table(title=title)
    for column in report.columns:
        amount = column.endswith("_minor")
        table.add_column(
            column.removesuffix("_minor"), justify="right" if amount else "left", no_wrap=True
        )
    currency_at = report.columns.index("currency") if "currency" in report.columns else None
    for row in report.rows:
        currency = None if currency_at is None else row[currency_at]
        table.add_row(
            *(
                _major(value, currency) if column.endswith("_minor") else _plain(value)
                for column, value in zip(report.columns, row, strict=True)
            )
        )
    return table


def _csv(report: Report, stream: TextIO) -> None:
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow(report.columns)
    writer.writerows([[_plain(value) for value in row] for row in report.rows])


def _table(report: Report, stream: TextIO) -> None:
    # A terminal's own width, else (a file, a pipe) wide enough for every cell whole.
    width = None if stream.isatty() else _full_width(report)
    Console(file=stream, width=width).print(as_table(report))


def _full_width(report: Report) -> int:
    table = as_table(report)
    cells = [[column.header, *column.cells] for column in table.columns]
    return sum(max(len(str(cell)) for cell in column) + 3 for column in cells) + 1


def _major(amount_minor: int | None, currency: str | None) -> str:
    if amount_minor is None:
        return ""
    digits = MINOR_UNIT_DIGITS.get(currency or "", 2)
    if digits == 0:
        return str(amount_minor)
    sign = "-" if amount_minor < 0 else ""
    whole, fraction = divmod(abs(amount_minor), 10**digits)
    return f"{sign}{whole}.{fraction:0{digits}d}"


def _plain(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def _json_value(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime | date) else value
