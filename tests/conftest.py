"""Fixtures for tests that need real servers: configured ones, or embedded ones.

One embedded PostgreSQL serves the whole session, each test getting a database of its own. The
embedded broker is LEDGER_EMBEDDED_BROKER's (tansu unless set). tansu starts in a fraction of
a second and is started fresh for each test; Apache Kafka's JVM takes tens of seconds, so one
broker serves the whole session and each test starts on freshly created, empty topics. A test
that stops or restarts a server gets one of its own (the markers own_postgres and own_broker).
"""

from __future__ import annotations

import contextlib
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
    """Declare the markers of tests that stop or restart a server and so need one of their own."""
    config.addinivalue_line(
        "markers", "own_broker: starts an embedded broker for the test alone (it restarts it)"
    )
    config.addinivalue_line(
        "markers",
        "own_postgres: starts an embedded PostgreSQL for the test alone (it stops or restarts it)",
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


@pytest.fixture(name="session_postgres", scope="session")
def fixture_session_postgres() -> Iterator[str | None]:
    """The URL of an embedded PostgreSQL shared by the session, or None (LEDGER_DATABASE_URL).

    Starting one per test cost an initdb and a start and stop each time, seconds on a busy
    machine; a database of its own per test isolates the tests just as well.
    """
    if os.environ.get("LEDGER_DATABASE_URL"):
        yield None
        return
    with _session_home("postgres") as home:
        status, _ = embedded.up(home, names=["postgres"])
        yield status.postgres.address


@pytest.fixture(name="session_broker", scope="session")
def fixture_session_broker() -> Iterator[str | None]:
    """The bootstrap of an Apache Kafka broker shared by the session, or None (tansu, configured)."""
    if os.environ.get("LEDGER_KAFKA_BOOTSTRAP") or embedded.broker_kind() != "apache-kafka":
        yield None
        return
    with _session_home("kafka") as home:
        status, _ = embedded.up(home, names=["kafka"])
        yield status.kafka.address


@contextlib.contextmanager
def _session_home(name: str) -> Iterator[Path]:
    """A LEDGER_HOME for one server of the session's, stopped and deleted at the end."""
    home = Path(tempfile.mkdtemp(prefix=f"ledger-session-{name}-"))
    try:
        yield home
    finally:
        embedded.down(home)
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(name="servers")
def fixture_servers(
    ledger_home: Path,
    session_postgres: str | None,
    session_broker: str | None,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Servers]:
    """A fresh database and a broker with the ledger's topics, empty.

    LEDGER_DATABASE_URL and LEDGER_KAFKA_BOOTSTRAP are used when set (each test gets its own
    database there). Otherwise the session's PostgreSQL gives the test a database of its own,
    and its broker is a tansu started for it alone, or the session's Apache Kafka, whose topics
    are deleted and created anew. A test marked own_postgres or own_broker gets that server
    started for it under `embedded_home` (and stopped after), as it stops or restarts it;
    `embedded_home` is None when the server is a configured one, which the test cannot restart.
    """
    own_postgres = request.node.get_closest_marker("own_postgres") is not None
    own_broker = request.node.get_closest_marker("own_broker") is not None
    database_url = os.environ.get("LEDGER_DATABASE_URL") or (
        None if own_postgres else session_postgres
    )
    bootstrap = os.environ.get("LEDGER_KAFKA_BOOTSTRAP") or (None if own_broker else session_broker)
    needed = [
        name for name, given in (("postgres", database_url), ("kafka", bootstrap)) if not given
    ]
    home = ledger_home
    if needed:
        status, _ = embedded.up(home, names=needed)
        database_url = database_url or status.postgres.address
        bootstrap = bootstrap or status.kafka.address
    if session_broker and bootstrap == session_broker:
        _empty_topics(session_broker)
        # Members of a group a killed ledger left behind must not hold up this test's joins.
        monkeypatch.setenv("LEDGER_CONSUMER_GROUP", f"billing-ledger-{uuid.uuid4().hex[:8]}")
    # The servers a test restarts must be its own, started under its home.
    own = {"postgres"} if own_postgres else set()
    own |= {"kafka"} if own_broker else set()
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
            home if own and own <= set(needed) else None,
        )
    finally:
        with psycopg.connect(database_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{test_database}" WITH (FORCE)')
        if needed:
            # Everything under the test's home, also what the test itself started there.
            embedded.down(home)


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
