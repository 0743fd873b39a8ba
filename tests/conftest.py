"""Fixtures for tests that need real servers: configured ones, or fresh embedded ones per test."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from infra.config import Settings
from local import embedded
from runtime.runner import topic_specs
from tests.helpers import Servers, kafka_clients


@pytest.fixture(name="ledger_home")
def fixture_ledger_home() -> Iterator[Path]:
    """An empty LEDGER_HOME for embedded servers, outside pytest's own temporary folder.

    The embedded PostgreSQL runs as another user and needs to traverse the folders above its
    data; pytest resets its base folder to mode 0700 whenever a session starts, which would
    crash a server of a session running at the same time.
    """
    home = Path(tempfile.mkdtemp(prefix="ledger-test-"))
    yield home
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(name="servers")
def fixture_servers(ledger_home: Path) -> Iterator[Servers]:
    """A fresh database and a broker with the ledger's topics.

    LEDGER_DATABASE_URL and LEDGER_KAFKA_BOOTSTRAP are used when set (each test gets its own
    database there); otherwise embedded servers are started for the test and stopped after.
    """
    database_url = os.environ.get("LEDGER_DATABASE_URL")
    bootstrap = os.environ.get("LEDGER_KAFKA_BOOTSTRAP")
    home = ledger_home
    started: frozenset[str] = frozenset()
    if not database_url or not bootstrap:
        status, started = embedded.up(home)
        database_url = database_url or status.postgres.address
        bootstrap = bootstrap or status.kafka.address
    assert database_url and bootstrap
    test_database = f"test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{test_database}"')
    kafka_admin = kafka_clients(bootstrap).admin()
    kafka_admin.ensure_topics(topic_specs(Settings(None, None)))
    kafka_admin.close()
    try:
        yield Servers(
            make_conninfo(database_url, dbname=test_database),
            bootstrap,
            home if "postgres" in started else None,
        )
    finally:
        with psycopg.connect(database_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{test_database}" WITH (FORCE)')
        if started:
            embedded.down(home, started)
