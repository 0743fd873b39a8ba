"""Effectively once under SIGKILL: every command's effect once, every event published, read models exact."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.crash import crash_run
from tests.helpers import Servers

pytestmark = pytest.mark.integration


class TestCrashes:
    """The ledger killed in each window, and at random, then restarted, loses and doubles nothing."""

    def test_kills_in_every_window_leave_the_ledger_exact(
        self, servers: Servers, tmp_path: Path
    ) -> None:
        """300 accounts (about 1,000 commands with payments and clock ticks), 6 kills: exact."""
        report = crash_run(servers, tmp_path, accounts=300, kills=6, seed=20261124)
        print(report.summary())
        assert report.duplicates == 0
        assert report.lost == 0
        assert report.events_published == report.events_stored > 0
        assert report.read_model_differences == 0
        assert sum(report.kills.values()) == 6
        assert not [mode for mode in report.kills if "not reached" in mode]
