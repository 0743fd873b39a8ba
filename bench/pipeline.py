"""`python -m bench pipeline`: the whole pipeline as `ledger run` runs it, against the naive baseline.

One run, one set of servers: for each Kafka client (or `--config`) a fresh database and fresh topics, a burst
(end-to-end commands/s, and events/s of the writer, the relay and the projector), then a
steady offered rate (p50 / p99 latencies); then the baseline (bench/baseline.py) on the same
burst. Figures are ratios within one run: the machine's speed varies from day to day.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import psycopg

from bench.mix import Command, encoded, plans, workload
from bench.observe import EventsWatch, PeakMemory, PositionSampler, ResultsWatch, Samples
from bench.servers import BenchServers, ledger_env, ledger_running
from infra.config import Settings
from infra.kafka import KafkaClients, Outgoing, Producer, TopicSpec, clients
from projections.snapshot_days import pending_days
from runtime.runner import topic_specs
from wire.topics import COMMANDS_TOPIC

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
BASELINE_TOPIC = "bench.baseline-commands"
DEADLINE_S = 900.0  # generous: a loaded machine is slow, a stuck pipeline still ends the run


@dataclass
class Watchers:
    """The benchmark's view of one pipeline: results, event positions, stored positions."""

    results: ResultsWatch
    events: EventsWatch
    sampler: PositionSampler

    def completions(self, commands: list[Command]) -> dict[str, tuple[float, float | None]] | None:
        """Per command id: (first result, read-model row) times; None until all are there.

        A rejected command, or one without events, has no read-model time.
        """
        done: dict[str, tuple[float, float | None]] = {}
        with self.results.lock:
            for _, record in commands:
                command_id = record["command_id"]
                results = self.results.results.get(command_id)
                if not results:
                    return None
                first = results[0]
                if not first.accepted or not first.event_ids:
                    done[command_id] = (first.arrived_at, None)
                    continue
                projected = self._projected(first.event_ids)
                if projected is None:
                    return None
                done[command_id] = (first.arrived_at, projected)
        return done

    def _projected(self, event_ids: tuple[str, ...]) -> float | None:
        with self.events.lock:
            where = [self.events.where.get(event_id) for event_id in event_ids]
        if None in where:
            return None
        times = [self.sampler.samples.projected_at(*at) for at in where if at is not None]
        return None if None in times else max(t for t in times if t is not None)

    def wait(self, commands: list[Command]) -> dict[str, tuple[float, float | None]]:
        """Wait until every command has its result and its read-model rows."""
        expected = len(commands)  # a command sent twice is answered twice
        ids = {record["command_id"] for _, record in commands}
        deadline = time.monotonic() + DEADLINE_S
        while time.monotonic() < deadline:
            if self.results.count(ids) >= expected and (done := self.completions(commands)):
                return done
            time.sleep(0.1)
        raise TimeoutError(f"{self.results.count(ids)} of {expected} results in {DEADLINE_S} s")

    def stop(self) -> None:
        for thread in (self.results, self.events, self.sampler):
            thread.stop()


def outgoing(commands: list[Command], topic: str = COMMANDS_TOPIC) -> list[Outgoing]:
    """The commands as messages to `topic`, encoded before any clock starts."""
    return [Outgoing(topic, key, value) for key, value in encoded(commands)]


@dataclass(frozen=True)
class LedgerConfig:
    """One `ledger run` of the benchmark: its label, the variables it runs with, and the
    checkout whose code it runs (None: this one)."""

    label: str
    variables: dict[str, str]
    checkout: Path | None = None

    @classmethod
    def parse(cls, text: str) -> LedgerConfig:
        """`LABEL:VAR=VALUE,VAR=VALUE`, or a bare client name (its own label).

        The pseudo-variable CHECKOUT=PATH runs another checkout's code (e.g. main's) on the
        same servers, so two versions compare within one run.
        """
        label, _, assignments = text.partition(":")
        if not assignments:
            return cls(label, {"LEDGER_KAFKA_CLIENT": label})
        pairs = (item.split("=", 1) for item in assignments.split(",") if item)
        variables = {name.strip(): value.strip() for name, value in pairs}
        checkout = variables.pop("CHECKOUT", None)
        return cls(label, variables, Path(checkout).resolve() if checkout else None)


def pipeline_run(
    servers: BenchServers,
    config: LedgerConfig,
    observer: KafkaClients,
    burst: list[Command],
    steady: list[Command],
    rate: float,
    memory: PeakMemory,
) -> dict[str, Any]:
    """`ledger run` as `config` says: the burst, then the steady rate; the figures of both."""
    label = config.label
    database_url = servers.database(f"bench_{label.replace('-', '_')}")
    servers.fresh_topics(topic_specs(Settings(None, None)))
    watchers = Watchers(
        ResultsWatch(observer), EventsWatch(observer), PositionSampler(database_url)
    )
    for thread in (watchers.results, watchers.events, watchers.sampler):
        thread.start()
    producer = observer.producer()
    # A group of its own: on tansu, members of a group leaving while another joins stalled
    # the next configuration's join for minutes (README, "Running several workers").
    variables = {"LEDGER_CONSUMER_GROUP": f"bench-{label}", **config.variables}
    env = ledger_env(database_url, servers.bootstrap, **variables)
    try:
        log = servers.home / f"ledger-{label}.log"
        with ledger_running(env, log, config.checkout) as process:
            memory.watch(f"ledger run ({label})", process.pid)
            warm_up = plans()
            producer.produce_batch(outgoing(warm_up))
            watchers.wait(warm_up)  # the groups have joined, the tables exist
            load_before = [round(x, 2) for x in os.getloadavg()]
            cpu_before = cpu_seconds(process.pid)
            with profiled(process.pid, servers.home / f"profile-{label}.txt") as profile:
                started = time.perf_counter()
                figures = {"burst": burst_phase(producer, watchers, burst)}
                figures["burst"]["to_snapshots_made_s"] = snapshots_made(database_url, started)
            figures["burst"]["load_average_before_after"] = [
                load_before,
                [round(x, 2) for x in os.getloadavg()],
            ]
            loops = profile.pop("loops", {})
            figures["burst"] |= cpu_figures(cpu_before, cpu_seconds(process.pid), loops, len(burst))
            figures["burst"]["profile"] = profile
            figures["steady"] = steady_phase(producer, watchers, steady, rate)
            return figures
    finally:
        producer.close()
        watchers.stop()


def snapshots_made(database_url: str, started: float, timeout_s: float = 600.0) -> float | None:
    """Seconds from `started` until no forecast snapshot day is pending (the projector makes
    them after the events, projections/snapshot_days.py); None if it never said (older code)."""
    deadline = time.perf_counter() + timeout_s
    with psycopg.connect(database_url, autocommit=True) as connection:
        while time.perf_counter() < deadline:
            try:
                if not pending_days(connection):
                    return round(time.perf_counter() - started, 3)
            except psycopg.errors.UndefinedTable:
                return None
            time.sleep(0.05)
    return None


@contextmanager
def profiled(pid: int, raw: Path) -> Iterator[dict[str, Any]]:
    """py-spy samples `pid` meanwhile (if installed); the answer fills with the summary after."""
    summary: dict[str, Any] = {}
    spy = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
    if spy is None:
        yield summary
        return
    command = [spy, "record", "--pid", str(pid), "--format", "raw", "--rate", "100"]
    recorder = subprocess.Popen(  # --subprocesses: the loops' processes with LEDGER_WORKERS
        [*command, "--nonblocking", "--threads", "--subprocesses", "--output", str(raw)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield summary
    finally:
        recorder.send_signal(signal.SIGINT)
        recorder.wait(timeout=60)
    if raw.exists():
        collapsed = raw.read_text()
        summary.update(summarize_profile(collapsed))
        summary["loops"] = loops_of(collapsed)
        shutil.copy(raw, RESULTS / raw.name)


# py-spy's frame of a process (not of a function named `process`): process 123:"command line"
PROCESS_FRAME = re.compile(r"process (\d+):")
# A frame each loop's process has on its stack, and no other's.
LOOP_FRAMES = {"commands": "CommandConsumer.", "relay": "EventRelay.", "projections": "Projector."}


def loops_of(collapsed: str) -> dict[int, str]:
    """The loop each process of a `--subprocesses` py-spy profile ran, by pid."""
    answer: dict[int, str] = {}
    for line in collapsed.splitlines():
        pids = [int(m.group(1)) for f in line.split(";") if (m := PROCESS_FRAME.match(f))]
        if not pids:
            continue
        pid = pids[-1]
        for loop, frame in LOOP_FRAMES.items():
            if pid not in answer and frame in line:
                answer[pid] = loop
    return answer


def cpu_seconds(pid: int) -> dict[int, float]:
    """The user + system CPU seconds of `pid` and of each process under it, by pid."""
    try:
        root = psutil.Process(pid)
        tree = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return {}
    answer = {}
    for member in tree:
        try:
            times = member.cpu_times()
        except psutil.NoSuchProcess:
            continue
        answer[member.pid] = times.user + times.system
    return answer


def cpu_figures(
    before: dict[int, float], after: dict[int, float], loops: dict[int, str], commands: int
) -> dict[str, Any]:
    """CPU seconds of each loop's process between `before` and `after` (the processes the
    profile named; all of `ledger run` as `total`), and the writer's per 1,000 commands."""
    spent = {pid: after[pid] - before.get(pid, 0.0) for pid in after}
    by_loop = {loop: round(spent.get(pid, 0.0), 2) for pid, loop in sorted(loops.items())}
    answer: dict[str, Any] = {"cpu_s": by_loop | {"total": round(sum(spent.values()), 2)}}
    if "commands" in by_loop:
        answer["writer_cpu_s_per_1000_commands"] = round(1000 * by_loop["commands"] / commands, 3)
    return answer


def summarize_profile(collapsed: str, top: int = 15) -> dict[str, Any]:
    """Shares of samples per thread, and the functions most often on top of the stack or in it."""
    threads: Counter[str] = Counter()
    on_top: Counter[str] = Counter()
    within: Counter[str] = Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        total += count
        threads[frames[0]] += count
        on_top[frames[-1]] += count
        for frame in set(frames[1:]):
            within[frame] += count

    def shares(counter: Counter[str]) -> dict[str, float]:
        return {name: round(100 * n / total, 1) for name, n in counter.most_common(top)}

    return {
        "samples": total,
        "threads_pct": shares(threads),
        "self_pct": shares(on_top),
        "total_pct": shares(within),
    }


def burst_phase(producer: Producer, watchers: Watchers, commands: list[Command]) -> dict[str, Any]:
    """Publish every command at once; how fast each stage got through them."""
    messages = outgoing(commands)
    samples = watchers.sampler.samples
    before = (_last(samples.stored), _last(samples.relayed), _projected_sum(samples))
    started = time.perf_counter()
    producer.produce_batch(messages)
    published = time.perf_counter()
    done = watchers.wait(commands)
    last_result = max(result for result, _ in done.values())
    last_row = max(max(result, row or 0.0) for result, row in done.values())
    stored = _stage(samples.stored, before[0], started)
    relayed = _stage(samples.relayed, before[1], _first_after(samples.stored, started))
    projected = _stage(_projected_total(samples), before[2], _first_after(samples.relayed, started))
    return {
        "commands": len(commands),
        "publish_s": round(published - started, 3),
        "to_results_s": round(last_result - started, 3),
        "to_read_models_s": round(last_row - started, 3),
        "commands_per_s_to_results": round(len(commands) / (last_result - started)),
        "commands_per_s_end_to_end": round(len(commands) / (last_row - started)),
        "notification_log_rows_stored": stored,
        "notification_log_rows_relayed": relayed,
        "events_projected": projected,
    }


def steady_phase(
    producer: Producer, watchers: Watchers, commands: list[Command], rate: float
) -> dict[str, Any]:
    """Publish at `rate` commands/s; latencies from each publication."""
    unique = list({record["command_id"]: (kind, record) for kind, record in commands}.values())
    messages = outgoing(unique)
    sent_at: list[float] = []
    started = time.perf_counter()
    while len(sent_at) < len(messages):
        due = min(len(messages), int((time.perf_counter() - started) * rate) + 1)
        if due > len(sent_at):
            now = time.perf_counter()
            producer.produce_batch(messages[len(sent_at) : due])
            sent_at.extend([now] * (due - len(sent_at)))
        else:
            time.sleep(0.002)
    published = time.perf_counter()
    done = watchers.wait(unique)
    to_result, to_row = [], []
    for (_, record), sent in zip(unique, sent_at, strict=True):
        result, row = done[record["command_id"]]
        to_result.append(result - sent)
        if row is not None:
            to_row.append(max(row, result) - sent)
    return {
        "offered_per_s": rate,
        "commands": len(unique),
        "achieved_publish_per_s": round(len(unique) / (published - started)),
        "publish_to_result_ms": _percentiles(to_result),
        "publish_to_read_model_ms": _percentiles(to_row),
        "commands_with_read_model_rows": len(to_row),
    }


def baseline_run(
    servers: BenchServers, producer: Producer, commands: list[Command], memory: PeakMemory
) -> dict[str, Any]:
    """The naive consumer on its own database and topic, fed the same burst."""
    database_url = servers.database("bench_baseline")
    partitions = Settings(None, None).topic_partitions
    servers.fresh_topics([TopicSpec(BASELINE_TOPIC, partitions, 1)])
    command = [sys.executable, "-m", "bench.baseline", database_url, servers.bootstrap]
    process = subprocess.Popen(
        [*command, BASELINE_TOPIC, str(len(commands))], stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    assert process.stdout is not None
    try:
        memory.watch("baseline", process.pid)
        if process.stdout.readline().strip() != "ready":
            raise RuntimeError("the baseline did not start")
        messages = outgoing(commands, BASELINE_TOPIC)
        started = time.time()
        producer.produce_batch(messages)
        report = json.loads(process.stdout.readline())
    finally:
        process.wait(timeout=60)
    seconds = report["finished_at"] - started
    return {
        "commands": len(commands),
        "to_stored_s": round(seconds, 3),
        "commands_per_s_stored": round(len(commands) / seconds),
        "events_stored": report["events"],
        "cpu_s": round(report["cpu_s"], 2),
    }


def run(
    servers: BenchServers,
    commands: int,
    accounts: int,
    rate: float,
    configs: list[LedgerConfig],
    observer_client: str,
    baseline: bool,
    steady_commands: int | None = None,
) -> dict[str, Any]:
    """Every measurement of one run on `servers`."""
    burst = workload(commands, accounts, seed=1, prefix="burst")
    steady = workload(steady_commands or commands, accounts, seed=2, prefix="steady")
    observer = clients(servers.bootstrap, Settings(None, None, kafka_client=observer_client))
    memory = PeakMemory()
    memory.watch("postgres", servers.postgres_pid)
    memory.watch("broker", servers.broker_pid)
    memory.start()
    figures: dict[str, Any] = {"pipeline": {}}
    for config in configs:
        figures["pipeline"][config.label] = pipeline_run(
            servers, config, observer, burst, steady, rate, memory
        )
    if baseline:
        producer = observer.producer()
        try:
            figures["baseline"] = baseline_run(servers, producer, burst, memory)
        finally:
            producer.close()
    figures["peak_rss_mib"] = memory.stop()
    figures["ratios"] = ratios(figures)
    return figures


def ratios(figures: dict[str, Any]) -> dict[str, float]:
    """Each run's end-to-end and to-results commands/s over the baseline's, and between clients."""
    base = figures.get("baseline", {}).get("commands_per_s_stored")
    answer: dict[str, float] = {}
    for client, run_figures in figures["pipeline"].items():
        burst = run_figures["burst"]
        if base:
            answer[f"{client} end-to-end / baseline"] = round(
                burst["commands_per_s_end_to_end"] / base, 2
            )
            answer[f"{client} to results / baseline"] = round(
                burst["commands_per_s_to_results"] / base, 2
            )
    runs = figures["pipeline"]
    if {"kafka-python", "confluent-kafka"} <= set(runs):
        answer["confluent-kafka / kafka-python end-to-end"] = round(
            runs["confluent-kafka"]["burst"]["commands_per_s_end_to_end"]
            / runs["kafka-python"]["burst"]["commands_per_s_end_to_end"],
            2,
        )
    return answer


def _percentiles(seconds: list[float]) -> dict[str, float]:
    if not seconds:
        return {}
    ms = sorted(s * 1000 for s in seconds)

    def rank(share: float) -> float:
        return round(ms[min(len(ms) - 1, max(0, round(share * len(ms)) - 1))], 1)

    return {"n": len(ms), "p50": rank(0.5), "p99": rank(0.99), "max": round(ms[-1], 1)}


def _last(series: list[tuple[float, int]]) -> int:
    return series[-1][1] if series else 0


def _first_after(series: list[tuple[float, int]], at: float) -> float:
    """When `series` first changed after `at` (`at` itself if it never did)."""
    return next((t for t, _ in series if t > at), at)


def _projected_total(samples: Samples) -> list[tuple[float, int]]:
    """The projected offsets of all partitions summed, as one series (offsets count from 0)."""
    changes = sorted((t, p, o) for p, series in samples.projected.items() for t, o in series)
    current: dict[int, int] = {}
    total = []
    for t, partition, offset in changes:
        current[partition] = offset + 1
        total.append((t, sum(current.values())))
    return total


def _projected_sum(samples: Samples) -> int:
    return _last(_projected_total(samples))


def _stage(series: list[tuple[float, int]], before: int, work_from: float) -> dict[str, float]:
    """How many a stage did since `before`, and how fast: from when it had work to its last."""
    after = _last(series)
    finished = next((t for t, value in series if value == after), work_from)
    seconds = max(finished - work_from, 1e-9)
    return {
        "count": after - before,
        "per_s": round((after - before) / seconds),
        "seconds": round(seconds, 3),
    }
