"""What a benchmark watches while the pipeline runs: results, events, stored positions, memory.

Each watcher runs in a thread of the benchmark's process and time-stamps what it sees with
`time.perf_counter()`, so times compare with the publisher's.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field

import psutil
import psycopg

from infra.kafka import KafkaClients, Message
from tests.helpers import CODEC
from wire.topics import EVENTS_TOPIC, RESULTS_TOPIC


@dataclass
class Result:
    """A CommandResult as the benchmark saw it arrive."""

    arrived_at: float
    accepted: bool
    event_ids: tuple[str, ...]


class TopicWatch(threading.Thread):
    """Reads a topic from its end at start on, handing every message to `seen`."""

    def __init__(self, kafka: KafkaClients, topic: str) -> None:
        super().__init__(daemon=True, name=f"watch-{topic}")
        self.reader = kafka.reader()
        self.reader.assign_at_end(topic)  # before anything is published: nothing is missed
        self.stopping = threading.Event()
        self.lock = threading.Lock()

    def run(self) -> None:
        while not self.stopping.is_set():
            messages = self.reader.poll_batch(0.05)
            now = time.perf_counter()
            with self.lock:
                for message in messages:
                    self.seen(message, now)
        self.reader.close()

    def seen(self, message: Message, at: float) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=10)


class ResultsWatch(TopicWatch):
    """Every CommandResult, by command id (a command sent twice has two)."""

    def __init__(self, kafka: KafkaClients) -> None:
        super().__init__(kafka, RESULTS_TOPIC)
        self.results: dict[str, list[Result]] = defaultdict(list)

    def seen(self, message: Message, at: float) -> None:
        record = CODEC.decode(message.value or b"").record
        accepted = record["status"] == "ACCEPTED"
        self.results[record["command_id"]].append(
            Result(at, accepted, tuple(record["event_ids"] or ()))
        )

    def count(self, command_ids: set[str]) -> int:
        """How many results of these commands arrived so far."""
        with self.lock:
            return sum(len(self.results.get(command_id, ())) for command_id in command_ids)


class EventsWatch(TopicWatch):
    """Where each event landed on billing.events: event id -> (partition, offset)."""

    def __init__(self, kafka: KafkaClients) -> None:
        super().__init__(kafka, EVENTS_TOPIC)
        self.where: dict[str, tuple[int, int]] = {}

    def seen(self, message: Message, at: float) -> None:
        headers = dict(message.headers)
        self.where.setdefault(headers["event_id"].decode(), (message.partition, message.offset))


@dataclass
class Samples:
    """Stored positions over time: events stored and relayed (notification ids), projected offsets."""

    stored: list[tuple[float, int]] = field(default_factory=list)
    relayed: list[tuple[float, int]] = field(default_factory=list)
    projected: dict[int, list[tuple[float, int]]] = field(default_factory=lambda: defaultdict(list))

    def projected_at(self, partition: int, offset: int) -> float | None:
        """When every projector had applied `offset` of billing.events' `partition` (None: not yet)."""
        series = self.projected.get(partition, [])
        index = bisect.bisect_left([o for _, o in series], offset)
        return series[index][0] if index < len(series) else None


class PositionSampler(threading.Thread):
    """Samples the stored positions of the writer, the relay and the projectors every `every_s`.

    Only changes are kept. A read-model row exists once its transaction committed, which
    the sample after it sees: times are late by `every_s` at most.
    """

    def __init__(self, database_url: str, every_s: float = 0.01) -> None:
        super().__init__(daemon=True, name="positions")
        self.database_url = database_url
        self.every_s = every_s
        self.samples = Samples()
        self.stopping = threading.Event()

    def run(self) -> None:
        with psycopg.connect(self.database_url, autocommit=True) as connection:
            while not self.stopping.wait(self.every_s):
                self.sample(connection, time.perf_counter())

    def sample(self, connection: psycopg.Connection, at: float) -> None:
        for series, query in (
            (self.samples.stored, "SELECT max(notification_id) FROM billing_events"),
            (self.samples.relayed, "SELECT max(notification_id) FROM ledger_relay_positions"),
        ):
            value = _scalar(connection, query)
            if value is not None and (not series or series[-1][1] != value):
                series.append((at, value))
        rows = _rows(
            connection,
            "SELECT partition, min(last_offset) FROM projection_positions "
            f"WHERE topic = '{EVENTS_TOPIC}' GROUP BY partition",
        )
        for partition, offset in rows:
            series = self.samples.projected[partition]
            if not series or series[-1][1] != offset:
                series.append((at, offset))

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=10)


def _scalar(connection: psycopg.Connection, query: str) -> int | None:
    rows = _rows(connection, query)
    return None if not rows or rows[0][0] is None else int(rows[0][0])


def _rows(connection: psycopg.Connection, query: str) -> list[tuple[int, int]]:
    try:
        return [tuple(row) for row in connection.execute(query).fetchall()]  # type: ignore[misc]
    except psycopg.errors.UndefinedTable:  # not created yet
        return []


class PeakMemory(threading.Thread):
    """The peak resident memory of named processes (each with its children), sampled every 0.2 s."""

    def __init__(self) -> None:
        super().__init__(daemon=True, name="memory")
        self.pids: dict[str, int] = {}
        self.peak_bytes: dict[str, int] = defaultdict(int)
        self.stopping = threading.Event()

    def watch(self, name: str, pid: int | None) -> None:
        """Sample the process `pid` (and its children) as `name` from now on."""
        if pid is not None:
            self.pids[name] = pid

    def run(self) -> None:
        while not self.stopping.wait(0.2):
            for name, pid in list(self.pids.items()):
                self.peak_bytes[name] = max(self.peak_bytes[name], _tree_rss(pid))

    def stop(self) -> dict[str, float]:
        """Stop sampling; the peaks in MiB."""
        self.stopping.set()
        self.join(timeout=10)
        return {name: round(peak / 2**20, 1) for name, peak in self.peak_bytes.items()}


def _tree_rss(pid: int) -> int:
    try:
        process = psutil.Process(pid)
        tree = [process, *process.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    total = 0
    for member in tree:
        try:
            total += member.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total
