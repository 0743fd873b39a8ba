"""The metrics read model applied a batch at a time leaves the rows its per-event statements left.

The history is the demo's book (60 customers over 12 months: charges failed, dunning,
renegotiation plans defaulted and completed, feedback), stored in memory and read as rebuild
reads it. EXPECTED is what the per-event statements (main at 84f8f61, before the batches)
left in each table: row count and digest of the rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

from demo.book import Book
from projections.metrics import SCHEMA, Metrics
from runtime.history import Event, stored_events_of
from tests.helpers import Servers
from tests.unit.builders import in_memory_ledger
from tests.unit.test_book import play
from wire.codec import AvroCodec

pytestmark = pytest.mark.integration

CHECKSUM = (
    "SELECT count(*), md5(coalesce(string_agg(md5(t::text), '' ORDER BY md5(t::text)), '')) "
    "FROM {} t"
)
EXPECTED = {
    "metrics_invoices": (379, "7901dc6ce92d2871b62d40f6278157ff"),
    "metrics_renegotiations": (6, "a06be41c94ddd80c6ef0ace38f5d2963"),
    "metrics_feedback": (126, "84e34136ce294de5c1fbfd1010f7b7d8"),
}


@pytest.fixture(name="events", scope="module")
def fixture_events() -> list[Event]:
    """The book's events, as rebuild reads them from the store."""
    ledger = in_memory_ledger()
    play(Book(customers=60, months=12), ledger)
    notifications = ledger.recorder.select_notifications(start=1, limit=1_000_000)
    return stored_events_of(ledger.mapper, notifications, AvroCodec())


@pytest.fixture(name="database")
def fixture_database(servers: Servers) -> Iterator[psycopg.Connection[Any]]:
    """A connection whose search path is a new schema holding the metrics tables."""
    with psycopg.connect(servers.database_url) as connection:
        connection.execute("CREATE SCHEMA metrics_batches")
        connection.execute("SET search_path TO metrics_batches")
        connection.execute(SCHEMA)
        yield connection
        connection.rollback()


def applied(database: psycopg.Connection[Any], events: list[Event], size: int) -> dict[str, Any]:
    """The tables' row counts and digests after `events` in batches of `size`."""
    metrics = Metrics()
    with database.cursor() as cursor:
        for start in range(0, len(events), size):
            metrics.apply_batch(cursor, events[start : start + size])
    return {
        table: tuple(
            database.execute(sql.SQL(CHECKSUM).format(sql.Identifier(table))).fetchone() or ()
        )
        for table in metrics.tables
    }


class TestBatches:
    """Whatever the batches, the rows are those of one statement per event."""

    @pytest.mark.parametrize("size", [1, 500, 1_000_000])
    def test_batches_of_any_size(
        self, database: psycopg.Connection[Any], events: list[Event], size: int
    ) -> None:
        """One event at a time, the projector's batches, the whole history at once."""
        assert applied(database, events, size) == EXPECTED

    def test_a_stretch_redelivered(
        self, database: psycopg.Connection[Any], events: list[Event]
    ) -> None:
        """The first half of the history published twice in a row changes nothing more."""
        assert applied(database, events[: len(events) // 2] + events, 500) == EXPECTED
