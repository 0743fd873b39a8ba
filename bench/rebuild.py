"""`python -m bench rebuild`: `ledger projections rebuild` alone, this checkout against others, in one run.

    python -m bench rebuild [--against CHECKOUT ...] [--rounds 3] [--commands 5000] [--accounts 1000] [--snapshots]

One history (bench/mix.py's commands, saved as the command consumer does) in one database of
an embedded PostgreSQL server, its read models written by this checkout's projector; then each
round runs `runtime.rebuild.rebuild` of every read model once in each checkout (a subprocess
importing that checkout's code; this one first in even rounds, last in odd ones), which
rebuilds beside the live tables and compares with them. Without --snapshots the forecast
snapshots are left out (their days are made after the events, another cost). Per round: wall
seconds of the events (the pages applied), of the deferred work and of the comparison, the
rebuild process's CPU seconds and the PostgreSQL server's (every process of it, from /proc),
so the events' cost splits into client CPU and the server's.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# The round imports the ledger from BENCH_CHECKOUT (another checkout's code) when given.
sys.path[0] = os.environ.get("BENCH_CHECKOUT", str(ROOT))


def models(snapshots: bool) -> list[Any]:
    """Every read model, or all but the forecast snapshots."""
    from projections.registry import READ_MODELS

    return [m for m in READ_MODELS if snapshots or m.name != "forecast_snapshots"]


def round_figures(database_url: str, snapshots: bool) -> dict[str, Any]:
    """One rebuild in this process: its phases' wall seconds and its CPU seconds."""
    from bench.audit import open_ledger
    from infra import logs
    from runtime import rebuild

    logs.configure("warning")
    phases: dict[str, float] = {"pages_s": 0.0, "deferred_s": 0.0, "compare_s": 0.0}

    def timed(function: Callable[..., Any], phase: str) -> Callable[..., Any]:
        def run(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                phases[phase] += time.perf_counter() - started

        return run

    rebuild._apply = timed(rebuild._apply, "pages_s")  # type: ignore[method-assign]
    rebuild.catch_up = timed(rebuild.catch_up, "deferred_s")
    rebuild.compare = timed(rebuild.compare, "compare_s")
    ledger = open_ledger(database_url)
    cpu, wall = time.process_time(), time.perf_counter()
    outcome = rebuild.rebuild(ledger, database_url, models(snapshots))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    ledger.close()
    phases["pages_s"] -= phases["deferred_s"]  # made inside _apply, after the pages
    return {
        "events": outcome.events,
        "differences": outcome.differences,
        "wall_s": round(wall, 3),
        "client_cpu_s": round(cpu, 3),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        **{name: round(seconds, 3) for name, seconds in phases.items()},
    }


def server_cpu_s(postgres_pid: int) -> float:
    """CPU seconds used so far by the PostgreSQL server: the postmaster and its children."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(entry.name) == postgres_pid:  # with its ended children's (connections)
            total += sum(int(field) for field in fields[11:15])
        elif int(fields[1]) == postgres_pid:
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


def run_round(
    checkout: Path, database_url: str, postgres_pid: int, snapshots: bool, profile: Path | None
) -> dict[str, Any]:
    """One rebuild in a subprocess importing `checkout`'s code (under py-spy into `profile`)."""
    env = {**os.environ, "BENCH_CHECKOUT": str(checkout), "LEDGER_LOG_LEVEL": "warning"}
    argv = [
        sys.executable,
        __file__,
        "--round",
        database_url,
        *(["--snapshots"] if snapshots else []),
    ]
    if profile is not None:
        spy = Path(sys.executable).with_name("py-spy")
        argv = [
            str(spy),
            "record",
            "--rate",
            "100",
            "--format",
            "raw",
            "-o",
            str(profile),
            "--",
            *argv,
        ]
    server = server_cpu_s(postgres_pid)
    output = subprocess.run(argv, env=env, cwd=checkout, check=True, capture_output=True, text=True)
    figures: dict[str, Any] = json.loads(
        [line for line in output.stdout.splitlines() if line.startswith("{")][-1]
    )
    figures["server_cpu_s"] = round(server_cpu_s(postgres_pid) - server, 3)
    figures["load_average"] = [round(x, 2) for x in os.getloadavg()]
    return figures


def summary(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians of the rounds: events per second of the pages and of the whole rebuild, and
    microseconds of client and server CPU per event."""

    def median(value: Any) -> float:
        return statistics.median(value(r) for r in rounds)

    return {
        "pages_events_per_s": round(median(lambda r: r["events"] / r["pages_s"])),
        "events_per_s": round(median(lambda r: r["events"] / r["wall_s"])),
        "client_cpu_us_per_event": round(median(lambda r: 1e6 * r["client_cpu_s"] / r["events"])),
        "server_cpu_us_per_event": round(median(lambda r: 1e6 * r["server_cpu_s"] / r["events"])),
        "compare_s": round(median(lambda r: r["compare_s"]), 2),
    }


def prepare(database_url: str, commands: int, accounts: int, snapshots: bool) -> int:
    """The history and the projector's read models (this checkout); answer its events."""
    from bench.audit import open_ledger
    from bench.projections import NoProducer, event_messages, generate
    from projections.projector import Projector
    from wire.codec import AvroCodec

    ledger = open_ledger(database_url)
    generate(ledger, commands, accounts)
    messages = event_messages(ledger)
    ledger.close()
    projector = Projector(
        "bench",
        models(snapshots),
        None,
        NoProducer(),
        AvroCodec(),
        database_url,
        "bench",  # type: ignore[arg-type]
    )
    for start in range(0, len(messages), 500):
        projector._apply(messages[start : start + 500])
    projector.catch_up()
    projector.close()
    return len(messages)


def main(argv: list[str]) -> int:
    if argv and argv[0] == "--round":
        print(json.dumps(round_figures(argv[1], "--snapshots" in argv)))
        return 0
    import argparse
    import tempfile

    from bench.audit import fresh_database
    from bench.rounds import alternating, emit
    from local import embedded

    parser = argparse.ArgumentParser(prog="python -m bench rebuild", description=__doc__)
    parser.add_argument(
        "--against", type=Path, action="append", default=[], help="another checkout"
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--commands", type=int, default=5000)
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--snapshots", action="store_true", help="the forecast snapshots too")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--profile", type=Path, help="py-spy raw profiles: PREFIX-LABEL-ROUND.txt")
    args = parser.parse_args(argv)
    checkouts = {"this": ROOT} | {path.resolve().name: path.resolve() for path in args.against}
    home = Path(tempfile.mkdtemp(prefix="ledger-bench-"))
    status, started = embedded.up(home, names=["postgres"])
    try:
        database_url = fresh_database(str(status.postgres.address))
        events = prepare(database_url, args.commands, args.accounts, args.snapshots)
        print(f"{events} events; load {os.getloadavg()}", flush=True)
        before = [round(x, 2) for x in os.getloadavg()]

        def one_round(label: str, checkout: Path, number: int) -> dict[str, Any]:
            profile = args.profile and Path(f"{args.profile}-{label}-{number}.txt")
            return run_round(checkout, database_url, status.postgres.pid, args.snapshots, profile)

        runs = alternating(checkouts, args.rounds, one_round)
    finally:
        embedded.down(home, started)
    result = {
        "commands": args.commands,
        "accounts": args.accounts,
        "snapshots": args.snapshots,
        "load_average_before": before,
        **{label: summary(figures) | {"rounds": figures} for label, figures in runs.items()},
    }
    return emit(result, args.out)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
