"""One printer for every report: a Report or named sections, as a table, JSON or CSV."""

from __future__ import annotations

import io
import json
import re
from datetime import UTC, datetime

import pytest

from runtime.cli import build_parser
from runtime.report_command import ReportError, refuse_options_not_taken
from runtime.report_output import write, write_sections
from runtime.reports import Report
from wire.codec import AvroCodec

SECTIONS = {
    "days": [
        {"currency": "EUR", "day": "2024-03-14", "scheduled_minor": 1500, "probability": None},
        {"currency": "JPY", "day": "2024-03-15", "scheduled_minor": 12000, "probability": 0.75},
    ],
    "accuracy": [],
}


def printed(output_format: str) -> str:
    """The sections printed in `output_format`."""
    stream = io.StringIO()
    write_sections(SECTIONS, output_format, stream)
    return stream.getvalue()


class TestSections:
    """Each format keeps every section and every value."""

    def test_table_shows_major_units_of_each_rows_currency(self) -> None:
        """15.00 EUR, 12000 JPY (no minor unit); the column loses `_minor`; an empty section
        says so."""
        text = printed("table")
        assert "days" in text.splitlines()[0]
        assert "scheduled" in text and "scheduled_minor" not in text
        assert "15.00" in text and "12000" in text and "0.75" in text
        assert text.rstrip().endswith("accuracy: none")

    def test_json_is_an_object_of_arrays(self) -> None:
        """JSON reads back as the sections themselves, in minor units."""
        assert json.loads(printed("json")) == SECTIONS

    def test_csv_blocks_per_section(self) -> None:
        """CSV heads each section with `# name`, then its header and rows."""
        assert printed("csv").splitlines() == [
            "# days",
            "currency,day,scheduled_minor,probability",
            "EUR,2024-03-14,1500,",
            "JPY,2024-03-15,12000,0.75",
            "",
            "# accuracy",
        ]


class TestReport:
    """A single report prints with its kind and as-of time."""

    def test_json_and_csv(self) -> None:
        """JSON: kind, as_of and rows by column; CSV: header then rows, times in ISO 8601."""
        at = datetime(2026, 3, 1, tzinfo=UTC)
        report = Report("Balances", at, ("account_id", "currency", "paid_minor"), [("a", "EUR", 1)])
        stream = io.StringIO()
        write(report, "balances", "json", stream)
        assert json.loads(stream.getvalue()) == {
            "report": "balances",
            "as_of": "2026-03-01T00:00:00+00:00",
            "rows": [{"account_id": "a", "currency": "EUR", "paid_minor": 1}],
        }
        stream = io.StringIO()
        write(report, "balances", "csv", stream)
        assert stream.getvalue() == "account_id,currency,paid_minor\na,EUR,1\n"


class TestOptionsAReportDoesNotTake:
    """An option a report does not take is refused (a ReportError: `ledger` exits 2 with it),
    before any server is asked."""

    def test_each_refused_option_is_named_with_why(self) -> None:
        """forecast --account, balances --out and dashboard --format: refused, the option named."""
        parser = build_parser(AvroCodec())
        cases = {
            ("forecast", "--account", "acme"): "--account does not apply (it is per currency",
            ("balances", "--out", "x.html"): "--out does not apply (only the dashboard",
            ("dashboard", "--format", "json"): "--format does not apply (the dashboard is an HTML",
        }
        for argv, message in cases.items():
            with pytest.raises(ReportError, match=re.escape(message)):
                refuse_options_not_taken(parser.parse_args(["report", *argv]))

    def test_options_a_report_takes_pass_the_check(self) -> None:
        """balances --account --format csv and dashboard --out FILE are not refused."""
        parser = build_parser(AvroCodec())
        for argv in (
            ["report", "balances", "--account", "acme", "--format", "csv"],
            ["report", "dashboard", "--out", "page.html", "--currency", "EUR"],
            ["report", "metrics", "--currency", "EUR", "--format", "json"],
        ):
            refuse_options_not_taken(parser.parse_args(argv))
