"""`ledger audit replay` and `ledger audit diff`: their parsers (what they do: audit/replay_commands.py)."""

from __future__ import annotations

import argparse
from typing import Any

from audit.actions import DatabaseUrl, online
from runtime.report_command import business_time

FORMATS = ("table", "json")
_TIME = "ISO 8601; 2026-03-01 is its midnight, UTC unless the time says otherwise"


def register(actions: Any, database_url: DatabaseUrl) -> None:
    """Add `replay` and `diff` to the audit subcommands."""
    replay = actions.add_parser(
        "replay",
        help="balances, invoices and delinquency as of a business time, from the events alone",
        description="Recompute each account's balances, invoices and delinquency as of business "
        "time --as-of from the stored events alone (no read model is read). With --known-at, "
        "only the events whose batch was recorded by then count, and the events recorded "
        "later that change that view (corrections) are listed beside it, figure by figure.",
    )
    _common(replay)
    replay.add_argument(
        "--known-at",
        type=business_time,
        metavar="TIME",
        help=f"recording time: what the ledger knew then ({_TIME})",
    )
    replay.set_defaults(action=online("replay_view", database_url, "audit.replay_commands"))
    diff = actions.add_parser(
        "diff",
        help="what changed in the view of a business time between two recording times",
        description="Replay business time --as-of as known at each of two recording times and "
        "print, per account, every figure (balance, invoice, delinquency) that differs, with "
        "both values and the events recorded between the two times. Exits 0 either way.",
    )
    _common(diff)
    diff.add_argument(
        "--known-at",
        type=business_time,
        metavar="TIME",
        action="append",
        required=True,
        help=f"a recording time, given twice: the earlier and the later ({_TIME})",
    )
    diff.set_defaults(action=online("diff_views", database_url, "audit.replay_commands"))


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--as-of",
        type=business_time,
        required=True,
        metavar="TIME",
        help=f"business time ({_TIME})",
    )
    parser.add_argument("--account", metavar="ID", help="this account only")
    parser.add_argument("--format", choices=FORMATS, default="table")
