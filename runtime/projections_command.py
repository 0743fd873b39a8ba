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

from infra.kafka import KafkaClients
from projections.registry import READ_MODELS
from runtime import history, rebuild
from runtime.runner import open_ledger

SOURCE_NAMES = {"events": "billing.events", "store": "the event store"}


def add_rebuild_parser(operations: Any, action: Callable[..., int]) -> None:
    """Add `rebuild [NAME...] [--swap] [--source S]` to the `ledger projections` operations."""
    rebuilder = operations.add_parser(
        "rebuild",
        help="rebuild read models into new tables, compare them with the live ones",
        description="Rebuild read models from the start of the history into new tables in "
        f"schema {rebuild.REBUILD_SCHEMA}, compare each table with the live one by a checksum "
        "of its rows, and report each table that differs with the first keys that do. The "
        "history is read from billing.events when the topic still holds all of it (earliest "
        "offsets 0, as many messages as the store has events), else from the event store, "
        "which always does. A model is rebuilt with the models whose tables it reads. Exits 1 "
        "when a table differs, unless --swap swapped the rebuilt tables in. Compare on a "
        "quiet ledger: events the projector has not applied yet show as differences.",
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
    rebuilder.add_argument(
        "--source",
        choices=history.SOURCES,
        default="auto",
        help="where to read the history: events (billing.events), store (the event store), "
        "or auto (default): the topic when it holds the whole history, else the store",
    )
    rebuilder.set_defaults(action=action)


def run(args: argparse.Namespace, database_url: str, kafka: KafkaClients | None) -> int:
    """Rebuild the read models `args` names, printing progress and differences."""
    named = [m for m in READ_MODELS if not args.names or m.name in args.names]
    models = rebuild.with_requirements(named, READ_MODELS)
    ledger = open_ledger(database_url)
    columns = (
        TextColumn("rebuilding {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[rate]}/s"),
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

            def snapshots(done: int, total: int) -> None:
                if len(bar.tasks) == 1:
                    bar.add_task("forecast snapshots (days)", total=total, rate="-")
                speed = bar.tasks[1].speed
                bar.update(
                    bar.tasks[1].id,
                    completed=done,
                    total=total,
                    rate=f"{speed:,.0f}" if speed else "-",
                )

            outcome = rebuild.rebuild(
                ledger,
                database_url,
                models,
                swap=args.swap,
                progress=advance,
                source=args.source,
                kafka=kafka,
                deferred_progress=snapshots,
            )
    finally:
        ledger.close()
    print(
        f"read from {SOURCE_NAMES[outcome.source]}: {outcome.events} events in {outcome.seconds:.1f} s ({outcome.events_per_s:,.0f} events/s)"
    )
    for table, keys in outcome.differences.items():
        print(f"{table}: differs from the live table; first rows: {'; '.join(keys)}")
    if not outcome.differences:
        print("every rebuilt table equals the live one")
    if outcome.swapped:
        print("swapped: the rebuilt tables are live")
        return 0
    return 1 if outcome.differences else 0
