"""The servers a benchmark runs on, and `ledger run` started against them as a process.

Embedded PostgreSQL and broker under a temporary LEDGER_HOME unless a broker or a database
is given; every benchmark of one run shares them, so its figures compare with each other.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
from kafka import KafkaAdminClient
from psycopg.conninfo import make_conninfo

from infra.config import Settings
from infra.kafka import TopicSpec, clients
from local import embedded
from runtime.runner import topic_specs
from tests.processes import start_ledger, stop_ledger

# Group joins take about half the session timeout on the embedded broker (shared/MEASURED.md).
SESSION_TIMEOUT_MS = 2000


@dataclass(frozen=True)
class BenchServers:
    """Where the benchmark's PostgreSQL server and broker are, and their processes if embedded."""

    server_url: str  # the PostgreSQL server; each measurement makes its own database there
    bootstrap: str
    home: Path
    postgres_pid: int | None = None
    broker_pid: int | None = None

    def database(self, name: str) -> str:
        """A new, empty database `name` on the server (dropped first if it was there)."""
        with psycopg.connect(self.server_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.execute(f'CREATE DATABASE "{name}"')
        return make_conninfo(self.server_url, dbname=name)

    def fresh_topics(self, specs: list[TopicSpec]) -> None:
        """Delete the topics of `specs` if they exist, then create them empty."""
        names = [spec.name for spec in specs]
        admin = KafkaAdminClient(bootstrap_servers=self.bootstrap)
        try:
            existing = [name for name in names if name in set(admin.list_topics())]
            if existing:
                admin.delete_topics(existing)
            deadline = time.monotonic() + 30
            while set(names) & set(admin.list_topics()) and time.monotonic() < deadline:
                time.sleep(0.2)
        finally:
            admin.close()
        ledger_admin = clients(self.bootstrap).admin()
        try:
            ledger_admin.ensure_topics(specs)
        finally:
            ledger_admin.close()


@contextmanager
def bench_servers(
    broker: str | None = None, database: str | None = None, embedded_broker: str | None = None
) -> Iterator[BenchServers]:
    """The given broker and PostgreSQL server, embedded ones (`embedded_broker`: tansu or
    apache-kafka) for what is not given."""
    home = Path(tempfile.mkdtemp(prefix="ledger-bench-"))
    started: frozenset[str] = frozenset()
    try:
        postgres_pid = broker_pid = None
        if broker is None or database is None:
            status, started = embedded.up(home, broker=embedded_broker)
            database = database or str(status.postgres.address)
            broker = broker or str(status.kafka.address)
            postgres_pid = status.postgres.pid if "postgres" in started else None
            broker_pid = status.kafka.pid if "kafka" in started else None
        servers = BenchServers(database, broker, home, postgres_pid, broker_pid)
        servers.fresh_topics(topic_specs(Settings(None, None)))
        yield servers
    finally:
        if started:
            embedded.down(home, started)
        shutil.rmtree(home, ignore_errors=True)


def ledger_env(database_url: str, bootstrap: str, **variables: str) -> dict[str, str]:
    """The environment of a `ledger run` on these servers: quiet logs, quick group joins."""
    return {
        "LEDGER_DATABASE_URL": database_url,
        "LEDGER_KAFKA_BOOTSTRAP": bootstrap,
        "LEDGER_SESSION_TIMEOUT_MS": str(SESSION_TIMEOUT_MS),
        "LEDGER_LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "warning"),
        **variables,
    }


@contextmanager
def ledger_running(
    env: dict[str, str], log: Path, checkout: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """`ledger run` as a process with `env`, its output in `log`; stopped with SIGTERM on exit.

    `checkout`: another checkout of the ledger whose code runs instead of this one's.
    """
    process = start_ledger(env, log, checkout)
    try:
        yield process
    finally:
        stop_ledger(process)
