"""Specification of `ledger run --workers N`: which processes it starts."""

from __future__ import annotations

import pytest

from infra.config import ConfigError, Settings
from runtime.processes import loop_names
from runtime.runner import loops_runner, run_on_cluster


class TestLayout:
    """Threads of one process by default; N command processes, a relay and projections with N."""

    def test_no_workers_runs_the_loops_as_threads(self) -> None:
        """LEDGER_WORKERS unset: the loops of one process, as before."""
        assert loops_runner(Settings.from_env({})) is run_on_cluster

    def test_workers_give_every_loop_a_process(self) -> None:
        """Two workers: two command processes, one relay, one projections process."""
        settings = Settings.from_env({"LEDGER_WORKERS": "2"})
        assert loops_runner(settings) is not run_on_cluster
        assert loop_names(settings) == ["commands", "commands", "relay", "projections"]

    def test_the_clock_gets_a_process_when_asked_for(self) -> None:
        """With a clock interval, the clock is one more process."""
        settings = Settings.from_env({"LEDGER_WORKERS": "1", "LEDGER_CLOCK_INTERVAL_S": "60"})
        assert loop_names(settings) == ["commands", "relay", "projections", "clock"]

    @pytest.mark.parametrize("raw", ["-1", "two"])
    def test_a_bad_worker_count_is_refused(self, raw: str) -> None:
        """A negative or non-numeric LEDGER_WORKERS is a configuration error."""
        with pytest.raises(ConfigError, match="LEDGER_WORKERS"):
            Settings.from_env({"LEDGER_WORKERS": raw})
