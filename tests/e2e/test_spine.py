"""End to end: `ledger run` as a process, commands from a plain producer, answers on every topic."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from local import embedded
from tests.helpers import (
    Read,
    Servers,
    command_message,
    define_plan,
    open_account,
    publish,
    read_until,
    record_payment,
    subscribe,
    wait_for,
)
from tests.processes import balances_row, start_ledger, stop_ledger

pytestmark = pytest.mark.integration


@pytest.fixture(name="ledger_run")
def fixture_ledger_run(servers: Servers, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`ledger run` against the test's servers."""
    process = start_ledger(
        {
            "LEDGER_DATABASE_URL": servers.database_url,
            "LEDGER_KAFKA_BOOTSTRAP": servers.kafka_bootstrap,
            "LEDGER_HOME": str(tmp_path / "unused-home"),  # never created: both servers are set
        },
        tmp_path / "ledger.log",
    )
    yield process
    if process.poll() is None:
        stop_ledger(process)


def for_account(account_id: str, reads: list[Read]) -> list[Read]:
    return [r for r in reads if r.key == account_id.encode()]


def send_and_wait(servers: Servers, *args: str) -> tuple[int, list[dict[str, object]]]:
    """`ledger send ARGS` waiting for the results: its exit status and the JSON lines it printed."""
    done = subprocess.run(
        [sys.executable, "-m", "runtime.cli", "send", *args, "--timeout", "90"],
        env={**os.environ, "LEDGER_KAFKA_BOOTSTRAP": servers.kafka_bootstrap},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return done.returncode, [json.loads(line) for line in done.stdout.splitlines()]


class TestSendWaits:
    """`ledger send` waits for each command's result and prints it."""

    def test_an_accepted_command_is_printed_with_its_events(
        self, servers: Servers, ledger_run: subprocess.Popen[bytes]
    ) -> None:
        """OpenAccount: ACCEPTED with the id of its one event; exit status 0."""
        status, (printed,) = send_and_wait(
            servers,
            "OpenAccount",
            "--account-id",
            "acc-wait",
            "--currency",
            "EUR",
            "--customer-reference",
            "crm-wait",
        )
        assert status == 0
        assert (printed["type"], printed["account_id"], printed["status"]) == (
            "OpenAccount",
            "acc-wait",
            "ACCEPTED",
        )
        assert isinstance(printed["event_ids"], list) and len(printed["event_ids"]) == 1

    def test_a_rejection_is_printed_with_its_code_and_field(
        self, servers: Servers, ledger_run: subprocess.Popen[bytes], tmp_path: Path
    ) -> None:
        """A Subscribe to an unknown account: REJECTED unknown_account on account_id; status 1."""
        commands = tmp_path / "commands.jsonl"
        commands.write_text(
            json.dumps(
                {
                    "type": "Subscribe",
                    "account_id": "nobody",
                    "subscription_id": "s1",
                    "plan_id": "custom",
                    "price_minor": 900,
                    "currency": "EUR",
                    "interval_unit": "MONTH",
                }
            )
            + "\n"
        )
        status, (printed,) = send_and_wait(servers, "--file", str(commands))
        assert status == 1
        assert printed["status"] == "REJECTED"
        rejection = printed["rejection"]
        assert isinstance(rejection, dict)
        assert (rejection["code"], rejection["field"]) == ("unknown_account", "account_id")


class TestSpine:
    """OpenAccount and Subscribe travel from Kafka to the store, the topics and the read model."""

    def test_commands_reach_events_results_and_balances(
        self, servers: Servers, ledger_run: subprocess.Popen[bytes]
    ) -> None:
        """Events, results and the balances row all appear, consistent with each other."""
        opened, subscribed = open_account("acc-e2e"), subscribe("acc-e2e", price_minor=2500)
        publish(
            servers.kafka_bootstrap,
            [command_message("OpenAccount", opened), command_message("Subscribe", subscribed)],
        )

        row = wait_for(
            lambda: (
                balances_row(servers.database_url, "acc-e2e") == ("EUR", 2500, 2500, 1)
                and balances_row(servers.database_url, "acc-e2e")
            ),
            timeout_s=30,
        )
        assert row == ("EUR", 2500, 2500, 1)

        results = for_account(
            "acc-e2e",
            read_until(
                servers.kafka_bootstrap,
                "billing.command-results",
                lambda found: len(for_account("acc-e2e", found)) >= 2,
            ),
        )
        answers = {r.decoded.record["command_id"]: r.decoded.record for r in results if r.decoded}
        assert answers[opened["command_id"]]["status"] == "ACCEPTED"
        assert answers[subscribed["command_id"]]["status"] == "ACCEPTED"
        assert answers[subscribed["command_id"]]["rejection"] is None

        events = for_account(
            "acc-e2e",
            read_until(
                servers.kafka_bootstrap,
                "billing.events",
                lambda found: len(for_account("acc-e2e", found)) >= 3,
            ),
        )
        assert [e.headers["event_type"] for e in events] == [
            b"AccountOpened",
            b"Subscribed",
            b"InvoiceIssued",
        ]
        event_ids = [e.headers["event_id"].decode() for e in events]
        assert [e.decoded.record["event_id"] for e in events if e.decoded] == event_ids
        assert answers[opened["command_id"]]["event_ids"] == event_ids[:1]
        assert answers[subscribed["command_id"]]["event_ids"] == event_ids[1:]
        positions = [int(e.headers["event_position"]) for e in events]
        assert positions == sorted(positions) and len(set(positions)) == 3
        invoice = events[2].decoded
        assert invoice is not None and invoice.record["postings"] == [
            {"ledger_account": "receivable", "side": "DEBIT", "amount_minor": 2500},
            {"ledger_account": "revenue", "side": "CREDIT", "amount_minor": 2500},
        ]

    def test_rejection_is_published_with_code_field_and_message(
        self, servers: Servers, ledger_run: subprocess.Popen[bytes]
    ) -> None:
        """A Subscribe in the wrong currency is answered REJECTED, naming the rule and field."""
        publish(
            servers.kafka_bootstrap,
            [
                command_message("OpenAccount", open_account("acc-usd", currency="USD")),
                command_message("Subscribe", subscribe("acc-usd")),
            ],
        )
        results = for_account(
            "acc-usd",
            read_until(
                servers.kafka_bootstrap,
                "billing.command-results",
                lambda found: len(for_account("acc-usd", found)) >= 2,
                timeout_s=30,
            ),
        )
        rejected = [
            r.decoded.record
            for r in results
            if r.decoded and r.decoded.record["status"] == "REJECTED"
        ]
        assert len(rejected) == 1
        rejection = rejected[0]["rejection"]
        assert (rejection["code"], rejection["field"]) == ("currency_mismatch", "currency")
        assert "EUR" in rejection["message"] and "USD" in rejection["message"]

    def test_a_payment_settles_the_invoice_and_the_rest_becomes_credit(
        self, servers: Servers, ledger_run: subprocess.Popen[bytes]
    ) -> None:
        """Paying 30.00 on a 25.00 invoice leaves nothing receivable and 5.00 credit."""
        publish(
            servers.kafka_bootstrap,
            [
                command_message("OpenAccount", open_account("acc-pay")),
                command_message("Subscribe", subscribe("acc-pay", price_minor=2500)),
                command_message("RecordPayment", record_payment("acc-pay", amount_minor=3000)),
            ],
        )

        def credit_row() -> tuple[object, ...] | None:
            with psycopg.connect(servers.database_url) as connection:
                try:
                    return connection.execute(
                        "SELECT receivable_minor, customer_credit_minor, invoiced_minor "
                        "FROM balances WHERE account_id = 'acc-pay'"
                    ).fetchone()
                except psycopg.errors.UndefinedTable:
                    return None

        assert wait_for(lambda: credit_row() == (0, 500, 2500), timeout_s=30)
        events = for_account(
            "acc-pay",
            read_until(
                servers.kafka_bootstrap,
                "billing.events",
                lambda found: len(for_account("acc-pay", found)) >= 5,
            ),
        )
        assert [e.headers["event_type"] for e in events][3:] == [b"PaymentReceived", b"InvoicePaid"]

    def test_a_catalogue_plan_is_defined_and_subscribed_to(
        self, servers: Servers, ledger_run: subprocess.Popen[bytes]
    ) -> None:
        """DefinePlan keyed by plan id: a plans row, a result keyed by plan; subscribers pay it."""
        defined = define_plan("e2e-gold", price_minor=4200)
        publish(servers.kafka_bootstrap, [command_message("DefinePlan", defined)])

        def plans_row() -> tuple[object, ...] | None:
            with psycopg.connect(servers.database_url) as connection:
                try:
                    return connection.execute(
                        "SELECT price_minor, currency, plan_version, retired "
                        "FROM plans WHERE plan_id = 'e2e-gold'"
                    ).fetchone()
                except psycopg.errors.UndefinedTable:
                    return None

        assert wait_for(lambda: plans_row() == (4200, "EUR", 1, False), timeout_s=30)
        (result,) = for_account(
            "e2e-gold",
            read_until(
                servers.kafka_bootstrap,
                "billing.command-results",
                lambda found: len(for_account("e2e-gold", found)) >= 1,
            ),
        )
        assert result.decoded is not None
        assert (result.decoded.record["plan_id"], result.decoded.record["account_id"]) == (
            "e2e-gold",
            "",
        )
        assert result.decoded.record["status"] == "ACCEPTED"

        from_catalogue = {
            "plan_id": "e2e-gold",
            "price_minor": None,
            "currency": None,
            "interval_unit": None,
            "interval_count": None,
            "trial_days": None,
        }
        publish(
            servers.kafka_bootstrap,
            [
                command_message("OpenAccount", open_account("acc-cat")),
                command_message("Subscribe", subscribe("acc-cat", **from_catalogue)),
            ],
        )
        assert wait_for(
            lambda: balances_row(servers.database_url, "acc-cat") == ("EUR", 4200, 4200, 1),
            timeout_s=30,
        )

    def test_sigterm_stops_cleanly(
        self, ledger_run: subprocess.Popen[bytes], tmp_path: Path
    ) -> None:
        """SIGTERM, once `ledger run` says it runs, ends it with exit status 0 (within 30 s)."""
        log = tmp_path / "ledger.log"
        wait_for(lambda: "ledger.running" in log.read_text(errors="replace"), timeout_s=180)
        assert stop_ledger(ledger_run) == 0  # stop_ledger fails if it takes over 30 s


class TestEmbeddedDefaults:
    """With nothing configured, `ledger run` starts embedded servers and stops them on exit."""

    def test_run_starts_and_stops_embedded_servers(self, tmp_path: Path, ledger_home: Path) -> None:
        """The embedded servers run while the ledger runs and are stopped after SIGTERM."""
        home = ledger_home
        env = {"LEDGER_HOME": str(home), "LEDGER_DATABASE_URL": "", "LEDGER_KAFKA_BOOTSTRAP": ""}
        process = start_ledger(env, tmp_path / "ledger.log")
        try:
            status = wait_for(
                lambda: (s := embedded.status(home)).kafka.running and s.postgres.running and s,
                timeout_s=150,  # Apache Kafka's JVM may take up to its 120 s start timeout
            )
            assert status.kafka.address and status.postgres.address
        finally:
            exit_status = stop_ledger(process)
        assert exit_status == 0, (tmp_path / "ledger.log").read_text()[-3000:]
        after = embedded.status(home)
        assert not after.kafka.running and not after.postgres.running


class TestClock:
    """`ledger run --clock` advances every account's business time to now."""

    def test_the_clock_invoices_a_cycle_that_began(self, servers: Servers, tmp_path: Path) -> None:
        """Subscribed 40 days ago: the clock's tick issues the second monthly invoice."""
        started = datetime.now(UTC) - timedelta(days=40)
        publish(
            servers.kafka_bootstrap,
            [
                command_message("OpenAccount", open_account("acc-clock", issued_at=started)),
                command_message("Subscribe", subscribe("acc-clock", issued_at=started)),
            ],
        )
        process = start_ledger(
            {
                "LEDGER_DATABASE_URL": servers.database_url,
                "LEDGER_KAFKA_BOOTSTRAP": servers.kafka_bootstrap,
                "LEDGER_CLOCK_INTERVAL_S": "1",
            },
            tmp_path / "ledger.log",
        )
        try:
            row = wait_for(
                lambda: (
                    (r := balances_row(servers.database_url, "acc-clock")) and r[2] == 1998 and r
                ),
                timeout_s=40,
            )
            assert row == ("EUR", 1998, 1998, 1)
        finally:
            assert stop_ledger(process) == 0
        assert "clock.ticked" in (tmp_path / "ledger.log").read_text()
