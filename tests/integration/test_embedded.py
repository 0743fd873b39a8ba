"""The embedded PostgreSQL and Kafka broker start, report, stop and restart as real servers."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import psutil
import psycopg
import pytest
from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from structlog.testing import capture_logs

from local import embedded
from local.embedded import EmbeddedStatus

pytestmark = pytest.mark.integration


@pytest.fixture(name="home")
def fixture_home(ledger_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh ledger home on tansu, whose servers are stopped whatever the test did.

    The mechanics of up, down and status are the same for both brokers; they are tested on the
    one that starts in a fraction of a second, and TestApacheKafka covers what differs.
    """
    monkeypatch.setenv("LEDGER_EMBEDDED_BROKER", "tansu")
    yield ledger_home
    embedded.down(ledger_home)


@pytest.fixture(name="started")
def fixture_started(home: Path) -> tuple[EmbeddedStatus, frozenset[str]]:
    """Both servers started in the fresh home."""
    return embedded.up(home)


@pytest.fixture(name="running")
def fixture_running(started: tuple[EmbeddedStatus, frozenset[str]]) -> EmbeddedStatus:
    """The status right after both servers started."""
    return started[0]


def kafka_cluster_id(bootstrap: str) -> str:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        return str(admin.describe_cluster()["cluster_id"])
    finally:
        admin.close()


def is_alive(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


class TestUp:
    """up() starts both servers and reports where to reach them."""

    def test_starts_both_servers_and_reports_them_running(
        self, started: tuple[EmbeddedStatus, frozenset[str]]
    ) -> None:
        """A fresh home gets both servers, each running with a pid and an address."""
        status, names = started
        assert names == {"postgres", "kafka"}
        assert status.postgres.running and status.postgres.pid
        assert status.postgres.address and status.postgres.address.startswith("postgresql://")
        assert status.kafka.running and status.kafka.pid
        assert status.kafka.address and status.kafka.address.startswith("127.0.0.1:")

    def test_postgres_url_reaches_the_ledger_database(self, running: EmbeddedStatus) -> None:
        """The reported URL connects to the `ledger` database."""
        assert running.postgres.address
        with psycopg.connect(running.postgres.address) as connection:
            row = connection.execute("SELECT 1, current_database()").fetchone()
        assert row == (1, "ledger")

    def test_kafka_bootstrap_accepts_a_new_topic(self, running: EmbeddedStatus) -> None:
        """A topic created through the reported bootstrap is listed afterwards."""
        admin = KafkaAdminClient(bootstrap_servers=running.kafka.address)
        try:
            admin.create_topics([NewTopic("billing.test", num_partitions=1, replication_factor=1)])
            assert "billing.test" in admin.list_topics()
        finally:
            admin.close()

    def test_second_up_starts_nothing_and_keeps_addresses(
        self, home: Path, running: EmbeddedStatus
    ) -> None:
        """Calling up() again is a no-op answering the same servers."""
        again, names = embedded.up(home)
        assert names == frozenset()
        assert again == running

    def test_logs_each_start_with_pid_and_address(self, home: Path) -> None:
        """Each started server leaves one structured log line."""
        with capture_logs() as logs:
            status, _ = embedded.up(home)
        started = {entry["event"]: entry for entry in logs if entry["event"].endswith(".started")}
        assert started["embedded.postgres.started"]["pid"] == status.postgres.pid
        assert started["embedded.postgres.started"]["address"] == status.postgres.address
        assert started["embedded.kafka.started"]["address"] == status.kafka.address

    def test_records_both_servers_in_the_state_file(
        self, home: Path, running: EmbeddedStatus
    ) -> None:
        """embedded.json holds each server's pid and address."""
        state = json.loads((home / "embedded.json").read_text())
        assert state["postgres"]["pid"] == running.postgres.pid
        assert state["postgres"]["url"] == running.postgres.address
        assert state["kafka"]["bootstrap"] == running.kafka.address
        assert state["kafka"]["cluster_id"] == kafka_cluster_id(state["kafka"]["bootstrap"])


class TestDown:
    """down() stops the servers, and a later up() starts them again."""

    def test_stops_both_servers(self, home: Path, running: EmbeddedStatus) -> None:
        """After down() neither server runs and their processes are gone."""
        stopped = embedded.down(home)
        assert not stopped.postgres.running and not stopped.kafka.running
        assert embedded.status(home) == stopped
        for pid in (running.postgres.pid, running.kafka.pid):
            assert pid is not None and not is_alive(pid)

    def test_stops_only_the_named_server(self, home: Path, running: EmbeddedStatus) -> None:
        """down(names=["kafka"]) leaves PostgreSQL running."""
        after = embedded.down(home, ["kafka"])
        assert not after.kafka.running
        assert after.postgres == running.postgres

    def test_restart_of_tansu_gives_a_new_kafka_cluster_and_keeps_postgres_data(
        self, home: Path, running: EmbeddedStatus
    ) -> None:
        """A stopped broker comes back as a new cluster; PostgreSQL tables survive."""
        assert running.postgres.address and running.kafka.address
        with psycopg.connect(running.postgres.address) as connection:
            connection.execute("CREATE TABLE kept (note text)")
            connection.execute("INSERT INTO kept VALUES ('before restart')")
        cluster_before = kafka_cluster_id(running.kafka.address)

        embedded.down(home)
        restarted, names = embedded.up(home)

        assert names == {"postgres", "kafka"}
        assert restarted.kafka.address
        assert kafka_cluster_id(restarted.kafka.address) != cluster_before
        assert restarted.postgres.address
        with psycopg.connect(restarted.postgres.address) as connection:
            rows = connection.execute("SELECT note FROM kept").fetchall()
        assert rows == [("before restart",)]


class TestStatus:
    """status() believes live processes, not the records alone."""

    def test_nothing_runs_in_a_fresh_home(self, home: Path) -> None:
        """A home without records reports both servers not started."""
        status = embedded.status(home)
        assert not status.postgres.running and not status.kafka.running
        assert "not started" in status.kafka.detail

    def test_a_recorded_pid_of_another_program_is_not_running(self, home: Path) -> None:
        """A pid reused by some other process does not count as the broker."""
        record = {
            "pid": os.getpid(),
            "bootstrap": "127.0.0.1:9",
            "cluster_id": "ledger-0",
            "log": str(home / "kafka.log"),
        }
        (home / "embedded.json").write_text(json.dumps({"kafka": record}))
        kafka = embedded.status(home).kafka
        assert not kafka.running and kafka.address is None
        assert f"process {os.getpid()} is not the recorded tansu" in kafka.detail

    def test_as_dict_is_json_ready(self, running: EmbeddedStatus) -> None:
        """The status serializes to JSON with the home as a string."""
        document = json.loads(json.dumps(running.as_dict()))
        assert document["home"] == str(running.home)
        assert document["kafka"]["address"] == running.kafka.address


class TestApacheKafka:
    """The embedded Apache Kafka keeps its cluster across restarts, and says what it needs."""

    def test_restart_keeps_the_cluster_id_and_the_topics(self, ledger_home: Path) -> None:
        """Stopped and started again: same address, same cluster id, the topic still there."""
        if embedded.broker_kind() != "apache-kafka":
            pytest.skip("runs in the pass on Apache Kafka (LEDGER_EMBEDDED_BROKER=apache-kafka)")
        try:
            running, _ = embedded.up(ledger_home, names=["kafka"])
            assert running.kafka.address and "apache-kafka" in running.kafka.detail
            cluster_before = kafka_cluster_id(running.kafka.address)
            admin = KafkaAdminClient(bootstrap_servers=running.kafka.address)
            try:
                admin.create_topics([NewTopic("billing.kept", 1, 1)])
            finally:
                admin.close()
            with pytest.raises(embedded.EmbeddedError, match="is apache-kafka, not tansu"):
                embedded.up(ledger_home, broker="tansu", names=["kafka"])

            embedded.down(ledger_home, ["kafka"])
            assert not embedded.status(ledger_home).kafka.running
            restarted, names = embedded.up(ledger_home, names=["kafka"])

            assert names == {"kafka"}
            assert restarted.kafka.address == running.kafka.address
            assert kafka_cluster_id(restarted.kafka.address) == cluster_before
            admin = KafkaAdminClient(bootstrap_servers=restarted.kafka.address)
            try:
                assert "billing.kept" in admin.list_topics()
            finally:
                admin.close()
        finally:
            embedded.down(ledger_home)

    def test_without_java_the_error_says_what_to_install(
        self, ledger_home: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """No java on PATH: the error names Java and Maven, and that tansu needs neither."""
        monkeypatch.setenv("PATH", str(ledger_home))
        monkeypatch.setenv("LEDGER_KAFKA_JARS", str(ledger_home / "jars"))
        with pytest.raises(embedded.EmbeddedError) as raised:
            embedded.up(ledger_home, broker="apache-kafka", names=["kafka"])
        message = str(raised.value)
        assert "is not on PATH" in message
        assert "Java 17" in message and "Maven" in message and "tansu" in message
