"""`ledger audit reconcile`: a clean book reconciles; each kind of difference is named.

The book is tests/integration/replay_book.py; its live read models are built from the store
by `ledger projections rebuild --swap`'s code, and its topics filled by the real relay.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import psycopg
import pytest
import structlog

from audit.history import History
from audit.reconcile import Difference, read_model_differences, trial_balance
from audit.reconcile_commands import rolled_back_snapshot
from infra.kafka import Outgoing
from infra.postgres import create_tables
from ledger.application import BillingLedger
from outbox.relay import EventRelay
from projections.registry import READ_MODELS
from runtime.cli import main
from runtime.rebuild import rebuild
from runtime.runner import open_ledger
from tests.helpers import CODEC, Servers, kafka_clients, read_until
from tests.integration.audit_book import execute, fixture_database_url, fixture_postgres_url
from tests.integration.replay_book import save_replay_book
from wire.topics import EVENTS_TOPIC, RESULTS_TOPIC

pytestmark = pytest.mark.integration
__all__ = ["fixture_database_url", "fixture_postgres_url"]


def with_read_models(database_url: str) -> BillingLedger:
    """The replay book saved, and its read models built from the store."""
    ledger = open_ledger(database_url)
    save_replay_book(ledger)
    with psycopg.connect(database_url) as connection:
        create_tables(connection, *(model.schema for model in READ_MODELS))
    rebuild(ledger, database_url, READ_MODELS, swap=True)
    return ledger


@pytest.fixture(name="book")
def fixture_book(database_url: str) -> Iterator[BillingLedger]:
    """The replay book, with its read models built from the store."""
    ledger = with_read_models(database_url)
    yield ledger
    ledger.close()


def database_differences(database_url: str) -> list[Difference]:
    """What the trial balance and the read-model check name."""
    with rolled_back_snapshot(database_url) as store:
        _, found = trial_balance(History(store))
        return found + read_model_differences(store.connection, READ_MODELS)


class TestTrialBalance:
    """Debits equal credits per currency, overall and per account."""

    def test_the_book_balances(self, book: BillingLedger, database_url: str) -> None:
        """Every ledger account's debits and credits, per currency; nothing unbalanced."""
        with rolled_back_snapshot(database_url) as store:
            rows, found = trial_balance(History(store))
        assert found == []
        lines = {row["ledger_account"]: row["balance_minor"] for row in rows}
        # acme: 999 + 999 invoiced, 999 paid, 500 credited then applied; beta: 2000 + 2000.
        assert lines["receivable"] == 999 + 999 - 999 - 500 + 2000 + 2000
        assert lines["revenue"] == -(999 * 2 + 2000 * 2) + 500
        assert sum(row["debit_minor"] for row in rows) == sum(row["credit_minor"] for row in rows)

    def test_an_altered_posting_is_named(self, book: BillingLedger, database_url: str) -> None:
        """A posting's amount edited in the store unbalances its account and its currency."""
        execute(
            database_url,
            "UPDATE billing_events SET state = convert_to(regexp_replace(convert_from(state, "
            '\'UTF8\'), \'"side":"DEBIT","amount_minor":500\', '
            '\'"side":"DEBIT","amount_minor":501\'), \'UTF8\') '
            "WHERE topic = 'ledger.account:Account.CreditNoteIssued'",
        )
        with rolled_back_snapshot(database_url) as store:
            _, found = trial_balance(History(store))
        # acme debits: receivable 999 + 999 invoiced, cash 999, revenue 500 given back as
        # credit, customer_credit 500 applied: 3997, one more now; beta's 4000 besides.
        assert [d.describe() for d in found] == [
            "trial balance: account acme (EUR): debits 3998 != credits 3997 (minor units)",
            "trial balance: currency EUR: debits 7998 != credits 7997 (minor units)",
        ]


class TestReadModels:
    """Every read-model table against the events' replay, by key and column."""

    def test_a_clean_book_reconciles(self, book: BillingLedger, database_url: str) -> None:
        """Nothing differs, and the check leaves no schema behind."""
        assert database_differences(database_url) == []
        with psycopg.connect(database_url) as connection:
            left = connection.execute(
                "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'audit_reconcile_%'"
            ).fetchone()
        assert left == (0,)

    def test_an_altered_value(self, book: BillingLedger, database_url: str) -> None:
        """A read-model value edited is named by table, key, column and both values."""
        execute(database_url, "UPDATE balances SET paid_minor = 1 WHERE account_id = 'acme'")
        assert [d.describe() for d in database_differences(database_url)] == [
            "read model balances: account_id=acme: column paid_minor: read model 1, replay 999"
        ]

    def test_a_deleted_row(self, book: BillingLedger, database_url: str) -> None:
        """A row deleted from a read model is named as missing."""
        execute(
            database_url,
            "DELETE FROM invoices WHERE invoice_id = 'sub-1/2' AND account_id = 'beta'",
        )
        assert [d.describe() for d in database_differences(database_url)] == [
            "read model invoices: account_id=beta, invoice_id=sub-1/2: "
            "row in the replay, missing from the read model"
        ]

    def test_an_added_row(self, book: BillingLedger, database_url: str) -> None:
        """A row no event made is named as extra."""
        execute(
            database_url,
            "INSERT INTO balances (account_id, currency, customer_reference, account_version, "
            "updated_at) VALUES ('ghost', 'EUR', 'none', 1, now())",
        )
        assert [d.describe() for d in database_differences(database_url)] == [
            "read model balances: account_id=ghost: row in the read model, not in the replay"
        ]


@pytest.fixture(name="relayed")
def fixture_relayed(servers: Servers, monkeypatch: pytest.MonkeyPatch) -> Iterator[Servers]:
    """The book on the test's servers, relayed to its topics, read models built; the CLI
    pointed at both."""
    ledger = with_read_models(servers.database_url)
    kafka = kafka_clients(servers.kafka_bootstrap)
    admin, producer = kafka.admin(), kafka.producer()
    relay = EventRelay(ledger, producer, CODEC, servers.database_url, admin.cluster_id())
    while relay.run_once():
        pass
    relay.close()
    admin.close()
    producer.close()
    ledger.close()
    monkeypatch.setenv("LEDGER_DATABASE_URL", servers.database_url)
    monkeypatch.setenv("LEDGER_KAFKA_BOOTSTRAP", servers.kafka_bootstrap)
    yield servers
    structlog.reset_defaults()  # main points structlog at the stream pytest captures


def republish(servers: Servers, topic: str, count: int) -> Outgoing:
    """Publish again the first record of `topic` (of `count` there), as a faulty relay would."""
    (first, *_) = read_until(servers.kafka_bootstrap, topic, lambda found: len(found) >= count)
    again = Outgoing(topic, first.key, first.value, tuple(first.headers.items()))
    producer = kafka_clients(servers.kafka_bootstrap).producer()
    producer.produce_batch([again])
    producer.close()
    return again


class TestTopics:
    """billing.events and billing.command-results against the store, through `ledger audit`."""

    def test_a_relayed_book_reconciles(
        self, relayed: Servers, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Books, read models and both topics agree: exit 0, RECONCILED."""
        assert main(["audit", "reconcile"]) == 0
        out = capsys.readouterr().out
        assert out.rstrip().endswith(
            "RECONCILED: books and read models and topics against the event store"
        )

    def test_a_duplicate_event_record(
        self, relayed: Servers, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """An event published twice is named with both offsets: exit 1."""
        again = republish(relayed, EVENTS_TOPIC, 1)
        event_id = dict(again.headers)["event_id"].decode()
        assert main(["audit", "reconcile", "--format", "json"]) == 1
        printed = json.loads(capsys.readouterr().out)
        assert printed["reconciled"] is False
        (difference,) = printed["differences"]
        assert difference["check"] == EVENTS_TOPIC
        assert f"(event {event_id}) is on the topic 2 times" in difference["detail"]

    def test_a_command_answered_twice(
        self, relayed: Servers, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A result published twice names its command: it was answered twice."""
        again = republish(relayed, RESULTS_TOPIC, 1)
        command_id = dict(again.headers)["command_id"].decode()
        assert main(["audit", "reconcile"]) == 1
        out = capsys.readouterr().out
        assert f"result of command {command_id} (Recorded)" in out and "2 times" in out

    def test_a_stray_result(self, relayed: Servers, capsys: pytest.CaptureFixture[str]) -> None:
        """A result of no receipt in the store is named by partition and offset."""
        producer = kafka_clients(relayed.kafka_bootstrap).producer()
        stray = (("event_type", b"CommandResult"), ("event_id", b"not-a-receipt"))
        producer.produce_batch([Outgoing(RESULTS_TOPIC, b"acme", b"", stray)])
        producer.close()
        assert main(["audit", "reconcile"]) == 1
        assert "a record of no stored event (event_id not-a-receipt)" in capsys.readouterr().out
