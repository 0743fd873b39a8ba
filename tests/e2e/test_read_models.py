"""The read models through the real pipeline: commands on Kafka, `ledger run`, `ledger report`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.helpers import (
    Servers,
    advance_clock,
    command_message,
    fail_charge,
    open_account,
    publish,
    record_payment,
    subscribe,
    wait_for,
)
from tests.processes import ledger, start_ledger, stop_ledger

pytestmark = pytest.mark.integration


@pytest.fixture(name="late_payer")
def fixture_late_payer(servers: Servers, tmp_path: Path) -> Iterator[Servers]:
    """`ledger run` with a late payer: invoice 25.00 (15 January 2026, due 29 January), a card
    charge failed on the due date, the clock on 4 February, 10.00 paid on 5 February."""
    process = start_ledger(
        {
            "LEDGER_DATABASE_URL": servers.database_url,
            "LEDGER_KAFKA_BOOTSTRAP": servers.kafka_bootstrap,
            "LEDGER_HOME": str(tmp_path / "unused-home"),
        },
        tmp_path / "ledger.log",
    )
    try:
        publish(
            servers.kafka_bootstrap,
            [
                command_message("OpenAccount", open_account("acc-late")),
                command_message("Subscribe", subscribe("acc-late", price_minor=2500)),
                command_message("FailCharge", fail_charge("acc-late", "sub-1/1", days=14)),
                command_message("AdvanceClock", advance_clock("acc-late", days=20)),
                command_message(
                    "RecordPayment",
                    record_payment("acc-late", amount_minor=1000)
                    | {"issued_at": advance_clock("acc-late", days=21)["issued_at"]},
                ),
            ],
        )
        wait_for(lambda: _rows(servers, "SELECT paid_minor FROM balances") == [(1000,)], 60)
        yield servers
    finally:
        stop_ledger(process)


def _rows(servers: Servers, query: str) -> list[tuple[Any, ...]] | None:
    with psycopg.connect(servers.database_url) as connection:
        try:
            return connection.execute(query).fetchall()
        except psycopg.errors.UndefinedTable:
            return None


class TestReadModelsThroughTheLedger:
    """Every read model fills from billing.events as `ledger run` projects it."""

    def test_invoice_postings_and_delinquency(self, late_payer: Servers) -> None:
        """The invoice owes 1500 and is overdue after one failed charge; four postings sum to
        zero; the account is in dunning (7 days past due on 5 February)."""
        assert _rows(
            late_payer,
            "SELECT invoice_id, paid_minor, outstanding_minor, status, failed_attempts, "
            "last_payment_method_kind FROM invoices",
        ) == [("sub-1/1", 1000, 1500, "overdue", 1, "bank_transfer")]
        assert _rows(late_payer, "SELECT count(*), sum(signed_minor) FROM postings") == [(4, 0)]
        assert _rows(
            late_payer, "SELECT status, open_minor, overdue_minor, failed_attempts FROM delinquency"
        ) == [("in_dunning", 1500, 1500, 1)]

    def test_aging_report(self, late_payer: Servers) -> None:
        """`ledger report aging --format json`: 1500 in 1-30 days, as of 5 February."""
        done = ledger(
            "report", "aging", "--format", "json",
            env={"LEDGER_DATABASE_URL": late_payer.database_url},
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        document = json.loads(done.stdout)
        assert document["as_of"] == "2026-02-05T09:30:00+00:00"
        assert [(r["account_id"], r["past_due_1_30_minor"]) for r in document["rows"]] == [
            ("acc-late", 1500),
            ("total", 1500),
        ]
