"""`ledger projections rebuild`: the read models built again from the event store equal the live ones."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ledger.application import BillingLedger
from projections.registry import READ_MODELS
from runtime import rebuild
from runtime.runner import open_ledger
from tests.helpers import Servers, kafka_clients
from tests.integration.books import Book, day
from tests.processes import ledger as run_ledger

pytestmark = pytest.mark.integration


@pytest.fixture(name="store")
def fixture_store(servers: Servers) -> Iterator[BillingLedger]:
    """The ledger's event store in the test's PostgreSQL."""
    ledger = open_ledger(servers.database_url)
    yield ledger
    ledger.close()


@pytest.fixture(name="book")
def fixture_book(servers: Servers, store: BillingLedger) -> Iterator[Book]:
    """Three accounts over two months, stored in PostgreSQL and projected live."""
    book = Book(servers.database_url, store)
    for n, account in enumerate(("ann", "ben", "cat")):
        book.open(account)
        book.subscribe(account, day(0), 1000 * (n + 1))
        book.pay(account, day(10), 700 * (n + 1))
        book.tick(account, day(50))
    yield book
    book.close()


class TestRebuild:
    """Rebuilt tables are compared with the live ones, and swapped in when asked."""

    def test_a_rebuild_equals_the_live_read_models(self, book: Book, store: BillingLedger) -> None:
        """Every table of every read model has the same rows; every event is applied."""
        outcome = rebuild.rebuild(store, book.connection.info.dsn, READ_MODELS)
        assert outcome.differences == {}
        assert outcome.events == len(book.messages)

    def test_the_deferred_snapshots_are_made_with_their_progress(
        self, book: Book, store: BillingLedger
    ) -> None:
        """After the pages, each snapshot day (first_day < made_on <= last_day - 7) is made
        once, CATCH_UP_STEP days between reports, the last report at the total."""
        reports: list[tuple[int, int]] = []
        outcome = rebuild.rebuild(
            store,
            book.connection.info.dsn,
            READ_MODELS,
            deferred_progress=lambda done, total: reports.append((done, total)),
        )
        assert outcome.differences == {}
        [(days,)] = book.rows("SELECT last_day - first_day - 7 FROM forecast_snapshot_range")
        assert days > rebuild.CATCH_UP_STEP  # so the work is reported in more than one step
        assert reports[-1] == (days, days)
        assert [done for done, _ in reports] == sorted(
            {min(days, n * rebuild.CATCH_UP_STEP) for n in range(1, len(reports) + 1)}
        )

    def test_a_difference_is_reported_by_table_and_key(
        self, book: Book, store: BillingLedger
    ) -> None:
        """A live row changed by hand is found; --swap puts the rebuilt tables in its place."""
        book.rows("UPDATE balances SET paid_minor = 1 WHERE account_id = 'ben' RETURNING 1")
        outcome = rebuild.rebuild(store, book.connection.info.dsn, READ_MODELS)
        assert list(outcome.differences) == ["balances"]
        assert outcome.differences["balances"] == ["live: ben,EUR", "rebuilt: ben,EUR"]
        swapped = rebuild.rebuild(store, book.connection.info.dsn, READ_MODELS, swap=True)
        assert swapped.swapped
        assert book.rows("SELECT paid_minor FROM balances WHERE account_id = 'ben'") == [(1400,)]
        assert book.rows("SELECT count(*) FROM delinquency_as_of(%s)", day(60)) == [(3,)]

    def test_the_command_exits_non_zero_on_a_difference(self, book: Book, servers: Servers) -> None:
        """`ledger projections rebuild balances` exits 1 naming the table, 0 when equal."""
        env = {"LEDGER_DATABASE_URL": servers.database_url}
        same = run_ledger("projections", "rebuild", "balances", env=env)
        assert same.returncode == 0, same.stderr
        assert "every rebuilt table equals the live one" in same.stdout
        book.rows("UPDATE invoices SET failed_attempts = 9 RETURNING 1")
        differs = run_ledger("projections", "rebuild", "invoices", env=env)
        assert differs.returncode == 1
        assert "invoices: differs from the live table" in differs.stdout


class TestSource:
    """The history comes from billing.events only when the topic holds all of it."""

    def test_auto_takes_the_store_when_the_topic_lacks_events(
        self, book: Book, store: BillingLedger, servers: Servers
    ) -> None:
        """The book's events were never relayed: the topic holds none of them, so the store
        is read (and equals the live models); forced onto the topic, the rebuild reads its
        nothing and every table with rows differs."""
        kafka = kafka_clients(servers.kafka_bootstrap)
        auto = rebuild.rebuild(store, book.connection.info.dsn, READ_MODELS, kafka=kafka)
        assert (auto.source, auto.differences, auto.events) == ("store", {}, len(book.messages))
        forced = rebuild.rebuild(
            store, book.connection.info.dsn, READ_MODELS, kafka=kafka, source="events"
        )
        assert (forced.source, forced.events) == ("events", 0)
        assert {"balances", "postings", "forecast_snapshots"} <= set(forced.differences)
