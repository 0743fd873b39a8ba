"""Every line the ledger logs is one JSON object, libraries' records included."""

from __future__ import annotations

import logging

import pytest
import structlog
from structlog.testing import capture_logs

from infra import logs
from infra.config import ConfigError, Settings


class TestLibraryRecords:
    """Records of the standard logging module go through structlog's one writer."""

    def test_a_library_warning_becomes_a_structlog_event(self) -> None:
        """Its logger name, level and (masked) message arrive as event fields."""
        logs.configure("info")
        with capture_logs() as captured:
            logging.getLogger("kafka.conn").warning("broker %s down; password=%s", "b1", "pw")
        assert captured == [
            {
                "logger": "kafka.conn",
                "event": "broker b1 down; password=***",
                "log_level": "warning",
            }
        ]

    def test_configuring_twice_keeps_one_handler(self) -> None:
        """Each record is written once."""
        logs.configure("info")
        logs.configure("debug")
        handlers = [h for h in logging.getLogger().handlers if isinstance(h, logs.ToStructlog)]
        assert len(handlers) == 1


class TestFormat:
    """JSON lines when piped, readable columns on a terminal, LEDGER_LOG_FORMAT over both."""

    def test_a_terminal_gets_the_console_format(self) -> None:
        """Nothing asked: console on a terminal, JSON elsewhere."""
        assert logs.chosen_format(None, is_terminal=True) == "console"
        assert logs.chosen_format(None, is_terminal=False) == "json"

    def test_the_variable_wins(self) -> None:
        """LEDGER_LOG_FORMAT decides whatever stderr is."""
        assert logs.chosen_format("json", is_terminal=True) == "json"
        assert logs.chosen_format("console", is_terminal=False) == "console"

    def test_each_format_has_its_renderer(self) -> None:
        """console renders with structlog's ConsoleRenderer, json with its JSONRenderer."""
        try:
            logs.configure("info", "console")
            console = structlog.get_config()["processors"][-1]
        finally:
            logs.configure("info", "json")
        json_renderer = structlog.get_config()["processors"][-1]
        assert isinstance(console, structlog.dev.ConsoleRenderer)
        assert isinstance(json_renderer, structlog.processors.JSONRenderer)

    def test_an_unknown_format_is_refused(self) -> None:
        """A typo in the variable stops the ledger with a message naming it."""
        with pytest.raises(ConfigError, match="LEDGER_LOG_FORMAT"):
            Settings.from_env({"LEDGER_LOG_FORMAT": "yaml"})
