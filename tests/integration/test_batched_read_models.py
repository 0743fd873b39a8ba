"""The metrics and forecast read models applied a batch at a time leave the rows their
per-event statements left.

The history is the demo's book (60 customers over 12 months: charges failed, dunning,
renegotiation plans defaulted and completed, payments, feedback), stored in memory and read as
rebuild reads it. EXPECTED is what the per-event statements left in each table (metrics: main
at 84f8f61; forecast: main at c8688e3, before their batches): row count and digest of the rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

from demo.book import Book
from projections import forecast, metrics
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
    "forecast_items": (379, "f672106b341fa8e2f347a3dd02d9519c"),
    "forecast_settlements": (480, "f38da419583bdf0d53f0f3684f9dc636"),
    "forecast_payment_methods": (65, "4237e37b2cce83857822ffceab6be19c"),
    "forecast_accounts": (60, "03e559354fd2d851a19e7af5f6b61c35"),
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
    """A connection whose search path is a new schema holding the metrics and forecast tables."""
    with psycopg.connect(servers.database_url) as connection:
        connection.execute("CREATE SCHEMA batched_read_models")
        connection.execute("SET search_path TO batched_read_models")
        connection.execute(metrics.SCHEMA)
        connection.execute(forecast.SCHEMA)
        yield connection
        connection.rollback()


def applied(database: psycopg.Connection[Any], events: list[Event], size: int) -> dict[str, Any]:
    """The tables' row counts and digests after `events` in batches of `size`."""
    models = (metrics.Metrics(), forecast.Forecast())
    with database.cursor() as cursor:
        for start in range(0, len(events), size):
            for model in models:
                model.apply_batch(cursor, events[start : start + size])
    return {
        table: tuple(
            database.execute(sql.SQL(CHECKSUM).format(sql.Identifier(table))).fetchone() or ()
        )
        for model in models
        for table in model.tables
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
