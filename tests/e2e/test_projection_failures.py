"""One record the projector cannot use stops nothing: it is dead-lettered or recorded, and the rest go on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest

from projections.registry import READ_MODELS
from tests.crash import account_events, expected_ledger
from tests.helpers import (
    CODEC,
    Servers,
    command_message,
    open_account,
    publish,
    read_until,
    subscribe,
    wait_for,
)
from tests.processes import balances_row, start_ledger, stop_ledger
from wire.event_records import ACCOUNT_EVENT_SCHEMAS, account_event_record
from wire.topics import DEAD_LETTER_TOPIC, EVENTS_TOPIC

pytestmark = pytest.mark.integration
LARGEST = 2**63 - 1


def hostile_events() -> list[tuple[bytes, bytes]]:
    """acc-bad's opening and subscription, then two invoices whose sum passes a bigint.

    A command between them (decodable, not an event), and one more event after the failure.
    """
    ledger = expected_ledger(
        [("OpenAccount", open_account("acc-bad")), ("Subscribe", subscribe("acc-bad"))]
    )
    opened, subscribed, invoiced = account_events(ledger)

    def encoded(event: Any, **changes: Any) -> bytes:
        record = account_event_record(event) | changes
        return CODEC.encode(ACCOUNT_EVENT_SCHEMAS[type(event)], record)

    def huge(version: int) -> bytes:
        postings = [
            p | {"amount_minor": LARGEST} for p in account_event_record(invoiced)["postings"]
        ]
        return encoded(
            invoiced,
            account_version=version,
            event_id=str(uuid.uuid4()),
            amount_minor=LARGEST,
            postings=postings,
        )

    key = b"acc-bad"
    return [
        (key, encoded(opened)),
        (key, encoded(subscribed)),
        command_message("OpenAccount", open_account("acc-bad")),  # a command, not an event
        (key, huge(3)),
        (key, huge(4)),  # receivable_minor + 2^63-1 is out of range: the projection fails
        (key, encoded(subscribed, account_version=5, event_id=str(uuid.uuid4()))),
    ]


def status(servers: Servers) -> dict[str, Any]:
    """`ledger projections status --json` on the test's servers."""
    done = subprocess.run(
        [sys.executable, "-m", "runtime.cli", "projections", "status", "--json"],
        env={
            **os.environ,
            "LEDGER_DATABASE_URL": servers.database_url,
            "LEDGER_KAFKA_BOOTSTRAP": servers.kafka_bootstrap,
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    answer: dict[str, Any] = json.loads(done.stdout)
    return answer


class TestAnEventTheProjectorCannotUse:
    """A command on billing.events and an event whose projection fails, between good ones."""

    def test_other_accounts_go_on_and_status_shows_the_failure(
        self, servers: Servers, tmp_path: Path
    ) -> None:
        """acc-good is projected; acc-bad stops at version 3, stale; the command is dead-lettered."""
        publish(servers.kafka_bootstrap, hostile_events(), topic=EVENTS_TOPIC)
        ledger = start_ledger(
            {
                "LEDGER_DATABASE_URL": servers.database_url,
                "LEDGER_KAFKA_BOOTSTRAP": servers.kafka_bootstrap,
            },
            tmp_path / "ledger.log",
        )
        try:
            publish(
                servers.kafka_bootstrap,
                [
                    command_message("OpenAccount", open_account("acc-good")),
                    command_message("Subscribe", subscribe("acc-good")),
                ],
            )
            wait_for(
                lambda: balances_row(servers.database_url, "acc-good") == ("EUR", 999, 999, 1),
                timeout_s=60,
            )
            shown = wait_for(lambda: (s := status(servers))["lag"] == 0 and s, timeout_s=60)
        finally:
            assert stop_ledger(ledger) == 0
        with psycopg.connect(servers.database_url) as connection:
            row = connection.execute(
                "SELECT receivable_minor, account_version FROM balances WHERE account_id = 'acc-bad'"
            ).fetchone()
            failures = connection.execute(
                'SELECT event_type, account_id, "offset", error FROM projection_failures'
            ).fetchall()
        assert row == (LARGEST, 3)  # the failed event rolled back alone; version 5 skipped
        assert [f[:3] for f in failures] == [("InvoiceIssued", "acc-bad", 4)]
        assert "out of range" in failures[0][3]
        assert shown["stale_accounts"] == ["acc-bad"]
        assert [(f["offset"], f["account_id"]) for f in shown["failures"]] == [(4, "acc-bad")]
        assert set(shown["read_models"]) == {model.name for model in READ_MODELS}
        (dead,) = read_until(servers.kafka_bootstrap, DEAD_LETTER_TOPIC, lambda found: found)
        assert dead.headers["dead_letter.reason"] == b"not_an_event"
        assert dead.headers["dead_letter.source_topic"] == EVENTS_TOPIC.encode()
        assert dead.headers["dead_letter.source_offset"] == b"2"
