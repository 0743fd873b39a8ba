"""What `ledger audit replay` and `ledger audit diff` do: replay, then print the views."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime
from typing import Any

from audit.basics import AuditError
from audit.history import History, Knowledge
from audit.replay import Replay, replay
from audit.replay_rows import Row, balance_row, changes, delinquency_row, invoice_rows
from audit.store import snapshot
from runtime.report_output import write_sections


def replay_view(args: argparse.Namespace, url: str) -> int:
    """Print the view of --as-of (known at --known-at) and the corrections recorded after."""
    with snapshot(url) as store:
        history = History(store)
        knowledge = [history.known_at(args.known_at)] if args.known_at else []
        knowledge.append(history.everything())
        replayed = _replay(history, args.as_of, knowledge, args.account)
    sections: dict[str, list[Row]] = {
        "replay": [_summary(args.as_of, knowledge[0], replayed)],
        **view_sections(replayed, 0),
    }
    if args.known_at:
        sections |= _later_sections(history, replayed, "recorded after the known-at time")
    _print(sections, args.format)
    return 0


def diff_views(args: argparse.Namespace, url: str) -> int:
    """Print what changed in the view of --as-of between two --known-at times."""
    if len(args.known_at) != 2:
        raise AuditError("diff needs --known-at twice: the earlier and the later recording time")
    earlier, later = sorted(args.known_at)
    with snapshot(url) as store:
        history = History(store)
        knowledge = [history.known_at(earlier), history.known_at(later)]
        replayed = _replay(history, args.as_of, knowledge, args.account)
    sections = {
        "diff": [
            {"as_of": args.as_of, "from": knowledge[0].describe(), "to": knowledge[1].describe()}
        ],
        **_later_sections(history, replayed, "recorded between the two times"),
    }
    _print(sections, args.format)
    return 0


def _replay(
    history: History, as_of: datetime, knowledge: list[Knowledge], account: str | None
) -> Replay:
    cutoffs = [k.position for k in knowledge]
    return replay(as_of, cutoffs, history.account_events(max(cutoffs), account, as_of))


def view_sections(replayed: Replay, index: int) -> dict[str, list[Row]]:
    """The balances, invoices and delinquency of view `index`."""
    accounts = [replayed.views[index][key] for key in sorted(replayed.views[index])]
    return {
        "balances": [balance_row(a) for a in accounts],
        "invoices": [row for a in accounts for row in invoice_rows(a, replayed.as_of)],
        "delinquency": [delinquency_row(a, replayed.as_of) for a in accounts],
    }


def _later_sections(history: History, replayed: Replay, when: str) -> dict[str, list[Row]]:
    events = [
        {
            "position": e.position,
            "recorded_at": history.recorded_at(e.position),
            "account_id": e.record["account_id"],
            "event_type": e.event_type,
            "occurred_at": e.record["occurred_at"],
        }
        for e in replayed.later[0]
    ]
    return {
        f"events {when}": events,
        "changed figures": changes(replayed.views[0], replayed.views[1], replayed.as_of),
    }


def _summary(as_of: datetime, knowledge: Knowledge, replayed: Replay) -> Row:
    return {
        "as_of": as_of,
        "view": knowledge.describe(),
        "events_counted": replayed.counted - sum(len(later) for later in replayed.later),
    }


def _print(sections: dict[str, list[Row]], output_format: str) -> None:
    plain = {
        name: [{k: _value(v) for k, v in row.items()} for row in rows]
        for name, rows in sections.items()
    }
    if output_format == "json":
        sys.stdout.write(json.dumps(plain, indent=2) + "\n")
    else:
        write_sections(plain, "table", sys.stdout)


def _value(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value
