"""The `ledger report` verb: its arguments, and reading and printing the report asked for."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import psycopg

from demo.dashboard import write_dashboard
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
DASHBOARD = "dashboard"
DASHBOARD_HELP = (
    "one self-contained HTML page (no server, no network) of the read models: headline figures, "
    "MRR and its movements, active subscriptions, the cash-flow forecast and forecast against "
    "actual, aging, charge success, dunning recovery, renegotiations, feedback beside churn, "
    "the most delinquent accounts; written to --out (--as-of and --currency apply)"
)
DASHBOARD_FILE = Path("dashboard.html")
KINDS = [*reports.REPORTS, *SECTIONED, DASHBOARD]
# The options a kind does not take, and why: given one, the report refuses rather than ignore it.
WHY_NOT = {
    "account": "it is per currency, not per account",
    "out": "only the dashboard is written to a file",
    "format": "the dashboard is an HTML page",
}
NOT_FOR: dict[str, tuple[str, ...]] = {
    **{kind: ("out",) for kind in reports.REPORTS},
    **{kind: ("account", "out") for kind in SECTIONED},
    DASHBOARD: ("account", "format"),
}


def add_parser(verbs: Any, action: Callable[..., int]) -> None:
    """Add `report KIND [--as-of TIME] [--account ID] [--currency C] [--format F]` to `verbs`."""
    report = verbs.add_parser(
        "report",
        help="print a read model, or write the dashboard: " + ", ".join(KINDS),
        description="Print a report from the read models (never the event store): a table for "
        "a terminal, or JSON / CSV (amounts in integer minor units) for scripts. Days past due "
        "and aging count as of --as-of, else as of the latest business time the read models "
        "have seen.\n\n"
        + "\n".join(f"  {kind}: {entry.help}" for kind, entry in reports.REPORTS.items())
        + "\n"
        + "\n".join(f"  {kind}: {text}" for kind, (text, _) in SECTIONED.items())
        + f"\n  {DASHBOARD}: {DASHBOARD_HELP}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    report.add_argument("kind", choices=KINDS, metavar="KIND")
    report.add_argument(
        "--as-of",
        type=business_time,
        metavar="TIME",
        help="business time to report as of, ISO 8601 (2026-03-01 is its midnight; UTC unless "
        "the time says otherwise)",
    )
    report.add_argument("--account", help="this account only")
    report.add_argument("--currency", help="this ISO 4217 currency only")
    report.add_argument(
        "--format",
        choices=report_output.FORMATS,
        help="table (the default), json or csv; not for the dashboard",
    )
    report.add_argument(
        "--out",
        type=Path,
        metavar="FILE",
        help=f"dashboard only: the HTML file to write (default: {DASHBOARD_FILE}); open it in "
        "any browser",
    )
    report.set_defaults(action=action)


def run(args: argparse.Namespace, database_url: str, stream: TextIO) -> int:
    """Read the report `args` asks for from the database and print it to `stream`."""
    refuse_options_not_taken(args)
    if args.kind in SECTIONED:
        return _run_sectioned(args, database_url, stream)
    if args.kind == DASHBOARD:
        return _run_dashboard(args, database_url, stream)
    options = reports.Options(args.as_of, args.account, args.currency)
    with _reading(args.kind), connect(database_url) as connection:
        report = reports.build(args.kind, connection, options)
    report_output.write(report, args.kind, args.format or "table", stream)
    return 0


def refuse_options_not_taken(args: argparse.Namespace) -> None:
    """A usage error naming an option given that `args.kind` does not take."""
    for name in NOT_FOR[args.kind]:
        if getattr(args, name) is not None:
            raise ReportError(f"report {args.kind}: --{name} does not apply ({WHY_NOT[name]})")


def _run_sectioned(args: argparse.Namespace, database_url: str, stream: TextIO) -> int:
    _, build = SECTIONED[args.kind]
    with _reading(args.kind), connect(database_url) as connection, connection.transaction():
        connection.execute("SET TRANSACTION READ ONLY")
        sections = build(connection, as_of=args.as_of, currency=args.currency)
    report_output.write_sections(sections, args.format or "table", stream)
    return 0


def _run_dashboard(args: argparse.Namespace, database_url: str, stream: TextIO) -> int:
    with _reading(DASHBOARD):
        out = write_dashboard(database_url, args.out or DASHBOARD_FILE, args.as_of, args.currency)
    stream.write(f"dashboard written to {out} ({out.stat().st_size:,} bytes)\n")
    stream.write(f"open it in a browser: {out.resolve().as_uri()}\n")
    return 0


@contextmanager
def _reading(kind: str) -> Iterator[None]:
    """Reading the read models for `kind`: a database error becomes a ReportError."""
    try:
        yield
    except psycopg.Error as error:
        raise ReportError(
            f"report {kind}: {str(error).strip()} (has the ledger run once, creating its "
            "read models?)"
        ) from None


def business_time(text: str) -> datetime:
    """An ISO 8601 time from the command line; UTC when it names no offset."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class ReportError(Exception):
    """A report could not be read, e.g. before the ledger created its read models."""
