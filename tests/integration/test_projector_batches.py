"""The projector's batches: a batch leaves the rows its events leave applied one at a time,
and an event redelivered within the batch (the relay publishes at least once) is applied once.

The book: alice and bob open accounts and subscribe (10.00 and 25.00 a month, due in 14
days); alice pays 15.00 on day 10; both clocks reach day 40 (second invoices, the first of bob
overdue); bob pays 10.00 on day 41. Book applies each event as a batch of one.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from infra.kafka import Message
from projections.projector import CATCH_UP_PER_BATCH, Projector
from projections.registry import READ_MODELS
from projections.snapshot_days import pending_days
from tests.helpers import Servers, kafka_clients
from tests.integration.books import CODEC, Book, day
from wire.event_records import EVENT_SCHEMAS
from wire.topics import EVENTS_TOPIC

pytestmark = pytest.mark.integration

SCHEMA_OF = {name.rpartition(".")[2]: name for name in EVENT_SCHEMAS.values()}
CHECKSUM = (
    "SELECT count(*), md5(coalesce(string_agg(md5(t::text), '' ORDER BY md5(t::text)), '')) "
    "FROM {} t"
)


@pytest.fixture(name="book")
def fixture_book(servers: Servers) -> Iterator[Book]:
    """Alice's and bob's first 41 days, projected one event at a time."""
    book = Book(servers.database_url)
    for account, price_minor in (("alice", 1000), ("bob", 2500)):
        book.open(account)
        book.subscribe(account, day(0), price_minor)
    book.pay("alice", day(10), 1500)
    book.tick("alice", day(40))
    book.tick("bob", day(40))
    book.pay("bob", day(41), 1000)
    yield book
    book.close()


@pytest.fixture(name="other_database")
def fixture_other_database(servers: Servers) -> str:
    """A new, empty database on the test's server."""
    name = f"batches_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(servers.database_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return make_conninfo(servers.database_url, dbname=name)


def messages_of(events: list[tuple[str, dict[str, object]]]) -> list[Message]:
    """The events as billing.events messages of one partition, from offset 0."""
    return [
        Message(EVENTS_TOPIC, 0, offset, None, CODEC.encode(SCHEMA_OF[event_type], record))
        for offset, (event_type, record) in enumerate(events)
    ]


@contextmanager
def projector_on(servers: Servers, database_url: str) -> Iterator[Projector]:
    """The read models' projector writing to `database_url` (its batches given by hand)."""
    kafka = kafka_clients(servers.kafka_bootstrap)
    consumer, producer = kafka.consumer(f"batches-{uuid.uuid4().hex[:6]}"), kafka.producer()
    projector = Projector(
        "read-models", READ_MODELS, consumer, producer, CODEC, database_url, "cluster-a"
    )
    try:
        yield projector
    finally:
        projector.close()
        consumer.close()
        producer.close()


def project_at_once(servers: Servers, database_url: str, messages: list[Message]) -> None:
    """Apply `messages` as one batch of the read models' projector, then its deferred work."""
    with projector_on(servers, database_url) as projector:
        assert projector._apply(messages) == len(messages)
        projector.catch_up()


def pending_snapshot_days(database_url: str) -> int:
    """The forecast snapshot days left to make."""
    with psycopg.connect(database_url) as connection:
        return pending_days(connection)


def checksums(database_url: str) -> dict[str, tuple[object, ...]]:
    """Rows and a digest of them, per read-model table."""
    with psycopg.connect(database_url) as connection:
        return {
            table: tuple(
                connection.execute(sql.SQL(CHECKSUM).format(sql.Identifier(table))).fetchone() or ()
            )
            for model in READ_MODELS
            for table in model.tables
        }


class TestBatches:
    """One batch of many events, against the same events one at a time."""

    def test_a_batch_leaves_the_rows_of_its_events_one_at_a_time(
        self, book: Book, servers: Servers, other_database: str
    ) -> None:
        """Every read-model table holds the same rows, byte for byte."""
        project_at_once(servers, other_database, messages_of(book.messages))
        assert checksums(other_database) == checksums(servers.database_url)

    def test_an_event_redelivered_within_the_batch_is_applied_once(
        self, book: Book, servers: Servers, other_database: str
    ) -> None:
        """A stretch of the history published twice in a row changes nothing more."""
        events = book.messages
        stretch = events[: len(events) // 2]
        project_at_once(servers, other_database, messages_of(stretch + events))
        expected = checksums(servers.database_url)
        assert expected["balances"][0] == 2
        assert checksums(other_database) == expected


class TestDeferredSnapshots:
    """The forecast snapshots, made after the batches, end the same whatever the batching."""

    def test_small_batches_in_another_order_leave_the_same_rows(
        self, book: Book, servers: Servers, other_database: str
    ) -> None:
        """Batches of three events, all of bob's before alice's (business time going back),
        then the idle catch-up: every table equals the one-event-at-a-time book's."""
        events = sorted(book.messages, key=lambda event: event[1]["account_id"] != "bob")
        messages = messages_of(events)
        with projector_on(servers, other_database) as projector:
            for start in range(0, len(messages), 3):
                projector._apply(messages[start : start + 3])
            projector.catch_up()
        assert pending_snapshot_days(other_database) == 0
        assert checksums(other_database) == checksums(servers.database_url)

    def test_a_batch_over_its_budget_leaves_days_pending_until_idle(
        self, book: Book, servers: Servers, other_database: str
    ) -> None:
        """One batch of the whole history makes CATCH_UP_PER_BATCH snapshot days and leaves
        the rest pending; idle polls make them, and the tables equal the book's."""
        with projector_on(servers, other_database) as projector:
            projector._apply(messages_of(book.messages))
            pending = pending_snapshot_days(other_database)
            made = checksums(other_database)["forecast_snapshots"]
            projector.catch_up()
        assert pending > CATCH_UP_PER_BATCH  # 41 days of events: snapshots made on days 1 to 34
        assert made != checksums(servers.database_url)["forecast_snapshots"]
        assert pending_snapshot_days(other_database) == 0
        assert checksums(other_database) == checksums(servers.database_url)
