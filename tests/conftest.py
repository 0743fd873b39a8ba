"""Fixtures for tests that need real servers: configured ones, or embedded ones.

The embedded broker is LEDGER_EMBEDDED_BROKER's (tansu unless set). tansu starts in a fraction of
a second and is started fresh for each test; Apache Kafka's JVM takes tens of seconds, so one
broker serves the whole session and each test starts on freshly created, empty topics.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from kafka import KafkaAdminClient
from psycopg.conninfo import make_conninfo

from infra.config import Settings
from local import apache_kafka, embedded
from runtime.runner import topic_specs
from tests.browser import BrowserMissing, ensure_chromium
from tests.helpers import Servers, kafka_clients, wait_for

# Apache Kafka's jars are fetched once per machine, not once per test's home.
os.environ.setdefault("LEDGER_KAFKA_JARS", str(apache_kafka.SHARED_JAR_CACHE))


def pytest_configure(config: pytest.Config) -> None:
    """Declare the marker of tests that stop or restart the broker and so need one of their own."""
    config.addinivalue_line(
        "markers", "own_broker: starts an embedded broker for the test alone (it restarts it)"
    )


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


@pytest.fixture(name="session_broker", scope="session")
def fixture_session_broker() -> Iterator[str | None]:
    """The bootstrap of an Apache Kafka broker shared by the session, or None (tansu, configured)."""
    if os.environ.get("LEDGER_KAFKA_BOOTSTRAP") or embedded.broker_kind() != "apache-kafka":
        yield None
        return
    home = Path(tempfile.mkdtemp(prefix="ledger-session-kafka-"))
    try:
        status, _ = embedded.up(home, names=["kafka"])
        yield status.kafka.address
    finally:
        embedded.down(home)
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(name="servers")
def fixture_servers(
    ledger_home: Path,
    session_broker: str | None,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Servers]:
    """A fresh database and a broker with the ledger's topics, empty.

    LEDGER_DATABASE_URL and LEDGER_KAFKA_BOOTSTRAP are used when set (each test gets its own
    database there); otherwise embedded servers are started for the test and stopped after,
    except the session's Apache Kafka, whose topics are deleted and created anew instead.
    """
    database_url = os.environ.get("LEDGER_DATABASE_URL")
    bootstrap = os.environ.get("LEDGER_KAFKA_BOOTSTRAP")
    home = ledger_home
    shared = session_broker if request.node.get_closest_marker("own_broker") is None else None
    needed = [
        name
        for name, given in (("postgres", database_url), ("kafka", bootstrap or shared))
        if not given
    ]
    started: frozenset[str] = frozenset()
    if needed:
        status, started = embedded.up(home, names=needed)
        database_url = database_url or status.postgres.address
        bootstrap = bootstrap or shared or status.kafka.address
    if shared:
        bootstrap = shared
        _empty_topics(shared)
        # Members of a group a killed ledger left behind must not hold up this test's joins.
        monkeypatch.setenv("LEDGER_CONSUMER_GROUP", f"billing-ledger-{uuid.uuid4().hex[:8]}")
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


def _empty_topics(bootstrap: str) -> None:
    """Delete every topic but the broker's own (named __*), and wait until they are gone."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        doomed = [name for name in admin.list_topics() if not name.startswith("__")]
        if doomed:
            admin.delete_topics(doomed, timeout_ms=30_000)
        wait_for(lambda: not set(doomed) & set(admin.list_topics()), timeout_s=60)
    finally:
        admin.close()


@pytest.fixture(name="chromium", scope="session")
def fixture_chromium() -> str:
    """Debian's chromium for tests of pages, installed with apt-get when it is missing."""
    try:
        return ensure_chromium()
    except BrowserMissing as error:
        pytest.fail(str(error))
