"""`python -m bench writer`: the command writer alone, this checkout against another, in one run.

    python -m bench writer [--against CHECKOUT ...] [--rounds 3] [--commands 5000] [--accounts 1000]

The pipeline's burst (bench/mix.py) as Kafka messages over three partitions, in poll batches
of 500, through the command consumer's own batch path (`CommandConsumer._process_or_drop`:
skip stored offsets, decode, handle, save events, receipts, positions and the batch head in
one transaction, keep the accounts cached), without a broker, on a fresh database each
round. It reports CPU seconds of the writer per 1,000 commands and stored rows per wall-clock
second. With --against (each labelled by its directory's name), each round runs once in
each checkout, this one first in even rounds and last in odd ones, on the same PostgreSQL server: a subprocess whose imports come from that checkout,
so the figures compare code, not moments of a shared machine.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import statistics
import subprocess
import sys
import time
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# The round imports the ledger from BENCH_CHECKOUT (another checkout's code) when given: its
# directory replaces this script's, which would otherwise shadow packages (bench/audit.py).
sys.path[0] = os.environ.get("BENCH_CHECKOUT", str(ROOT))

PARTITIONS = 3
BATCH = 500


def round_figures(database_url: str, commands: int, accounts: int) -> dict[str, Any]:
    """One round in this process: the burst through the writer; its CPU and wall seconds."""
    from bench.mix import encoded, plans, workload
    from commands.account_cache import AccountCache
    from commands.consumer import CommandConsumer
    from infra import logs
    from infra.kafka import Message
    from infra.postgres import event_store_env
    from ledger.application import BillingLedger
    from wire.codec import AvroCodec
    from wire.topics import COMMANDS_TOPIC

    logs.configure("warning")  # as the pipeline benchmark runs `ledger run`
    offsets = [0] * PARTITIONS

    def messages(batch: list[tuple[bytes, bytes]]) -> list[Message]:
        answer = []
        for key, value in batch:
            partition = zlib.crc32(key) % PARTITIONS
            answer.append(Message(COMMANDS_TOPIC, partition, offsets[partition], key, value))
            offsets[partition] += 1
        return answer

    ledger = BillingLedger(env=event_store_env(database_url))
    writer = CommandConsumer(ledger, None, None, AvroCodec(), "bench", AccountCache(20_000))  # type: ignore[arg-type]
    with seeded_uuid4():  # the builders' command ids: every round stores the same bytes
        catalogue = encoded(plans())
        burst = encoded(workload(commands, accounts, seed=1, prefix="burst"))
    writer._process_or_drop(messages(catalogue))  # the tables exist, the plan is defined
    batches = [messages(burst[i : i + BATCH]) for i in range(0, len(burst), BATCH)]
    cpu, wall = time.process_time(), time.perf_counter()
    outcomes = sum(len(writer._process_or_drop(batch)) for batch in batches)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    rows = ledger.process_recorder.max_notification_id() or 0
    digest = stored_digest(ledger)
    ledger.close()
    return {"commands": outcomes, "rows": rows, "cpu_s": cpu, "wall_s": wall, "stored": digest}


@contextlib.contextmanager
def seeded_uuid4() -> Iterator[None]:
    """uuid.uuid4 drawing from a seeded generator, while the workload is built."""
    rng = random.Random(1)
    real, uuid.uuid4 = uuid.uuid4, lambda: uuid.UUID(int=rng.getrandbits(128), version=4)
    try:
        yield
    finally:
        uuid.uuid4 = real


def stored_digest(ledger: Any) -> str:
    """A digest of every stored event (id, version, topic, state) in notification order.

    The burst's events take their times from the commands, so two checkouts that store the
    same bytes answer the same digest: an optimisation of the writer must not change it.
    """
    import hashlib

    digest = hashlib.sha256()
    start = 1
    while notifications := ledger.process_recorder.select_notifications(start, 1000):
        for n in notifications:
            digest.update(
                b"%s %d %s " % (n.originator_id.bytes, n.originator_version, n.topic.encode())
            )
            digest.update(n.state)
        start = notifications[-1].id + 1
    return digest.hexdigest()


def run_round(checkout: Path, server_url: str, commands: int, accounts: int) -> dict[str, Any]:
    """One round in a subprocess importing `checkout`'s code, on a fresh database."""
    import psycopg
    from psycopg.conninfo import make_conninfo

    name = f"bench_writer_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    env = {**os.environ, "BENCH_CHECKOUT": str(checkout), "LEDGER_LOG_LEVEL": "warning"}
    argv = [sys.executable, __file__, "--round", make_conninfo(server_url, dbname=name)]
    output = subprocess.run(
        [*argv, str(commands), str(accounts)],
        env=env,
        cwd=checkout,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    figures: dict[str, Any] = json.loads(output.splitlines()[-1])
    figures["load_average"] = [round(x, 2) for x in os.getloadavg()]
    return figures


def compare(
    server_url: str, checkouts: dict[str, Path], rounds: int, commands: int, accounts: int
) -> dict[str, Any]:
    """`rounds` rounds of each checkout, alternating which goes first; medians per checkout."""
    from bench.rounds import alternating

    runs = alternating(
        checkouts,
        rounds,
        lambda _, checkout, __: run_round(checkout, server_url, commands, accounts),
    )
    return {label: summary(figures) | {"rounds": figures} for label, figures in runs.items()}


def summary(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """The medians of the rounds: CPU s per 1,000 commands, rows per CPU and wall second."""
    return {
        "cpu_s_per_1000_commands": round(
            statistics.median(1000 * r["cpu_s"] / r["commands"] for r in rounds), 3
        ),
        "rows_per_wall_s": round(statistics.median(r["rows"] / r["wall_s"] for r in rounds)),
        "rows_per_cpu_s": round(statistics.median(r["rows"] / r["cpu_s"] for r in rounds)),
        "stored": sorted({r["stored"] for r in rounds}),  # one digest: every round stored the same
    }


def main(argv: list[str]) -> int:
    if argv and argv[0] == "--round":
        url, commands, accounts = argv[1], int(argv[2]), int(argv[3])
        print(json.dumps(round_figures(url, commands, accounts)))
        return 0
    import argparse
    import tempfile

    from local import embedded

    parser = argparse.ArgumentParser(prog="python -m bench writer", description=__doc__)
    parser.add_argument(
        "--against", type=Path, action="append", default=[], help="another checkout (repeatable)"
    )
    parser.add_argument("--database", help="PostgreSQL server URL (default: an embedded one)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--commands", type=int, default=5000)
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    checkouts = {"this": ROOT} | {path.resolve().name: path.resolve() for path in args.against}
    home = Path(tempfile.mkdtemp(prefix="ledger-bench-"))
    started: frozenset[str] = frozenset()
    server = args.database
    if server is None:
        status, started = embedded.up(home, names=["postgres"])
        server = status.postgres.address
    try:
        before = [round(x, 2) for x in os.getloadavg()]
        figures = compare(server, checkouts, args.rounds, args.commands, args.accounts)
        figures["load_average_before"] = before
    finally:
        embedded.down(home, started)
    from bench.rounds import emit

    return emit(figures, args.out)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
