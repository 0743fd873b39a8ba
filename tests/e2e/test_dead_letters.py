"""Dead letters after a crash: written again, with the same id, so consumers can drop copies."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import Servers, command_message, open_account, publish, read_until, wait_for
from tests.processes import balances_row, start_ledger, stop_ledger
from wire.topics import DEAD_LETTER_TOPIC

pytestmark = pytest.mark.integration


class TestDeadLettersAfterACrash:
    """A worker killed after writing dead letters and before storing its position."""

    def test_the_copies_share_one_dead_letter_id(self, servers: Servers, tmp_path: Path) -> None:
        """The restarted ledger writes the dead letter again, with the same id and source."""
        env = {
            "LEDGER_DATABASE_URL": servers.database_url,
            "LEDGER_KAFKA_BOOTSTRAP": servers.kafka_bootstrap,
        }
        publish(
            servers.kafka_bootstrap,
            [(b"acc-d", b"not avro"), command_message("OpenAccount", open_account("acc-d"))],
        )
        killed = start_ledger(
            env | {"LEDGER_CRASH_AT": "commands.after_dead_letters"}, tmp_path / "a.log"
        )
        assert killed.wait(timeout=60) == -9  # it killed itself at the crash point
        ledger = start_ledger(env, tmp_path / "b.log")
        try:
            wait_for(lambda: balances_row(servers.database_url, "acc-d"), timeout_s=60)
        finally:
            assert stop_ledger(ledger) == 0
        copies = read_until(servers.kafka_bootstrap, DEAD_LETTER_TOPIC, lambda f: len(f) >= 2)
        assert len(copies) == 2
        assert copies[0].value == copies[1].value == b"not avro"
        ids = {copy.headers["dead_letter.id"] for copy in copies}
        sources = {
            tuple(
                copy.headers[f"dead_letter.source_{part}"]
                for part in ("topic", "partition", "offset")
            )
            for copy in copies
        }
        assert len(ids) == 1 and len(sources) == 1
