"""The `ledger report` verb: its arguments, and reading and printing the report asked for."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TextIO

import psycopg

from infra.postgres import connect
from runtime import report_output, reports
from runtime.report_forecast import forecast_report
from runtime.report_metrics import metrics_report

# Reports of several sections (rows of named values), printed by report_output.write_sections.
SectionsBuild = Callable[..., dict[str, list[dict[str, Any]]]]
SECTIONED: dict[str, tuple[str, SectionsBuild]] = {
    "forecast": (
        "per day and currency, the next 90 days: scheduled, expected (low / high) inflow and "
        "the amount at risk; past due; collection rates; forecast against actual (MAPE)",
        forecast_report,
    ),
    "metrics": (
        "per month and day: MRR and its movements, churn, cohorts, charge success, dunning "
        "recovery, renegotiation outcomes, feedback beside churn",
        metrics_report,
    ),
}


def add_parser(verbs: Any, action: Callable[..., int]) -> None:
    """Add `report KIND [--as-of TIME] [--account ID] [--currency C] [--format F]` to `verbs`."""
    report = verbs.add_parser(
        "report",
        help="print a read model: " + ", ".join([*reports.REPORTS, *SECTIONED]),
        description="Print a report from the read models (never the event store): a table for "
        "a terminal, or JSON / CSV (amounts in integer minor units) for scripts. Days past due "
        "and aging count as of --as-of, else as of the latest business time the read models "
        "have seen.\n\n"
        + "\n".join(f"  {kind}: {entry.help}" for kind, entry in reports.REPORTS.items())
        + "\n"
        + "\n".join(f"  {kind}: {text}" for kind, (text, _) in SECTIONED.items()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    report.add_argument("kind", choices=[*reports.REPORTS, *SECTIONED], metavar="KIND")
    report.add_argument(
        "--as-of",
        type=business_time,
        metavar="TIME",
        help="business time to report as of, ISO 8601 (2026-03-01 is its midnight; UTC unless "
        "the time says otherwise)",
    )
    report.add_argument("--account", help="this account only")
    report.add_argument("--currency", help="this ISO 4217 currency only")
    report.add_argument("--format", choices=report_output.FORMATS, default="table")
    report.set_defaults(action=action)


def run(args: argparse.Namespace, database_url: str, stream: TextIO) -> int:
    """Read the report `args` asks for from the database and print it to `stream`."""
    if args.kind in SECTIONED:
        return _run_sectioned(args, database_url, stream)
    options = reports.Options(args.as_of, args.account, args.currency)
    try:
        with connect(database_url) as connection:
            report = reports.build(args.kind, connection, options)
    except psycopg.Error as error:
        raise ReportError(
            f"report {args.kind}: {str(error).strip()} (has the ledger run once, creating its "
            "read models?)"
        ) from None
    report_output.write(report, args.kind, args.format, stream)
    return 0


def _run_sectioned(args: argparse.Namespace, database_url: str, stream: TextIO) -> int:
    _, build = SECTIONED[args.kind]
    try:
        with connect(database_url) as connection, connection.transaction():
            connection.execute("SET TRANSACTION READ ONLY")
            sections = build(connection, as_of=args.as_of, currency=args.currency)
    except psycopg.Error as error:
        raise ReportError(
            f"report {args.kind}: {str(error).strip()} (has the ledger run once, creating its "
            "read models?)"
        ) from None
    report_output.write_sections(sections, args.format, stream)
    return 0


def business_time(text: str) -> datetime:
    """An ISO 8601 time from the command line; UTC when it names no offset."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class ReportError(Exception):
    """A report could not be read, e.g. before the ledger created its read models."""
