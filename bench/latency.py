"""End-to-end latency of single commands through `ledger run` on the embedded servers.

For each of N accounts, publishes OpenAccount then Subscribe (waiting for each to finish
before the next) and measures, from the producer's acknowledgement:
  - result:   the CommandResult arriving on billing.command-results;
  - balances: the balances row showing the command's effect.

    python bench/latency.py [N]      (default 20; results go to bench/RESULTS.md by hand)
"""

from __future__ import annotations

import statistics
import sys
import threading
import time
from pathlib import Path

import psycopg
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.servers import bench_servers, ledger_env, ledger_running  # noqa: E402
from tests.helpers import CODEC, command_message, open_account, subscribe  # noqa: E402


def main(count: int = 20) -> None:
    with bench_servers() as servers:
        database_url = servers.database("latency")
        env = ledger_env(database_url, servers.bootstrap)
        with ledger_running(env, servers.home / "ledger.log"):
            measure(database_url, servers.bootstrap, count)


def measure(database_url: str, bootstrap: str, count: int) -> None:
    arrivals: dict[str, float] = {}
    stop = threading.Event()
    threading.Thread(target=watch_results, args=(bootstrap, arrivals, stop), daemon=True).start()
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
    connection = psycopg.connect(database_url, autocommit=True)
    warm_up(producer, connection, arrivals)
    to_result, to_row = [], []
    for number in range(count):
        account = f"bench-{number}"
        for command_type, record, expected in (
            ("OpenAccount", open_account(account), 0),
            ("Subscribe", subscribe(account), 999),
        ):
            key, value = command_message(command_type, record)
            producer.send("billing.commands", key=key, value=value).get(timeout=10)
            sent = time.perf_counter()
            row_at = wait(lambda a=account, e=expected: receivable(connection, a) == e)
            result_at = wait(lambda c=record["command_id"]: arrivals.get(c))
            to_row.append(row_at - sent)
            to_result.append(result_at - sent)
    stop.set()
    report("command -> result on billing.command-results", to_result)
    report("command -> balances row", to_row)


def warm_up(
    producer: KafkaProducer, connection: psycopg.Connection, arrivals: dict[str, float]
) -> None:
    record = open_account("bench-warm-up")
    producer.send("billing.commands", *reversed(command_message("OpenAccount", record)))
    wait(lambda: receivable(connection, "bench-warm-up") == 0, timeout_s=60)
    wait(lambda: arrivals.get(record["command_id"]), timeout_s=60)


def watch_results(bootstrap: str, arrivals: dict[str, float], stop: threading.Event) -> None:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, fetch_max_wait_ms=10)
    partitions = consumer.partitions_for_topic("billing.command-results")
    consumer.assign([TopicPartition("billing.command-results", p) for p in partitions])
    consumer.seek_to_beginning()
    while not stop.is_set():
        for batch in consumer.poll(timeout_ms=50).values():
            for message in batch:
                arrivals[CODEC.decode(message.value).record["command_id"]] = time.perf_counter()


def receivable(connection: psycopg.Connection, account_id: str) -> int | None:
    try:
        row = connection.execute(
            "SELECT receivable_minor FROM balances WHERE account_id=%s", (account_id,)
        ).fetchone()
    except psycopg.errors.UndefinedTable:
        return None
    return None if row is None else int(row[0])


def wait(condition, timeout_s: float = 10.0) -> float:  # type: ignore[no-untyped-def]
    deadline = time.perf_counter() + timeout_s
    while time.perf_counter() < deadline:
        answer = condition()
        if answer is not None and answer is not False:
            return answer if isinstance(answer, float) else time.perf_counter()
        time.sleep(0.002)
    raise TimeoutError("not reached in time")


def report(what: str, seconds: list[float]) -> None:
    ms = sorted(s * 1000 for s in seconds)
    p95 = ms[max(0, round(0.95 * len(ms)) - 1)]
    print(
        f"{what}: n={len(ms)} median={statistics.median(ms):.0f} ms p95={p95:.0f} ms max={ms[-1]:.0f} ms"
    )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20)
