"""The end of `ledger demo`: wait for the read models, print the counts and reports, say what next.

On a terminal: sentences and tables (amounts in major units). Elsewhere: one JSON object per
line (`demo.done`, `demo.reports`), amounts in integer minor units, for scripts.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from rich import box
from rich.console import Console
from rich.table import Table

from demo.dashboard import write_dashboard
from demo.driver import Progress, Stopped
from demo.reports import demo_reports
from infra.kafka import KafkaClients
from infra.postgres import connect, redact
from runtime.projections_status import projections_status
from runtime.report_output import as_json, as_table

SETTLE_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class Where:
    """Where the demo's ledger runs, and the event that stops it (Ctrl-C)."""

    database_url: str
    kafka: KafkaClients
    stop: threading.Event


def finish(
    where: Where, progress: Progress, keep_running: bool, dashboard: Path, stream: TextIO
) -> None:
    """Everything `ledger demo` prints once the book is played and answered, and the
    dashboard it writes to `dashboard`."""
    people = stream.isatty()
    started = time.monotonic()
    if people:
        with Console(file=stream).status("The read models are catching up") as status:
            settled = settle(
                where,
                lambda lag, days: status.update(
                    f"The read models are catching up: {lag or 0:,} events to apply"
                    + (f", {days:,} forecast snapshot days to make" if days else "")
                ),
            )
    else:
        settled = settle(where, lambda _lag, _days: None)
    if where.stop.is_set():
        raise Stopped("stopped while the read models were catching up")
    progress.settle_s = time.monotonic() - started
    print(summary(progress, people), file=stream)
    if not settled:
        print(
            "(the read models are still catching up: the reports show what they hold so far)",
            file=sys.stderr,
        )
    show_reports(where.database_url, people, stream)
    show_dashboard(write_dashboard(where.database_url, dashboard), people, stream)
    if people:
        print(next_steps(where, keep_running), file=stream)
    stream.flush()


def settle(
    where: Where, waiting: Callable[[int | None, int], None], timeout_s: float = SETTLE_TIMEOUT_S
) -> bool:
    """Wait until every stored event is relayed and applied to the read models and the
    forecast snapshots are made, telling `waiting` how many events they lag behind and how
    many snapshot days are left meanwhile; False if they did not move for `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    least: int | None = None
    while time.monotonic() < deadline and not where.stop.is_set():
        with connect(where.database_url) as connection:
            row = connection.execute(
                "SELECT (SELECT coalesce(max(notification_id), 0) FROM billing_events) "
                "<= (SELECT coalesce(max(notification_id), 0) FROM ledger_relay_positions)"
            ).fetchone()
        status = projections_status(where.database_url, where.kafka)
        if row is not None and row[0] and status.caught_up:
            return True
        lag = status.lag
        left = None if lag is None else lag + status.pending_snapshot_days
        if left is not None and (least is None or left < least):
            least, deadline = left, time.monotonic() + timeout_s  # they move: wait on
        waiting(lag, status.pending_snapshot_days)
        where.stop.wait(0.2)
    return False


def summary(progress: Progress, people: bool) -> str:
    """What the book did: a sentence for people, a `demo.done` JSON line otherwise."""
    figures = {
        **progress.as_dict(),
        "rejections": progress.rejections,
        "read_models_s": round(progress.settle_s, 1),
    }
    if not people:
        return json.dumps({"event": "demo.done", **figures})
    rejections = ", ".join(f"{code} {n}" for code, n in sorted(progress.rejections.items()))
    return (
        f"\nPlayed {progress.months} business months: {progress.answered:,} commands answered "
        f"({progress.answered - progress.rejected:,} accepted, {progress.rejected:,} rejected"
        f"{': ' + rejections if rejections else ''}), {progress.events:,} events, "
        f"in {progress.elapsed_s:.0f} s ({progress.commands_per_s:,.0f} commands/s); the read "
        f"models caught up {progress.settle_s:.0f} s later."
    )


def show_reports(database_url: str, people: bool, stream: TextIO) -> None:
    """The demo's reports from the read models: tables for people, one JSON line otherwise."""
    with connect(database_url) as connection:
        found = demo_reports(connection)
    if not people:
        documents: list[dict[str, Any]] = [as_json(r, r.title) for r in found]
        print(json.dumps({"event": "demo.reports", "reports": documents}, default=str), file=stream)
        return
    console = Console(file=stream)
    for report in found:
        console.print(_compact(as_table(report)))


def show_dashboard(page: Path, people: bool, stream: TextIO) -> None:
    """Where the dashboard is and how to open it: a sentence, or a `demo.dashboard` line."""
    address = page.resolve().as_uri()
    if people:
        print(f"\nDashboard: {page} ({page.stat().st_size:,} bytes); open {address}", file=stream)
    else:
        print(
            json.dumps({"event": "demo.dashboard", "path": str(page), "url": address}), file=stream
        )


# Shorter headers for the columns that would widen a table past a terminal's 80 columns.
SHORT_HEADERS = {
    "currency": "cur",
    "expansion": "expand",
    "contraction": "contract",
    "active_subscriptions": "active",
    "logo_churn_pct": "churn %",
    "payment_method_kind": "method",
    "charged_invoices": "invoices",
    "first_attempt_success_pct": "1st try %",
    "recovered_after_retries_pct": "retried %",
    "past_due_1_30": "1-30 d",
    "past_due_31_60": "31-60 d",
    "past_due_61_90": "61-90 d",
    "past_due_91_plus": "91+ d",
}


def _compact(table: Table) -> Table:
    """`table` with short headers, numbers to the right, no inner rules, and its currency in
    the title when it has only one, to fit a terminal."""
    table.box = box.SIMPLE_HEAD
    for column in table.columns:
        column.header = SHORT_HEADERS.get(str(column.header), column.header)
        if all(_numeric(cell) for cell in column.cells):
            column.justify = "right"
    currency = next((c for c in table.columns if c.header == "cur"), None)
    if currency is not None and len(set(currency.cells)) == 1:
        table.columns.remove(currency)
        table.title = f"{table.title} ({next(iter(currency.cells))})"
    return table


def _numeric(cell: object) -> bool:
    text = str(cell).replace(".", "", 1).removeprefix("-")
    return text == "" or text.isdigit()


def next_steps(where: Where, keep_running: bool) -> str:
    """How to go on from here."""
    lines = [
        "",
        "Reports: ledger report balances|invoices|delinquency|aging|forecast|metrics|dashboard "
        "[--format json|csv]",
    ]
    if keep_running:
        lines += [
            f"The ledger keeps serving: PostgreSQL {redact(where.database_url)}, "
            f"Kafka {where.kafka.bootstrap}.",
            "Go on from another terminal, e.g. ledger send OpenAccount --account-id acc-1 "
            "--currency EUR --customer-reference crm-1",
            "Ctrl-C stops it.",
        ]
    else:
        lines += [
            "The ledger has stopped, with the embedded servers it started; the book stays in "
            "PostgreSQL under LEDGER_HOME (`ledger infra up` to report on it again).",
            "To go on with `ledger send`, run `ledger demo --keep-running`; `ledger run` is "
            "the long-running service.",
        ]
    return "\n".join(lines)
