"""Rebuild's stored events: records made straight from the domain events equal the Avro round trip's."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.persistence import Mapper, Notification, StoredEvent

from audit.export_format import offline_mapper
from bench.projections import generate
from runtime.history import Event, decoded_event, stored_events_of
from tests.unit.builders import in_memory_ledger
from tests.unit.test_released_events import RELEASES, every_event, release
from wire.codec import AvroCodec
from wire.event_records import EVENT_SCHEMAS, outgoing


@pytest.fixture(name="codec", scope="module")
def fixture_codec() -> AvroCodec:
    """The codec of every schema in schemas/."""
    return AvroCodec()


def round_trip(
    mapper: Mapper[Any], notifications: list[Notification], codec: AvroCodec
) -> list[Event]:
    """The events as the projector reads them: encoded as the relay publishes, then decoded."""
    decoded = (
        decoded_event(codec, outgoing(mapper.to_domain_event(n), n.id, codec))
        for n in notifications
    )
    return [event for event in decoded if event is not None]


def notification_of(stored: StoredEvent, position: int) -> Notification:
    """`stored` as the notification log holds it at `position`."""
    return Notification(
        id=position,
        originator_id=stored.originator_id,
        originator_version=stored.originator_version,
        topic=stored.topic,
        state=stored.state,
    )


def released_notifications() -> list[Notification]:
    """Every stored event of every released version, numbered as a notification log."""
    entries = [entry for path in RELEASES for entry in every_event(release(path))]
    return [
        notification_of(
            StoredEvent(
                originator_id=UUID(entry["originator_id"]),
                originator_version=entry["originator_version"],
                topic=entry["topic"],
                state=entry["state"].encode(),
            ),
            position,
        )
        for position, entry in enumerate(entries, start=1)
    ]


class TestStoredEventsOf:
    """What rebuild applies is exactly what the projector would have decoded."""

    def test_released_events_of_every_type_equal_the_round_trip(self, codec: AvroCodec) -> None:
        """The released fixtures hold every event type, upcast from each version's state."""
        mapper = offline_mapper()
        notifications = released_notifications()
        direct = stored_events_of(mapper, notifications, codec)
        assert {event_type for event_type, _ in direct} == {
            name.rpartition(".")[2] for name in EVENT_SCHEMAS.values()
        }
        assert direct == round_trip(mapper, notifications, codec)

    def test_a_generated_history_equals_the_round_trip(self, codec: AvroCodec) -> None:
        """bench/mix.py's commands over 60 accounts, receipts among the stored events."""
        ledger = in_memory_ledger()
        generate(ledger, 300, 60)
        notifications = ledger.recorder.select_notifications(start=1, limit=10_000)
        direct = stored_events_of(ledger.mapper, notifications, codec)
        assert len(direct) < len(notifications)  # the receipts are left out
        assert direct == round_trip(ledger.mapper, notifications, codec)

    def test_a_timestamp_comes_to_the_millisecond_as_decoding_returns_it(
        self, codec: AvroCodec
    ) -> None:
        """timestamp-millis drops the microseconds: the direct record drops them too."""
        ledger = in_memory_ledger()
        generate(ledger, 10, 2)
        (first,) = ledger.recorder.select_notifications(start=1, limit=1)
        exact = datetime(2024, 1, 31, 9, 30, 0, 123_456, tzinfo=UTC)
        event = dataclasses.replace(ledger.mapper.to_domain_event(first), timestamp=exact)
        notifications = [notification_of(ledger.mapper.to_stored_event(event), 1)]
        direct = stored_events_of(ledger.mapper, notifications, codec)
        assert direct[0][1]["occurred_at"] == exact.replace(microsecond=123_000)
        assert direct == round_trip(ledger.mapper, notifications, codec)
