"""Prints a report's sections of rows: aligned tables for people, JSON or CSV for scripts."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from typing import Any

FORMATS = ("table", "json", "csv")

Sections = Mapping[str, Sequence[Mapping[str, Any]]]


def render(sections: Sections, output_format: str) -> str:
    """The sections in `output_format`: table, json (an object of arrays) or csv (one block
    per section, headed `# <section>`, blocks separated by a blank line)."""
    if output_format == "json":
        return json.dumps({name: list(rows) for name, rows in sections.items()}, indent=2) + "\n"
    if output_format == "csv":
        return "\n".join(_csv(name, rows) for name, rows in sections.items())
    return "\n".join(_table(name, rows) for name, rows in sections.items())


def _columns(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    columns: dict[str, None] = {}
    for row in rows:
        columns |= dict.fromkeys(row)
    return list(columns)


def _csv(name: str, rows: Sequence[Mapping[str, Any]]) -> str:
    buffer = io.StringIO()
    buffer.write(f"# {name}\n")
    columns = _columns(rows)
    writer = csv.DictWriter(buffer, columns, lineterminator="\n")
    if columns:
        writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _cell(value: Any) -> str:
    return "" if value is None else str(value)


def _table(name: str, rows: Sequence[Mapping[str, Any]]) -> str:
    columns = _columns(rows)
    if not columns:
        return f"{name}: none\n"
    cells = [[_cell(row.get(column)) for column in columns] for row in rows]
    widths = [
        max(len(column), *(len(line[i]) for line in cells)) for i, column in enumerate(columns)
    ]
    numeric = [all(_is_number(row.get(column)) for row in rows) for column in columns]

    def line(values: Sequence[str]) -> str:
        padded = (
            value.rjust(width) if right else value.ljust(width)
            for value, width, right in zip(values, widths, numeric, strict=True)
        )
        return "  ".join(padded).rstrip()

    ruler = "  ".join("-" * width for width in widths)
    body = [line(columns), ruler, *(line(values) for values in cells)]
    return f"{name}\n" + "\n".join(body) + "\n"


def _is_number(value: Any) -> bool:
    return value is None or (isinstance(value, int | float) and not isinstance(value, bool))
