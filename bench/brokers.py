"""The two embedded brokers side by side: start-up, group join, produce and consume rates.

    .venv/bin/python bench/brokers.py [--broker tansu,apache-kafka] [--messages 20000]

For each broker, one after the other on fresh homes: the time `embedded.up` takes; the time a
consumer of the ledger's factory takes from subscribing to holding its partition, at session
timeouts of 2 s and 6 s (median of three groups); and async produce (acks=all, idempotent,
200-byte values, one partition) and consume rates; each per client library installed, in a
child process given up after MEASUREMENT_TIMEOUT_S.
Figures in bench/README.md ("The two brokers").
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, TimeoutError
from contextlib import contextmanager
from multiprocessing import get_context
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from infra.config import KAFKA_CLIENTS, Settings
from infra.kafka import Outgoing, Partition, TopicSpec, clients
from local import apache_kafka, embedded

VALUE = b"v" * 200
MEASUREMENT_TIMEOUT_S = 180.0
BATCH = 1000  # messages per produce_batch


@contextmanager
def broker(kind: str) -> Iterator[tuple[str, float]]:
    """An embedded broker of `kind` in a throwaway home: its bootstrap and start-up seconds."""
    home = Path(tempfile.mkdtemp(prefix=f"ledger-bench-{kind}-"))
    try:
        started_at = time.perf_counter()
        status, _ = embedded.up(home, broker=kind, names=["kafka"])
        seconds = time.perf_counter() - started_at
        assert status.kafka.address
        yield status.kafka.address, seconds
    finally:
        embedded.down(home)
        shutil.rmtree(home, ignore_errors=True)


def join_seconds(bootstrap: str, session_timeout_ms: int, client: str) -> float:
    """Median time of three fresh groups from subscribing to holding the topic's partition."""
    settings = Settings(None, bootstrap, session_timeout_ms=session_timeout_ms, kafka_client=client)
    kafka = clients(bootstrap, settings)
    topic = f"join-{uuid.uuid4().hex[:8]}"
    kafka.admin().ensure_topics([TopicSpec(topic, 1, 1)])
    times = []
    for _ in range(3):
        consumer = kafka.consumer(f"bench-join-{uuid.uuid4().hex[:8]}")
        started_at = time.perf_counter()
        consumer.subscribe([topic], on_assigned=lambda _: None, on_revoked=lambda _: None)
        while not consumer.assignment():
            consumer.poll_batch(timeout_s=0.05)
        times.append(time.perf_counter() - started_at)
        consumer.close()
    return statistics.median(times)


def joins(bootstrap: str, client: str) -> dict[str, float]:
    """Join times at session timeouts of 2 s and 6 s."""
    return {
        f"session_{timeout_ms}": round(join_seconds(bootstrap, timeout_ms, client), 2)
        for timeout_ms in (2000, 6000)
    }


def rates(bootstrap: str, messages: int, client: str) -> dict[str, float]:
    """Messages per second produced (async, acks=all) and consumed (assigned, from offset 0)."""
    settings = Settings(None, bootstrap, kafka_client=client)
    kafka = clients(bootstrap, settings)
    topic = f"rate-{uuid.uuid4().hex[:8]}"
    kafka.admin().ensure_topics([TopicSpec(topic, 1, 1)])
    producer = kafka.producer()
    started_at = time.perf_counter()
    for start in range(0, messages, BATCH):
        producer.produce_batch([Outgoing(topic, None, VALUE)] * min(BATCH, messages - start))
    produced = messages / (time.perf_counter() - started_at)
    producer.close()
    consumer = kafka.consumer(f"bench-rate-{uuid.uuid4().hex[:8]}")

    def from_the_start(partitions: list[Partition]) -> None:
        for partition in partitions:
            consumer.seek(partition, 0)

    consumer.subscribe([topic], on_assigned=from_the_start, on_revoked=lambda _: None)
    first: list[Any] = []
    while not consumer.assignment():  # the join is measured apart
        first = consumer.poll_batch(timeout_s=0.05)
    read, started_at = len(first), time.perf_counter()
    while read < messages:
        read += len(consumer.poll_batch(timeout_s=1.0))
    consumed = (read - len(first)) / (time.perf_counter() - started_at)
    consumer.close()
    return {"produce_per_s": round(produced), "consume_per_s": round(consumed)}


def measure(kind: str, messages: int, client_names: list[str]) -> dict[str, Any]:
    """Every figure of one broker."""
    with broker(kind) as (bootstrap, start_s):
        found: dict[str, Any] = {"broker": kind, "start_s": round(start_s, 2)}
        for client in client_names:
            found[f"{client} join_s"] = in_child(joins, bootstrap, client)
        for client in client_names:
            found[client] = in_child(rates, bootstrap, messages, client)
        return found


def in_child(measurement: Callable[..., dict[str, float]], *args: Any) -> dict[str, Any]:
    """`measurement(*args)` in a child process, given up after MEASUREMENT_TIMEOUT_S.

    kafka-python 3.0.12's consumer hung here twice on Apache Kafka, for good, inside a poll (its
    I/O thread never ran the fetch the poll waited for): the figure says so instead.
    """
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        future = pool.submit(measurement, *args)
        try:
            return future.result(timeout=MEASUREMENT_TIMEOUT_S)
        except TimeoutError:
            for process in list(pool._processes.values()):  # the hung child
                process.kill()
            return {"hung_after_s": MEASUREMENT_TIMEOUT_S}


def installed_clients() -> list[str]:
    """The client libraries importable here, kafka-python first."""
    names = ["kafka-python"]
    try:
        import confluent_kafka  # noqa: F401
    except ImportError:
        return names
    return [*names, "confluent-kafka"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--broker", default=",".join(embedded.BROKERS))
    parser.add_argument("--messages", type=int, default=20_000)
    args = parser.parse_args()
    os.environ.setdefault("LEDGER_LOG_LEVEL", "warning")
    os.environ.setdefault("LEDGER_KAFKA_JARS", str(apache_kafka.SHARED_JAR_CACHE))
    client_names = [c for c in installed_clients() if c in KAFKA_CLIENTS]
    load_before = os.getloadavg()
    results = [measure(kind, args.messages, client_names) for kind in args.broker.split(",")]
    print(
        json.dumps({"load_before": load_before, "load_after": os.getloadavg(), "results": results})
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
