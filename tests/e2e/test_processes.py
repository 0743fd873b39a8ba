"""`ledger run --workers 1`: a loop process that dies takes `ledger run` down, and no loop
process outlives `ledger run`, even one killed with SIGKILL."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import psutil
import pytest

from tests.helpers import Servers, command_message, open_account, publish, wait_for
from tests.processes import start_ledger

pytestmark = pytest.mark.integration


def loop_pids(log: Path) -> list[int]:
    """The pids `ledger run` reported with ledger.running; empty until then."""
    for line in log.read_text().splitlines():
        if '"ledger.running"' in line:
            return [int(pid) for pid in json.loads(line)["pids"]]
    return []


@pytest.fixture(name="env")
def fixture_env(servers: Servers) -> dict[str, str]:
    return {
        "LEDGER_DATABASE_URL": servers.database_url,
        "LEDGER_KAFKA_BOOTSTRAP": servers.kafka_bootstrap,
        "LEDGER_WORKERS": "1",
    }


class TestLoopProcesses:
    """The loops' processes live and die with `ledger run`."""

    def test_a_dying_loop_stops_every_loop_and_ledger_run_exits_1(
        self, servers: Servers, env: dict[str, str], tmp_path: Path
    ) -> None:
        """The command process killed at a crash point: the others go too, exit status 1."""
        log = tmp_path / "ledger.log"
        ledger = start_ledger(env | {"LEDGER_CRASH_AT": "commands.after_save"}, log)
        pids = wait_for(lambda: loop_pids(log), timeout_s=120)
        publish(servers.kafka_bootstrap, [command_message("OpenAccount", open_account("acc-p"))])
        assert ledger.wait(timeout=120) == 1
        assert "ledger-commands ended (exit -9)" in log.read_text()
        assert wait_for(lambda: not any(psutil.pid_exists(pid) for pid in pids), timeout_s=30)

    def test_no_loop_outlives_ledger_run_killed_with_sigkill(
        self, env: dict[str, str], tmp_path: Path
    ) -> None:
        """SIGKILL leaves `ledger run` no time to stop its loops: they end by themselves."""
        log = tmp_path / "ledger.log"
        ledger = start_ledger(env, log)
        pids = wait_for(lambda: loop_pids(log), timeout_s=120)
        ledger.send_signal(signal.SIGKILL)
        ledger.wait(timeout=30)
        assert wait_for(lambda: not any(psutil.pid_exists(pid) for pid in pids), timeout_s=30)
