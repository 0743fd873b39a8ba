"""The `ledger projections rebuild` verb: its arguments, a progress bar and the outcome."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)

from projections.registry import READ_MODELS
from runtime import rebuild
from runtime.runner import open_ledger


def add_rebuild_parser(operations: Any, action: Callable[..., int]) -> None:
    """Add `rebuild [NAME...] [--swap]` to the `ledger projections` operations."""
    rebuilder = operations.add_parser(
        "rebuild",
        help="rebuild read models into new tables, compare them with the live ones",
        description="Rebuild read models from the start of the history (the event store, which "
        f"always holds all of it) into new tables in schema {rebuild.REBUILD_SCHEMA}, compare "
        "each table with the live one by a checksum of its rows, and report each table that "
        "differs with the first keys that do. Exits 1 when a table differs, unless --swap "
        "swapped the rebuilt tables in. Compare on a quiet ledger: events the projector has "
        "not applied yet show as differences.",
    )
    rebuilder.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        choices=[[], *(model.name for model in READ_MODELS)],
        help="read models to rebuild (default: all): "
        + ", ".join(model.name for model in READ_MODELS),
    )
    rebuilder.add_argument(
        "--swap",
        action="store_true",
        help="replace the live tables with the rebuilt ones, in one transaction",
    )
    rebuilder.set_defaults(action=action)


def run(args: argparse.Namespace, database_url: str) -> int:
    """Rebuild the read models `args` names, printing progress and differences."""
    models = [m for m in READ_MODELS if not args.names or m.name in args.names]
    ledger = open_ledger(database_url)
    columns = (
        TextColumn("rebuilding {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rate]} events/s"),
        TimeRemainingColumn(),
    )
    try:
        with Progress(*columns, console=None, transient=False) as bar:
            task = bar.add_task(", ".join(m.name for m in models), total=None, rate="-")

            def advance(done: int, total: int) -> None:
                speed = bar.tasks[0].speed
                bar.update(
                    task, completed=done, total=total, rate=f"{speed:,.0f}" if speed else "-"
                )

            outcome = rebuild.rebuild(
                ledger, database_url, models, swap=args.swap, progress=advance
            )
    finally:
        ledger.close()
    print(
        f"{outcome.events} events in {outcome.seconds:.1f} s ({outcome.events_per_s:,.0f} events/s)"
    )
    for table, keys in outcome.differences.items():
        print(f"{table}: differs from the live table; first rows: {'; '.join(keys)}")
    if not outcome.differences:
        print("every rebuilt table equals the live one")
    if outcome.swapped:
        print("swapped: the rebuilt tables are live")
        return 0
    return 1 if outcome.differences else 0
