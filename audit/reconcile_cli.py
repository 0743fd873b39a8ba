"""`ledger audit reconcile`: its parser (what it does: audit/reconcile_commands.py)."""

from __future__ import annotations

import argparse
from importlib import import_module
from typing import Any

from audit.actions import Action, DatabaseUrl
from infra.config import Settings


def register(actions: Any, database_url: DatabaseUrl, bootstrap: DatabaseUrl) -> None:
    """Add `reconcile` to the audit subcommands."""
    parser = actions.add_parser(
        "reconcile",
        help="check the books, the read models and the topics against the events; name each difference",
        description="Check, from the event store: the trial balance of the postings (debits equal "
        "credits per currency, overall and per account); every read-model table against the read "
        "models built again from the events (by key and column, in a transaction rolled back); "
        "billing.events against the stored events and billing.command-results against the "
        "command receipts (each command answered exactly once), by counts and event ids per "
        "partition. Run it with the ledger caught up (the projector and relay idle), or the lag "
        "shows as differences. Exits 1 if anything differs, naming each difference.",
    )
    parser.add_argument(
        "--skip-topics",
        action="store_true",
        help="check the database only (no Kafka): trial balance and read models",
    )
    parser.add_argument("--format", choices=("table", "json"), default="table")
    parser.set_defaults(action=_action(database_url, bootstrap))


def _action(database_url: DatabaseUrl, bootstrap: DatabaseUrl) -> Action:
    def action(args: argparse.Namespace, settings: Settings, _codec: object) -> int:
        run = import_module("audit.reconcile_commands").reconcile
        kafka = None if args.skip_topics else bootstrap(settings)
        result: int = run(args, database_url(settings), settings, kafka)
        return result

    return action
