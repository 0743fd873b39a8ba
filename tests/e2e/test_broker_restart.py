"""A broker restart: tansu comes back empty and the ledger republishes; Apache Kafka keeps its data.

tansu keeps everything in memory, so a restart is a new cluster: the ledger notices, reports the
loss, republishes, goes on. Apache Kafka comes back with its cluster id and topics, and the ledger
resumes where it was without publishing anything twice.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from local import embedded
from tests.helpers import (
    Servers,
    command_message,
    open_account,
    publish,
    read_until,
    subscribe,
    wait_for,
)
from tests.processes import balances_row, start_ledger, stop_ledger

pytestmark = [pytest.mark.integration, pytest.mark.own_broker]
# Decided before the fixtures start a broker of the test's own only for the test to skip.
configured_broker = bool(os.environ.get("LEDGER_KAFKA_BOOTSTRAP"))
on_tansu = pytest.mark.skipif(
    configured_broker or embedded.broker_kind() != "tansu",
    reason="needs the embedded tansu, which the test can restart",
)
on_apache_kafka = pytest.mark.skipif(
    configured_broker or embedded.broker_kind() != "apache-kafka",
    reason="needs the embedded Apache Kafka, which the test can restart",
)


def log_events(log: Path, name: str) -> list[dict[str, object]]:
    """The JSON log lines of one event name."""
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("event") == name]


def restart_broker(home: Path) -> embedded.EmbeddedStatus:
    """Stop the test's embedded broker and start it again."""
    embedded.down(home, ["kafka"])
    status, _ = embedded.up(home, names=["kafka"])
    return status


class TestBrokerRestart:
    """A new, empty cluster gets the whole event history and new commands are processed."""

    @on_tansu
    def test_history_is_republished_and_the_loss_reported(
        self, servers: Servers, tmp_path: Path
    ) -> None:
        """Events from before the restart reach the new broker; the old offsets are reported."""
        assert servers.embedded_home is not None
        log = tmp_path / "ledger.log"
        ledger = start_ledger(
            {
                "LEDGER_DATABASE_URL": servers.database_url,
                "LEDGER_KAFKA_BOOTSTRAP": servers.kafka_bootstrap,
            },
            log,
        )
        try:
            publish(
                servers.kafka_bootstrap,
                [
                    command_message("OpenAccount", open_account("old")),
                    command_message("Subscribe", subscribe("old")),
                ],
            )
            wait_for(
                lambda: balances_row(servers.database_url, "old") == ("EUR", 999, 999, 1),
                timeout_s=30,
            )

            status = restart_broker(servers.embedded_home)
            assert status.kafka.address == servers.kafka_bootstrap  # same port, new cluster
            replaced = wait_for(lambda: log_events(log, "kafka.cluster.replaced"), timeout_s=60)
            wait_for(lambda: len(log_events(log, "ledger.running")) == 2, timeout_s=60)

            events = read_until(
                servers.kafka_bootstrap,
                "billing.events",
                lambda found: len([r for r in found if r.key == b"old"]) >= 3,
            )
            assert [e.headers["event_type"] for e in events if e.key == b"old"] == [
                b"AccountOpened",
                b"Subscribed",
                b"InvoiceIssued",
            ]

            publish(
                servers.kafka_bootstrap,
                [
                    command_message("OpenAccount", open_account("new")),
                    command_message("Subscribe", subscribe("new")),
                ],
            )
            wait_for(
                lambda: balances_row(servers.database_url, "new") == ("EUR", 999, 999, 1),
                timeout_s=60,
            )
        finally:
            assert stop_ledger(ledger) == 0
        report = replaced[0]
        assert report["processed_up_to"]  # the old cluster's offsets, for the senders to compare
        assert report["old_cluster_id"] != report["new_cluster_id"]
        assert balances_row(servers.database_url, "old") == ("EUR", 999, 999, 1)  # applied once


class TestApacheKafkaRestart:
    """Apache Kafka keeps its data: the ledger resumes without republishing its history."""

    @on_apache_kafka
    def test_the_ledger_resumes_and_publishes_nothing_twice(
        self, servers: Servers, tmp_path: Path
    ) -> None:
        """Same cluster, each event on billing.events once, new commands processed."""
        assert servers.embedded_home is not None
        log = tmp_path / "ledger.log"
        env = {
            "LEDGER_DATABASE_URL": servers.database_url,
            "LEDGER_KAFKA_BOOTSTRAP": servers.kafka_bootstrap,
        }
        ledger = start_ledger(env, log)
        try:
            publish(
                servers.kafka_bootstrap,
                [
                    command_message("OpenAccount", open_account("old")),
                    command_message("Subscribe", subscribe("old")),
                ],
            )
            wait_for(
                lambda: balances_row(servers.database_url, "old") == ("EUR", 999, 999, 1),
                timeout_s=60,
            )
            cluster_before = embedded.status(servers.embedded_home).kafka.detail

            status = restart_broker(servers.embedded_home)
            assert status.kafka.address == servers.kafka_bootstrap
            assert status.kafka.detail == cluster_before  # same cluster id, same log

            publish(
                servers.kafka_bootstrap,
                [
                    command_message("OpenAccount", open_account("new")),
                    command_message("Subscribe", subscribe("new")),
                ],
            )
            wait_for(
                lambda: balances_row(servers.database_url, "new") == ("EUR", 999, 999, 1),
                timeout_s=120,
            )
            events = read_until(
                servers.kafka_bootstrap,
                "billing.events",
                lambda found: len([r for r in found if r.key == b"new"]) >= 3,
            )
        finally:
            assert stop_ledger(ledger) == 0
        assert [e.headers["event_type"] for e in events if e.key == b"old"] == [
            b"AccountOpened",
            b"Subscribed",
            b"InvoiceIssued",
        ]
        assert not log_events(log, "kafka.cluster.replaced")
        assert balances_row(servers.database_url, "old") == ("EUR", 999, 999, 1)
