"""The ledger rides out a PostgreSQL restart: it reconnects with backoff and loses nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from local import embedded
from tests.helpers import Servers, command_message, open_account, publish, subscribe, wait_for
from tests.processes import balances_row, start_ledger, stop_ledger

pytestmark = [pytest.mark.integration, pytest.mark.own_postgres]


class TestPostgresRestart:
    """Commands sent while PostgreSQL is down are processed once it is back."""

    def test_commands_during_an_outage_are_processed_once(
        self, servers: Servers, tmp_path: Path
    ) -> None:
        """Accounts opened before, during and after the outage all reach the read model once."""
        if servers.embedded_home is None:
            pytest.skip("needs the embedded PostgreSQL, which the test can restart")
        ledger = start_ledger(
            {
                "LEDGER_DATABASE_URL": servers.database_url,
                "LEDGER_KAFKA_BOOTSTRAP": servers.kafka_bootstrap,
            },
            tmp_path / "ledger.log",
        )
        try:
            before = [open_account("before"), subscribe("before")]
            publish(
                servers.kafka_bootstrap,
                [
                    command_message("OpenAccount", before[0]),
                    command_message("Subscribe", before[1]),
                ],
            )
            wait_for(
                lambda: balances_row(servers.database_url, "before") == ("EUR", 999, 999, 1),
                timeout_s=30,
            )

            embedded.down(servers.embedded_home, ["postgres"])
            during = [f"during-{n}" for n in range(5)]
            publish(
                servers.kafka_bootstrap,
                [command_message("OpenAccount", open_account(a)) for a in during]
                + [command_message("Subscribe", subscribe(a)) for a in during],
            )
            # The loops fail and back off meanwhile.
            wait_for(lambda: "loop.failed" in (tmp_path / "ledger.log").read_text(), timeout_s=60)
            embedded.up(servers.embedded_home, names=["postgres"])

            publish(
                servers.kafka_bootstrap,
                [
                    command_message("OpenAccount", open_account("after")),
                    command_message("Subscribe", subscribe("after")),
                ],
            )
            for account in [*during, "after"]:
                wait_for(
                    lambda a=account: balances_row(servers.database_url, a) == ("EUR", 999, 999, 1),
                    timeout_s=60,
                )
            assert ledger.poll() is None, "the ledger exited during the outage"
        finally:
            exit_status = stop_ledger(ledger)
        assert exit_status == 0
        log = (tmp_path / "ledger.log").read_text()
        assert "loop.failed" in log  # the outage was seen, and survived


class TestPostgresDownAtStart:
    """`ledger run` started while PostgreSQL is down waits for it, says so, then works."""

    def test_it_waits_with_backoff_and_then_processes_commands(
        self, servers: Servers, tmp_path: Path
    ) -> None:
        """The log says PostgreSQL is unreachable; once it is up, an account is projected."""
        if servers.embedded_home is None:
            pytest.skip("needs the embedded PostgreSQL, which the test can stop")
        embedded.down(servers.embedded_home, ["postgres"])
        log = tmp_path / "ledger.log"
        ledger = start_ledger(
            {
                "LEDGER_DATABASE_URL": servers.database_url,
                "LEDGER_KAFKA_BOOTSTRAP": servers.kafka_bootstrap,
            },
            log,
        )
        try:
            wait_for(lambda: log.read_text().count("postgres.unreachable") >= 2, timeout_s=60)
            assert ledger.poll() is None, "the ledger exited instead of waiting"
            embedded.up(servers.embedded_home, names=["postgres"])
            publish(
                servers.kafka_bootstrap,
                [
                    command_message("OpenAccount", open_account("late")),
                    command_message("Subscribe", subscribe("late")),
                ],
            )
            wait_for(
                lambda: balances_row(servers.database_url, "late") == ("EUR", 999, 999, 1),
                timeout_s=90,
            )
        finally:
            exit_status = stop_ledger(ledger)
        assert exit_status == 0
