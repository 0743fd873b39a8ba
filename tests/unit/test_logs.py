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


class TestBound:
    """`bound` binds fields for a block and gives back what was bound before."""

    def test_lines_in_the_block_carry_the_fields_and_later_ones_the_old_values(self) -> None:
        """Inside, the block's fields; after it, the outer value again and no block field."""
        with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as lines:
            with structlog.contextvars.bound_contextvars(topic="outer"):
                with logs.bound(topic="inner", offset=7):
                    structlog.get_logger().warning("inside")
                structlog.get_logger().warning("after")
            structlog.get_logger().warning("outside")
        inside, after, outside = lines
        assert (inside["topic"], inside["offset"]) == ("inner", 7)
        assert after["topic"] == "outer" and "offset" not in after
        assert "topic" not in outside

    def test_the_fields_are_unbound_when_the_block_raises(self) -> None:
        """An exception leaving the block unbinds its fields all the same."""
        with pytest.raises(ZeroDivisionError), logs.bound(command_id="c-1"):
            raise ZeroDivisionError
        assert "command_id" not in structlog.contextvars.get_contextvars()
