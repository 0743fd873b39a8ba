"""Fixtures for tests that need real servers: configured ones, or fresh embedded ones per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from service import embedded
from service.config import Settings
from service.kafka import KafkaPythonAdmin
from service.runner import topic_specs
from tests.helpers import Servers


@pytest.fixture(name="servers")
def fixture_servers(tmp_path: Path) -> Iterator[Servers]:
    """A fresh database and a broker with the ledger's topics.

    LEDGER_DATABASE_URL and LEDGER_KAFKA_BOOTSTRAP are used when set (each test gets its own
    database there); otherwise embedded servers are started for the test and stopped after.
    """
    database_url = os.environ.get("LEDGER_DATABASE_URL")
    bootstrap = os.environ.get("LEDGER_KAFKA_BOOTSTRAP")
    home = tmp_path / "ledger-home"
    home.mkdir()
    started: frozenset[str] = frozenset()
    if not database_url or not bootstrap:
        status, started = embedded.up(home)
        database_url = database_url or status.postgres.address
        bootstrap = bootstrap or status.kafka.address
    assert database_url and bootstrap
    test_database = f"test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{test_database}"')
    kafka_admin = KafkaPythonAdmin(bootstrap)
    kafka_admin.ensure_topics(topic_specs(Settings(None, None)))
    kafka_admin.close()
    try:
        yield Servers(make_conninfo(database_url, dbname=test_database), bootstrap)
    finally:
        with psycopg.connect(database_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{test_database}" WITH (FORCE)')
        if started:
            embedded.down(home, started)


def database_name(database_url: str) -> str:
    """The database a URL points at."""
    return str(conninfo_to_dict(database_url).get("dbname"))
