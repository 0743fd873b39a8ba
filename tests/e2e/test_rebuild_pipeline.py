"""Rebuild through the real pipeline: commands on Kafka, `ledger run`, then `ledger projections
rebuild` from billing.events and from the event store; `ledger report forecast|metrics`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from runtime.projections_status import projections_status
from tests.helpers import (
    Servers,
    advance_clock,
    cancel_subscription,
    command_message,
    fail_charge,
    kafka_clients,
    open_account,
    publish,
    record_payment,
    subscribe,
    wait_for,
)
from tests.processes import ledger, start_ledger, stop_ledger

pytestmark = pytest.mark.integration

LAST_DAY = 100


def _commands() -> list[tuple[bytes, bytes]]:
    """ann pays 9.99 a month on time; ben pays 20.00 a month, fails a charge and pays late;
    cat pays 120.00 a year and cancels; every clock runs to day 100 (about 3 months)."""
    messages = [
        command_message("OpenAccount", open_account("ann")),
        command_message("Subscribe", subscribe("ann")),
        command_message("OpenAccount", open_account("ben")),
        command_message("Subscribe", subscribe("ben", price_minor=2000)),
        command_message("OpenAccount", open_account("cat")),
        command_message("Subscribe", subscribe("cat", price_minor=12_000, interval_unit="YEAR")),
        command_message("FailCharge", fail_charge("ben", "sub-1/1", days=14)),
        command_message("CancelSubscription", cancel_subscription("cat", days=20)),
    ]
    for month in range(3):
        day = 30 * month + 10
        messages.append(
            command_message(
                "RecordPayment", record_payment("ann", amount_minor=999) | advance_clock("ann", day)
            )
        )
        messages.append(
            command_message(
                "RecordPayment",
                record_payment("ben", amount_minor=2000) | advance_clock("ben", day + 20),
            )
        )
    messages.append(
        command_message(
            "RecordPayment", record_payment("cat", amount_minor=12_000) | advance_clock("cat", 5)
        )
    )
    for account in ("ann", "ben", "cat"):
        for day in range(10, LAST_DAY + 1, 10):
            messages.append(command_message("AdvanceClock", advance_clock(account, day)))
    return messages


def _settled(servers: Servers, commands: int) -> bool:
    """Every command was handled, the relay published every stored event and the projector
    applied every one."""
    with psycopg.connect(servers.database_url) as connection:
        try:
            handled = connection.execute(
                "SELECT count(*) FROM billing_events WHERE topic = %s",
                ("ledger.receipts:CommandReceipt.Recorded",),
            ).fetchone()
            if not handled or handled[0] < commands:
                return False
            stored = connection.execute(
                "SELECT max(notification_id) FROM billing_events"
            ).fetchone()
            relayed = connection.execute(
                "SELECT max(notification_id) FROM ledger_relay_positions"
            ).fetchone()
        except psycopg.errors.UndefinedTable:
            return False
    if not stored or not relayed or stored[0] != relayed[0]:
        return False
    return projections_status(
        servers.database_url, kafka_clients(servers.kafka_bootstrap)
    ).caught_up


@pytest.fixture(name="book")
def fixture_book(servers: Servers, tmp_path: Path) -> Iterator[Servers]:
    """Three accounts over 100 days through `ledger run`, every event projected; then stopped."""
    process = start_ledger(
        {
            "LEDGER_DATABASE_URL": servers.database_url,
            "LEDGER_KAFKA_BOOTSTRAP": servers.kafka_bootstrap,
            "LEDGER_HOME": str(tmp_path / "unused-home"),
        },
        tmp_path / "ledger.log",
    )
    try:
        commands = _commands()
        publish(servers.kafka_bootstrap, commands)
        wait_for(lambda: _settled(servers, len(commands)), 180, every_s=1.0)
    finally:
        stop_ledger(process)
    yield servers


def _env(servers: Servers, kafka: bool = True) -> dict[str, str]:
    env = {"LEDGER_DATABASE_URL": servers.database_url}
    if kafka:
        env["LEDGER_KAFKA_BOOTSTRAP"] = servers.kafka_bootstrap
    return env


def _count(servers: Servers, table: str) -> int:
    with psycopg.connect(servers.database_url) as connection:
        row = connection.execute(f"SELECT count(*) FROM {table}").fetchone()
    assert row is not None
    return int(row[0])


class TestRebuildThroughThePipeline:
    """Every read model rebuilt from either source equals the one `ledger run` built."""

    def test_from_billing_events_and_from_the_store(self, book: Servers) -> None:
        """The history fills the forecast's snapshots and the metrics (so equality means
        something); the topic holds all of it, so the rebuild reads it; --source store, or no
        broker at all, reads the event store; neither finds a difference."""
        for table in ("forecast_snapshots", "subscription_versions", "metrics_invoices"):
            assert _count(book, table) > 0, table
        runs = [((), _env(book), "billing.events")]
        runs += [(("--source", "store"), _env(book), "the event store")]
        runs += [((), _env(book, kafka=False), "the event store")]
        for args, env, source in runs:
            done = ledger("projections", "rebuild", *args, env=env)
            assert done.returncode == 0, done.stdout + done.stderr
            assert f"read from {source}" in done.stdout
            assert "every rebuilt table equals the live one" in done.stdout


class TestReportsThroughTheCli:
    """`ledger report forecast|metrics` in each format, on the pipeline's book."""

    def test_forecast_and_metrics_in_each_format(self, book: Servers) -> None:
        """Metrics JSON: January's MRR is ann 9.99 + ben 20.00 + cat 120.00 / 12 = 39.99, all
        new; forecast JSON: 90 days, 30 past days each judged by a stored snapshot, a mean row;
        CSV heads each section with `# name`; the table titles its first section."""
        metrics = json.loads(_report(book, "metrics", "json"))
        january = metrics["monthly"][0]
        assert january["period"] == "2026-01"
        assert (january["new_minor"], january["mrr_minor"]) == (3999, 3999)
        forecast = json.loads(_report(book, "forecast", "json"))
        assert len(forecast["days"]) == 90
        assert len(forecast["accuracy"]) == 31 and forecast["accuracy"][-1]["day"] == "mean"
        # every judged day has the forecast stored 7 days before it (snapshots from 16 Jan)
        assert all(row["expected_minor"] is not None for row in forecast["accuracy"][:-1])
        for kind, section in (("forecast", "days"), ("metrics", "monthly")):
            assert f"# {section}\n" in _report(book, kind, "csv")
            assert section in _report(book, kind, "table").splitlines()[0]


def _report(book: Servers, kind: str, output: str) -> str:
    done = ledger("report", kind, "--format", output, env=_env(book, kafka=False))
    assert done.returncode == 0, done.stderr
    return str(done.stdout)
