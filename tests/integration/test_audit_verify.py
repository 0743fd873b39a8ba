"""`ledger audit verify` finds every row altered, deleted, added or moved directly in PostgreSQL."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import psycopg
import pytest

from audit.store import snapshot
from audit.verify import Broken, Verified, verify
from ledger.application import BillingLedger
from runtime.runner import open_ledger
from tests.integration.audit_book import (
    COMMANDS,
    DEAD_LETTERS_ONLY,
    execute,
    fixture_database_url,
    fixture_key,
    fixture_ledger,
    fixture_postgres_url,
    save_book,
)

pytestmark = pytest.mark.integration
__all__ = ["fixture_database_url", "fixture_key", "fixture_ledger", "fixture_postgres_url"]
BATCHES = 13  # 36 commands, three per batch, and one batch of positions only


def verified(database_url: str) -> Verified | Broken:
    """What verify says about the store now."""
    with snapshot(database_url) as store:
        return verify(store)


def broken(database_url: str) -> Broken:
    """What verify says about a store that must be broken."""
    result = verified(database_url)
    assert isinstance(result, Broken), result
    return result


def batch_of(database_url: str, position: int) -> int:
    """The batch whose head holds `position`."""
    with snapshot(database_url) as store:
        sealed = store.head_holding(position)
    assert sealed is not None
    return sealed.head.batch


class TestIntactHistory:
    """A history nobody touched verifies, and its heads say when and from where."""

    def test_the_sample_book_verifies(self, ledger: BillingLedger, database_url: str) -> None:
        """Every event, head, link and position holds."""
        result = verified(database_url)
        assert isinstance(result, Verified), result
        assert result.batches == BATCHES
        assert result.events == result.last_position == ledger.recorder.max_notification_id()

    def test_heads_record_time_and_kafka_positions(self, database_url: str) -> None:
        """Each head has the writer's clock, never going back, and the offsets its batch stored."""
        before = datetime.now(UTC)
        ledger = open_ledger(database_url)
        save_book(ledger)
        ledger.close()
        with snapshot(database_url) as store:
            heads = [sealed.head for sealed in store.heads()]
        times = [head.recorded_at for head in heads]
        assert before <= times[0] and times == sorted(times) and times[-1] <= datetime.now(UTC)
        assert heads[0].sources == ((COMMANDS, 2),)
        assert heads[-1].sources == ((DEAD_LETTERS_ONLY, 0),) and heads[-1].event_count == 0


class TestAlteredEvents:
    """Changing, removing, adding or moving an event breaks its batch."""

    def test_altered_amount(self, ledger: BillingLedger, database_url: str) -> None:
        """An invoice whose amount was edited breaks its batch's root, named with its positions."""
        position = first_position(database_url, "%Invoice%Issued%")
        execute(
            database_url,
            "UPDATE billing_events SET state = convert_to(replace(convert_from(state, 'UTF8'), "
            "'2900', '2800'), 'UTF8') WHERE notification_id = %s",
            position,
        )
        result = broken(database_url)
        assert result.batch == batch_of(database_url, position)
        assert "altered" in result.problem and "hash to root" in result.problem

    def test_altered_topic(self, ledger: BillingLedger, database_url: str) -> None:
        """An event given another type breaks its batch's root."""
        execute(
            database_url, "UPDATE billing_events SET topic = topic || 'X' WHERE notification_id = 1"
        )
        assert broken(database_url).batch == 1

    def test_deleted_event(self, ledger: BillingLedger, database_url: str) -> None:
        """A deleted event is missing from its batch, at its position."""
        execute(database_url, "DELETE FROM billing_events WHERE notification_id = 7")
        result = broken(database_url)
        assert (result.batch, result.position) == (batch_of(database_url, 7), 7)
        assert "missing" in result.problem

    def test_deleted_last_event(self, ledger: BillingLedger, database_url: str) -> None:
        """Deleting the newest event is found too: its batch still counts it."""
        last = ledger.recorder.max_notification_id()
        assert last is not None
        execute(database_url, "DELETE FROM billing_events WHERE notification_id = %s", last)
        assert broken(database_url).position == last

    def test_event_added_after_the_last_batch(
        self, ledger: BillingLedger, database_url: str
    ) -> None:
        """An event inserted without a batch head is in no batch."""
        execute(
            database_url,
            "INSERT INTO billing_events (originator_id, originator_version, topic, state) SELECT originator_id, originator_version + 1000, topic, state FROM billing_events WHERE notification_id = 1",
        )
        result = broken(database_url)
        assert result.batch is None and "in no batch head" in result.problem

    def test_events_swapped_within_a_batch(self, ledger: BillingLedger, database_url: str) -> None:
        """Two events of one batch that trade positions break its root."""
        swap(database_url, 1, 2)
        result = broken(database_url)
        assert result.batch == 1 and "moved" in result.problem

    def test_event_moved_to_another_batch(self, ledger: BillingLedger, database_url: str) -> None:
        """An event moved to a later position leaves a hole in its batch."""
        execute(
            database_url,
            "UPDATE billing_events SET notification_id = 100000 WHERE notification_id = 3",
        )
        result = broken(database_url)
        assert (result.batch, result.position) == (batch_of(database_url, 4), 3)


class TestAlteredHeads:
    """Changing, removing, adding or reordering batch heads breaks the chain."""

    def test_altered_root(self, ledger: BillingLedger, database_url: str) -> None:
        """A head whose events root was replaced no longer hashes to its stored hash."""
        execute(
            database_url, "UPDATE billing_batch_heads SET events_root = sha256('x') WHERE batch = 2"
        )
        result = broken(database_url)
        assert result.batch == 2 and "the head was changed" in result.problem

    def test_altered_time(self, ledger: BillingLedger, database_url: str) -> None:
        """A head whose recorded time was moved no longer hashes to its stored hash."""
        execute(
            database_url,
            "UPDATE billing_batch_heads SET recorded_at = recorded_at - interval '1 day' WHERE batch = 4",
        )
        result = broken(database_url)
        assert result.batch == 4 and "the head was changed" in result.problem

    def test_head_rehashed_after_a_change(self, ledger: BillingLedger, database_url: str) -> None:
        """A changed head stored with the hash of its new fields no longer gives its tree root."""
        rehash_with_other_offset(database_url, 5)
        result = broken(database_url)
        assert result.batch == 5 and "tree of heads" in result.problem

    def test_deleted_head(self, ledger: BillingLedger, database_url: str) -> None:
        """A deleted head leaves a gap in the batch numbers."""
        execute(database_url, "DELETE FROM billing_batch_heads WHERE batch = 6")
        result = broken(database_url)
        assert result.batch == 6 and "missing" in result.problem

    def test_deleted_last_head(self, ledger: BillingLedger, database_url: str) -> None:
        """Deleting the newest head of events leaves its events in no batch."""
        execute(database_url, "DELETE FROM billing_batch_heads WHERE batch >= %s", BATCHES - 1)
        assert "in no batch head" in broken(database_url).problem

    def test_added_head(self, ledger: BillingLedger, database_url: str) -> None:
        """A copy of the last head added as the next batch does not link to it."""
        execute(
            database_url,
            "INSERT INTO billing_batch_heads SELECT batch + 1, previous_hash, last_position, event_count, events_total, events_root, recorded_at, source_names, source_offsets, head_hash, tree_root, tree_frontier FROM billing_batch_heads WHERE batch = %s",
            BATCHES,
        )
        result = broken(database_url)
        assert result.batch == BATCHES + 1

    def test_heads_swapped(self, ledger: BillingLedger, database_url: str) -> None:
        """Two heads that trade batch numbers no longer hash to what they store."""
        for statement in (
            "UPDATE billing_batch_heads SET batch = -1 WHERE batch = 3",
            "UPDATE billing_batch_heads SET batch = 3 WHERE batch = 4",
            "UPDATE billing_batch_heads SET batch = 4 WHERE batch = -1",
        ):
            execute(database_url, statement)
        assert broken(database_url).batch == 3


class TestAlteredPositions:
    """The Kafka positions in the tracking table must be the ones the heads stored."""

    def test_rewound_position(self, ledger: BillingLedger, database_url: str) -> None:
        """A position set back (so commands would be processed again) is found."""
        execute(
            database_url,
            "UPDATE billing_tracking SET notification_id = 3 WHERE application_name = %s",
            COMMANDS,
        )
        result = broken(database_url)
        assert COMMANDS in result.problem and "offset 3" in result.problem

    def test_deleted_position(self, ledger: BillingLedger, database_url: str) -> None:
        """A deleted position is found."""
        execute(
            database_url,
            "DELETE FROM billing_tracking WHERE application_name = %s",
            DEAD_LETTERS_ONLY,
        )
        assert "says nothing" in broken(database_url).problem

    def test_added_position(self, ledger: BillingLedger, database_url: str) -> None:
        """A position no batch stored is found."""
        execute(
            database_url,
            "INSERT INTO billing_tracking VALUES ('test-cluster/billing.commands/2', 9)",
        )
        assert "billing.commands/2" in broken(database_url).problem


def first_position(database_url: str, topic_like: str) -> int:
    """The position of the first event whose topic is like `topic_like`."""
    with psycopg.connect(database_url) as connection:
        row = connection.execute(
            "SELECT min(notification_id) FROM billing_events WHERE topic LIKE %s", (topic_like,)
        ).fetchone()
    assert row is not None and row[0] is not None
    return int(row[0])


def swap(database_url: str, first: int, second: int) -> None:
    """Let the events at two positions trade places."""
    execute(
        database_url,
        "UPDATE billing_events SET notification_id = -1 WHERE notification_id = %s",
        first,
    )
    execute(
        database_url,
        "UPDATE billing_events SET notification_id = %s WHERE notification_id = %s",
        first,
        second,
    )
    execute(
        database_url,
        "UPDATE billing_events SET notification_id = %s WHERE notification_id = -1",
        second,
    )


def rehash_with_other_offset(database_url: str, batch: int) -> None:
    """Change the Kafka offset a head stored and store the hash of its changed fields, as a
    careful forger would."""
    with snapshot(database_url) as store:
        sealed = store.head(batch)
    assert sealed is not None
    ((name, offset),) = sealed.head.sources
    forged = replace(sealed.head, sources=((name, offset - 1),))
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute(
            "UPDATE billing_batch_heads SET source_offsets = %s, head_hash = %s WHERE batch = %s",
            ([offset - 1], forged.hash(), batch),
        )
