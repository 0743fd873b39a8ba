"""Crash soak: at least 10,000 commands, the ledger SIGKILLed many times, then exactly-once checks.

    python bench/crash_soak.py [--broker tansu|apache-kafka] [ACCOUNTS] [KILLS] [SEED]
    (default tansu, 4300 accounts ≈ 19,000 commands, 20 kills)

Starts embedded servers in a temporary LEDGER_HOME; see tests/crash.py for what is checked.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import psycopg
from psycopg.conninfo import make_conninfo

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from infra.config import Settings  # noqa: E402
from infra.kafka import clients  # noqa: E402
from local import apache_kafka, embedded  # noqa: E402
from runtime.runner import topic_specs  # noqa: E402
from tests.crash import crash_run  # noqa: E402
from tests.helpers import Servers  # noqa: E402


def main(broker: str, accounts: int, kills: int, seed: int) -> None:
    home = Path(tempfile.mkdtemp(prefix="ledger-soak-"))
    os.environ.setdefault("LEDGER_KAFKA_JARS", str(apache_kafka.SHARED_JAR_CACHE))
    status, _ = embedded.up(home, broker=broker)
    print(f"broker: {status.kafka.detail}")
    try:
        database_url = str(status.postgres.address)
        with psycopg.connect(database_url, autocommit=True) as admin:
            admin.execute("CREATE DATABASE soak")
        admin_client = clients(str(status.kafka.address)).admin()
        admin_client.ensure_topics(topic_specs(Settings(None, None)))
        admin_client.close()
        servers = Servers(
            make_conninfo(database_url, dbname="soak"), str(status.kafka.address), home
        )
        started = time.monotonic()
        report = crash_run(servers, home, accounts=accounts, kills=kills, seed=seed)
        print(report.summary())
        print(f"took: {time.monotonic() - started:.0f} s")
        ok = report.duplicates == 0 and report.lost == 0 and report.read_model_differences == 0
        print("RESULT:", "exact" if ok else "BROKEN")
    finally:
        embedded.down(home)
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--broker", choices=sorted(embedded.BROKERS), default="tansu")
    parser.add_argument("numbers", nargs="*", type=int, help="ACCOUNTS KILLS SEED")
    args = parser.parse_args()
    main(args.broker, *(args.numbers + [4300, 20, 1][len(args.numbers) :]))
