"""Two `ledger run` workers in one consumer group share the work; joining and leaving lose nothing."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from tests.crash import CrashReport, check, wait_until_quiet, workload
from tests.helpers import (
    Servers,
    command_message,
    has_partitions_of_both_groups,
    publish,
    wait_for,
)
from tests.processes import start_ledger, stop_ledger

pytestmark = pytest.mark.integration


def running(log: Path) -> bool:
    return "ledger.running" in log.read_text()


class TestScaleOut:
    """Workers share the partitions of billing.commands and rebalance without loss or doubling."""

    def test_a_worker_joining_and_one_leaving(self, servers: Servers, tmp_path: Path) -> None:
        """A second worker joins mid-stream, the first leaves mid-stream: the ledger stays exact."""
        commands = workload(240, random.Random(7))
        size = -(-len(commands) // 3)
        thirds = [commands[i : i + size] for i in range(0, len(commands), size)]
        env = {
            "LEDGER_DATABASE_URL": servers.database_url,
            "LEDGER_KAFKA_BOOTSTRAP": servers.kafka_bootstrap,
            "LEDGER_BATCH_SIZE": "20",
        }
        first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"
        first = start_ledger(env, first_log)
        second = None
        try:
            wait_for(lambda: running(first_log), timeout_s=60)
            publish(servers.kafka_bootstrap, [command_message(k, r) for k, r in thirds[0]])
            second = start_ledger(env, second_log)
            wait_for(lambda: running(second_log), timeout_s=60)
            publish(servers.kafka_bootstrap, [command_message(k, r) for k, r in thirds[1]])
            wait_for(lambda: has_partitions_of_both_groups(second_log), timeout_s=120)
            assert stop_ledger(first) == 0  # leaves the group: its partitions move over
            publish(servers.kafka_bootstrap, [command_message(k, r) for k, r in thirds[2]])
            wait_until_quiet(servers.database_url, len({r["command_id"] for _, r in commands}))
        finally:
            if first.poll() is None:
                stop_ledger(first)
            if second is not None:
                assert stop_ledger(second) == 0
        report = CrashReport(commands_sent=len(commands))
        check(servers, commands, report)
        assert (report.duplicates, report.lost, report.read_model_differences) == (0, 0, 0)
        assert report.events_published == report.events_stored > 0
        # Both workers handled commands: the partitions were shared.
        assert "commands.accepted" in first_log.read_text()
        assert "commands.accepted" in second_log.read_text()
