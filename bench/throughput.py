"""Sustained throughput of `ledger run` on the embedded servers.

Publishes N accounts' OpenAccount + Subscribe (2N commands) as fast as kafka-python can,
then measures how long the ledger takes until every command has its result on
billing.command-results and every account's balances row shows its invoice.

    python bench/throughput.py [--broker tansu|apache-kafka] [N]   (default tansu, 5000 accounts = 10,000 commands)
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import psycopg
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.servers import bench_servers, ledger_env, ledger_running  # noqa: E402
from local import apache_kafka, embedded  # noqa: E402
from tests.helpers import command_message, open_account, subscribe  # noqa: E402


def main(accounts: int = 5000, broker: str = "tansu") -> None:
    os.environ.setdefault("LEDGER_KAFKA_JARS", str(apache_kafka.SHARED_JAR_CACHE))
    with bench_servers(embedded_broker=broker) as servers:
        print(f"broker: {broker}")
        database_url, bootstrap = servers.database("throughput"), servers.bootstrap
        env = ledger_env(database_url, bootstrap)
        with ledger_running(env, servers.home / "ledger.log"):
            time.sleep(4)  # group joins
            started = time.perf_counter()
            publish(bootstrap, accounts)
            published = time.perf_counter()
            print(f"published {2 * accounts} commands in {published - started:.1f} s")
            results_at = wait_for_results(bootstrap, 2 * accounts)
            rows_at = wait_for_rows(database_url, accounts)
        for what, at in (("results", results_at), ("balances rows", rows_at)):
            took = at - started
            print(
                f"all {what}: {took:.1f} s after the first send = {2 * accounts / took:.0f} commands/s"
            )


def publish(bootstrap: str, accounts: int) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    for number in range(accounts):
        producer.send(
            "billing.commands",
            *reversed(command_message("OpenAccount", open_account(f"t-{number}"))),
        )
    for number in range(accounts):
        producer.send(
            "billing.commands", *reversed(command_message("Subscribe", subscribe(f"t-{number}")))
        )
    producer.flush()
    producer.close()


def wait_for_results(bootstrap: str, expected: int) -> float:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, fetch_max_wait_ms=50)
    partitions = consumer.partitions_for_topic("billing.command-results")
    consumer.assign([TopicPartition("billing.command-results", p) for p in partitions])
    consumer.seek_to_beginning()
    seen = 0
    while seen < expected:
        seen += sum(len(batch) for batch in consumer.poll(timeout_ms=200).values())
    consumer.close()
    return time.perf_counter()


def wait_for_rows(database_url: str, accounts: int) -> float:
    with psycopg.connect(database_url, autocommit=True) as connection:
        while True:
            (done,) = connection.execute(
                "SELECT count(*) FROM balances WHERE receivable_minor = 999"
            ).fetchone() or (0,)
            if done >= accounts:
                return time.perf_counter()
            time.sleep(0.1)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--broker", choices=sorted(embedded.BROKERS), default="tansu")
    parser.add_argument("accounts", nargs="?", type=int, default=5000)
    arguments = parser.parse_args()
    main(arguments.accounts, arguments.broker)
