"""Every line the ledger logs is one JSON object, libraries' records included."""

from __future__ import annotations

import logging

from structlog.testing import capture_logs

from infra import logs


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
