"""A rebalance while PostgreSQL is down: the partitions that moved resume from their stored offsets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from local import embedded
from tests.helpers import (
    Servers,
    command_message,
    has_partitions_of_both_groups,
    open_account,
    publish,
    subscribe,
    wait_for,
)
from tests.processes import balances_row, start_ledger, stop_ledger

pytestmark = [pytest.mark.integration, pytest.mark.own_postgres]


def log_events(log: Path) -> list[dict[str, object]]:
    """The JSON log lines of a `ledger run`."""
    lines = []
    for line in log.read_text().splitlines():
        try:
            lines.append(json.loads(line))
        except ValueError:
            continue
    return lines


def opened(accounts: list[str]) -> list[tuple[bytes, bytes]]:
    return [
        message
        for account in accounts
        for message in (
            command_message("OpenAccount", open_account(account)),
            command_message("Subscribe", subscribe(account)),
        )
    ]


def projected(database_url: str, accounts: list[str]) -> bool:
    return all(balances_row(database_url, a) == ("EUR", 999, 999, 1) for a in accounts)


class TestRebalanceDuringAnOutage:
    """A worker leaves while PostgreSQL is down; the other takes its partitions over."""

    def test_the_moved_partitions_are_not_read_again_from_offset_0(
        self, servers: Servers, tmp_path: Path
    ) -> None:
        """The seek fails, is retried once PostgreSQL is back, and nothing stored is read again."""
        if servers.embedded_home is None:
            pytest.skip("needs the embedded PostgreSQL, which the test can stop")
        env = {
            "LEDGER_DATABASE_URL": servers.database_url,
            "LEDGER_KAFKA_BOOTSTRAP": servers.kafka_bootstrap,
        }
        stays_log, leaves_log = tmp_path / "stays.log", tmp_path / "leaves.log"
        stays = start_ledger(env, stays_log)
        leaves = start_ledger(env, leaves_log)
        try:
            for log in (stays_log, leaves_log):
                wait_for(lambda lg=log: has_partitions_of_both_groups(lg), 120)
            before = [f"before-{n}" for n in range(30)]
            publish(servers.kafka_bootstrap, opened(before))
            wait_for(lambda: projected(servers.database_url, before), timeout_s=60)
            assert "commands.accepted" in leaves_log.read_text()  # it had partitions of its own

            embedded.down(servers.embedded_home, ["postgres"])
            assert stop_ledger(leaves) == 0  # its partitions move while the database is down
            wait_for(lambda: "commands.seek.failed" in stays_log.read_text(), timeout_s=60)
            embedded.up(servers.embedded_home, names=["postgres"])

            after = [f"after-{n}" for n in range(30)]
            publish(servers.kafka_bootstrap, opened(after))
            wait_for(lambda: projected(servers.database_url, after), timeout_s=90)
        finally:
            for process in (leaves, stays):
                if process.poll() is None:
                    stop_ledger(process)
        events = log_events(stays_log)
        failed = next(i for i, e in enumerate(events) if e.get("event") == "commands.seek.failed")
        resumed = [
            e
            for e in events[failed:]
            if e.get("event") == "commands.partition.resumed" and e.get("stored_offset") is not None
        ]
        assert resumed, "the moved partitions never resumed from their stored offsets"
        reread = [e for e in events[failed:] if e.get("event") == "commands.already_stored"]
        assert reread == []
