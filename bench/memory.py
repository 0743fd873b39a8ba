"""`python -m bench memory`: the memory of each `ledger run` process as the book grows.

One `ledger run` with LEDGER_WORKERS=1 (commands, relay and projections in processes of their
own) is fed bench/mix.py's commands chunk by chunk, as fast as the writer keeps up: a chunk
goes out only while the commands not yet handled stay under a window (and, with
`events_ahead`, the events not yet projected), so the figures are the pipeline's, not the
publisher's. Each time another `--checkpoint` commands are handled it records every process's
resident memory now (VmRSS, and PSS / USS from smaps_rollup: shared pages count once), the
commands and events per second since the last checkpoint, the CPU seconds of each process,
and the load average; then, while the projector catches up, the same every minute.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import psycopg

from bench.mix import plans, workload
from bench.observe import TopicWatch, _tree_rss
from bench.pipeline import RESULTS, cpu_seconds, outgoing, snapshots_made
from bench.servers import BenchServers, bench_servers, ledger_env, ledger_running
from infra.config import Settings
from infra.kafka import KafkaClients, Message, clients
from runtime.processes import loop_names
from runtime.runner import topic_specs
from wire.topics import COMMANDS_TOPIC, EVENTS_TOPIC

CHUNK = 2_000  # commands per publication
COMMANDS_AHEAD = 10_000  # published, not yet handled
DRAIN_SAMPLE_S = 60.0  # while the projector catches up after the last command
WAIT_S = 1800.0  # a stuck pipeline still ends the run

HANDLED = (
    "SELECT coalesce(sum(notification_id + 1), 0) FROM billing_tracking "
    "WHERE application_name LIKE %s"
)
PROJECTED = (
    "SELECT coalesce(sum(last_offset + 1), 0) FROM (SELECT partition, min(last_offset) AS "
    "last_offset FROM projection_positions WHERE topic = %s GROUP BY partition) p"
)


class EventCount(TopicWatch):
    """How many messages billing.events holds since the start (counted, not kept)."""

    def __init__(self, kafka: KafkaClients) -> None:
        super().__init__(kafka, EVENTS_TOPIC)
        self.count = 0

    def seen(self, message: Message, at: float) -> None:
        self.count += 1


def process_memory(pid: int) -> dict[str, float]:
    """MiB of `pid` now: resident (VmRSS), its peak (VmHWM), proportional (PSS) and unique (USS)."""
    status = _kib_fields(Path(f"/proc/{pid}/status"))
    rollup = _kib_fields(Path(f"/proc/{pid}/smaps_rollup"))
    unique = rollup.get("Private_Clean", 0) + rollup.get("Private_Dirty", 0)
    return {
        "rss": round(status.get("VmRSS", 0) / 1024, 1),
        "hwm": round(status.get("VmHWM", 0) / 1024, 1),
        "pss": round(rollup.get("Pss", 0) / 1024, 1),
        "uss": round(unique / 1024, 1),
    }


def _kib_fields(path: Path) -> dict[str, int]:
    """The `Name:  123 kB` lines of a /proc file, in KiB (empty if the process has gone)."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return {}
    answer = {}
    for line in lines:
        name, _, value = line.partition(":")
        parts = value.split()
        if len(parts) == 2 and parts[1] == "kB":
            answer[name] = int(parts[0])
    return answer


def ledger_processes(pid: int, settings: Settings) -> dict[str, int]:
    """`ledger run`'s processes by role: itself, its fork server and each loop's (in the
    order they were started, runtime/processes.py)."""
    root = psutil.Process(pid)
    answer = {"ledger run": pid}
    for child in root.children():
        if any("forkserver" in part for part in child.cmdline()):
            answer["fork server"] = child.pid
            loops = sorted(child.children(), key=lambda p: (p.create_time(), p.pid))
            names = loop_names(settings)
            if len(loops) != len(names):
                names = [f"loop {n}" for n in range(len(loops))]
            answer |= {name: loop.pid for name, loop in zip(names, loops, strict=True)}
    return answer


@dataclass
class Checkpoints:
    """The samples taken so far, and what the next one needs."""

    every: int
    processes: dict[str, int]
    servers: BenchServers
    out: Path
    head: dict[str, Any]
    taken: list[dict[str, Any]] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)
    next_at: int = 0

    def due(self, handled: int) -> bool:
        """Whether `handled` reached the next checkpoint (which moves on past it)."""
        if handled < self.next_at:
            return False
        self.next_at = (handled // self.every + 1) * self.every
        return True

    def take(self, handled: int, projected: int, events: int, label: str | None = None) -> None:
        """Memory, CPU and rates now, against the previous sample."""
        now = time.perf_counter()
        cpu = {name: cpu_seconds(pid).get(pid, 0.0) for name, pid in self.processes.items()}
        last = self.taken[-1] if self.taken else None
        seconds = now - (last["_at"] if last else self.started)
        sample: dict[str, Any] = {
            "checkpoint": label or f"{handled:,}",
            "commands_handled": handled,
            "events_projected": projected,
            "events_on_topic_not_projected": events - projected,
            "elapsed_s": round(now - self.started, 1),
            "commands_per_s": round(
                (handled - (last["commands_handled"] if last else 0)) / seconds
            ),
            "events_projected_per_s": round(
                (projected - (last["events_projected"] if last else 0)) / seconds
            ),
            "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()],
            "memory_mib": {name: process_memory(pid) for name, pid in self.processes.items()},
            "servers_rss_mib": {
                name: round(_tree_rss(pid) / 2**20, 1)
                for name, pid in (
                    ("postgres", self.servers.postgres_pid),
                    ("broker", self.servers.broker_pid),
                )
                if pid is not None
            },
            "cpu_s_since_last": {
                name: round(cpu[name] - (last["_cpu"][name] if last else 0.0), 2) for name in cpu
            },
            "_at": now,
            "_cpu": cpu,
        }
        self.taken.append(sample)
        print(json.dumps({k: v for k, v in sample.items() if not k.startswith("_")}), flush=True)
        self.write()

    def write(self, tail: dict[str, Any] | None = None) -> None:
        """The result file as it stands: `head`, every sample so far, then `tail`."""
        samples = [{k: v for k, v in s.items() if not k.startswith("_")} for s in self.taken]
        result = self.head | {"checkpoints": samples} | (tail or {})
        self.out.write_text(json.dumps(result, indent=2) + "\n")


@dataclass(frozen=True)
class Plan:
    """What one run does: the mix's size, the samples, the pacing and the time it may take."""

    commands: int
    accounts: int
    every: int  # commands handled between samples
    events_ahead: int | None  # at most this many events not yet projected (None: no limit)
    drain_s: float  # how long the projector may catch up after the last command
    out: Path  # rewritten after every sample


def run(servers: BenchServers, plan: Plan, variables: dict[str, str], head: dict[str, Any]) -> None:
    """Feed `ledger run` the mix chunk by chunk; a sample every `plan.every` commands handled,
    each written to `plan.out` with `head` as soon as taken."""
    commands, every = plan.commands, plan.every
    events_ahead = plan.events_ahead if plan.events_ahead is not None else 2**62
    messages = outgoing(workload(commands, plan.accounts, seed=1, prefix="mem"))
    database_url = servers.database("bench_memory")
    servers.fresh_topics(topic_specs(Settings(None, None)))
    observer = clients(servers.bootstrap, Settings(None, None, kafka_client="confluent-kafka"))
    events = EventCount(observer)
    events.start()
    producer = observer.producer()
    env = ledger_env(database_url, servers.bootstrap, **variables)
    settings = Settings(None, None, workers=int(variables.get("LEDGER_WORKERS", "0")))
    try:
        with (
            ledger_running(env, servers.home / "ledger-memory.log") as process,
            psycopg.connect(database_url, autocommit=True) as connection,
        ):
            producer.produce_batch(outgoing(plans()))
            _wait(lambda: _handled(connection) >= 1)  # the groups have joined, the tables exist
            processes = ledger_processes(process.pid, settings)
            checkpoints = Checkpoints(
                every, processes, servers, plan.out, head | {"processes": processes}
            )
            checkpoints.take(0, _projected(connection), events.count, label="start")
            checkpoints.next_at = every
            published = 0
            while True:
                handled = _handled(connection) - 1
                projected = _projected(connection)
                if checkpoints.due(handled):
                    checkpoints.take(handled, projected, events.count)
                if handled >= len(messages):
                    break
                room = published - handled < COMMANDS_AHEAD
                if published < len(messages) and room and events.count - projected < events_ahead:
                    producer.produce_batch(messages[published : published + CHUNK])
                    published = min(len(messages), published + CHUNK)
                else:
                    time.sleep(0.2)
            handled_at = time.perf_counter()
            while time.perf_counter() - handled_at < plan.drain_s:
                if events.count == _projected(connection) > 0 and _stable(events):
                    drained = time.perf_counter()
                    snapshots_s = snapshots_made(database_url, drained, plan.drain_s)
                    checkpoints.take(len(messages), _projected(connection), events.count, "drained")
                    checkpoints.write({"snapshots_made_after_drained_s": snapshots_s})
                    return
                if time.perf_counter() - checkpoints.taken[-1]["_at"] >= DRAIN_SAMPLE_S:
                    label = f"catching up +{time.perf_counter() - handled_at:.0f} s"
                    checkpoints.take(len(messages), _projected(connection), events.count, label)
                time.sleep(0.5)
            checkpoints.take(len(messages), _projected(connection), events.count, "not drained")
    finally:
        producer.close()
        events.stop()


def _stable(events: EventCount, quiet_s: float = 2.0) -> bool:
    """No new message on billing.events for `quiet_s`."""
    before = events.count
    time.sleep(quiet_s)
    return events.count == before


def _wait(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not done in {WAIT_S} s")
        time.sleep(0.2)


def _handled(connection: psycopg.Connection) -> int:
    """Commands the writer has stored positions past (the warm-up's plan included)."""
    return _count(connection, HANDLED, f"%/{COMMANDS_TOPIC}/%")


def _projected(connection: psycopg.Connection) -> int:
    """Events every projector has applied, over billing.events' partitions."""
    return _count(connection, PROJECTED, EVENTS_TOPIC)


def _count(connection: psycopg.Connection, query: str, parameter: str) -> int:
    try:
        row = connection.execute(query, (parameter,)).fetchone()
    except psycopg.errors.UndefinedTable:  # not created yet
        return 0
    return int(row[0]) if row else 0


def main(
    commands: int,
    accounts: int,
    every: int,
    client: str,
    events_ahead: int | None,
    drain_s: float,
    out: Path | None,
) -> int:
    """The benchmark on embedded servers; the JSON under bench/results/."""
    from bench.machine import machine

    variables = {"LEDGER_WORKERS": "1", "LEDGER_KAFKA_CLIENT": client}
    started = time.strftime("%Y-%m-%dT%H%M%SZ", time.gmtime())
    plan = Plan(
        commands, accounts, every, events_ahead, drain_s, out or RESULTS / f"memory-{started}.json"
    )
    with bench_servers() as servers:
        head = {
            "started": started,
            "parameters": {
                "commands": commands,
                "accounts": accounts,
                "checkpoint": every,
                "ledger_run": variables,
                # what else ledger run inherits (e.g. LEDGER_ACCOUNT_CACHE_EVENTS)
                "environment": {k: v for k, v in os.environ.items() if k.startswith("LEDGER_")},
                "chunk": CHUNK,
                "commands_ahead": COMMANDS_AHEAD,
                "events_ahead": events_ahead,
                "drain_s": drain_s,
            },
            "machine": machine(servers.server_url),
        }
        run(servers, plan, variables, head)
    print(f"written to {plan.out}")
    return 0
