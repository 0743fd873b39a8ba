"""Rebuild's process CPU time on a generated book, for the checkout it is run from.

    cd CHECKOUT && python -m bench.rebuild_cpu [COMMANDS]   (default 5,000; an older checkout:
                                                             copy this file into its bench/)

As `bench projections` (bench/mix.py's commands over a fifth as many accounts, applied by the
projector's write path and its pending snapshots made), then `runtime.rebuild.rebuild` of
every read model, timed in wall and in this process's CPU seconds (PostgreSQL's own CPU is
not in it); prints one JSON line. Run from two checkouts in turn, it compares them on a
shared machine better than the wall clock does.
"""

from __future__ import annotations

import json
import os
import sys
import time

import projections
from bench.audit import fresh_database, open_ledger
from bench.projections import event_messages, generate, project
from bench.servers import bench_servers
from projections.registry import READ_MODELS
from runtime import rebuild


def main(commands: int = 5000) -> None:
    """Generate, project, then time the rebuild."""
    with bench_servers() as servers:
        database_url = fresh_database(servers.server_url)
        ledger = open_ledger(database_url)
        generate(ledger, commands, commands // 5)
        messages = event_messages(ledger)
        project(database_url, messages)
        load = [round(x, 2) for x in os.getloadavg()]
        cpu, wall = time.process_time(), time.perf_counter()
        outcome = rebuild.rebuild(ledger, database_url, READ_MODELS)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        ledger.close()
    figures = {
        "checkout": os.path.dirname(os.path.dirname(projections.__file__)),
        "events": len(messages),
        "rebuild_events_per_s": round(outcome.events_per_s),
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "events_per_cpu_s": round(len(messages) / cpu),
        "differences": outcome.differences,
        "load_before": load,
        "load_after": [round(x, 2) for x in os.getloadavg()],
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:2]))
