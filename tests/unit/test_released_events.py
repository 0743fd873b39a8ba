"""Events written by every released version are read by the current code: stored ones upcast, messages resolved.

The fixtures in tests/fixtures/released_events/<version>.json were captured from each
release's own code (the commit that added schemas/released/<version>/), running its unit
tests: every domain event as that version's application stored it (topic, originator id and
version, state), whole aggregate histories from version 1, and the Avro messages its codec
wrote. They are kept as they were: never regenerate a released version's file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.persistence import StoredEvent
from eventsourcing.utils import resolve_topic

from audit.export_format import offline_mapper, typed_record
from wire.codec import AvroCodec

FIXTURES = Path(__file__).parent.parent / "fixtures" / "released_events"
RELEASES = sorted(FIXTURES.glob("*.json"))


def release(path: Path) -> dict[str, Any]:
    """One release's captured events and messages."""
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


def stored(event: dict[str, Any]) -> StoredEvent:
    """The stored event of a fixture entry, as the events table holds it."""
    return StoredEvent(
        originator_id=UUID(event["originator_id"]),
        originator_version=event["originator_version"],
        topic=event["topic"],
        state=event["state"].encode(),
    )


def every_event(captured: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for history in captured["histories"] for e in history] + captured["events"]


@pytest.fixture(name="mapper", scope="module")
def fixture_mapper() -> Any:
    """The current application's mapper of stored events."""
    return offline_mapper()


@pytest.mark.parametrize("path", RELEASES, ids=lambda p: p.stem)
class TestStoredEventsOfEachRelease:
    """A stored event of any release becomes a current event, with every current field."""

    def test_each_decodes_to_its_class_and_current_record(self, path: Path, mapper: Any) -> None:
        """Decoded (and upcast), each event maps to a record the current wire schema accepts."""
        codec = AvroCodec()
        for entry in every_event(release(path)):
            event = mapper.to_domain_event(stored(entry))
            assert isinstance(event, resolve_topic(entry["topic"]))
            schema_name, record = typed_record(event)
            codec.encode(schema_name, record)  # raises if a current field is missing

    def test_each_history_replays(self, path: Path, mapper: Any) -> None:
        """Whole aggregate histories of the release rebuild their aggregate with today's rules."""
        histories = release(path)["histories"]
        assert histories
        for history in histories:
            aggregate = None
            for entry in history:
                aggregate = mapper.to_domain_event(stored(entry)).mutate(aggregate)
            assert aggregate is not None and aggregate.version == len(history)

    @pytest.mark.parametrize(
        ("topic", "new_fields"),
        [
            (
                "ledger.account:Account.InvoiceIssued",
                {"early_payment_discount_minor": 0, "early_payment_deadline": None},
            ),
            (
                "ledger.account:Account.PaymentReceived",
                {"invoice_id": None, "redirect_reason": None},
            ),
        ],
        ids=["InvoiceIssued", "PaymentReceived"],
    )
    def test_fields_added_later_are_upcast(
        self, path: Path, mapper: Any, topic: str, new_fields: dict[str, Any]
    ) -> None:
        """An event stored before a field existed gets the value its upcaster gives."""
        for entry in every_event(release(path)):
            if entry["topic"] == topic and not set(new_fields) & set(json.loads(entry["state"])):
                event = mapper.to_domain_event(stored(entry))
                assert {name: getattr(event, name) for name in new_fields} == new_fields


@pytest.mark.parametrize("path", RELEASES, ids=lambda p: p.stem)
class TestMessagesOfEachRelease:
    """A message the release's relay wrote decodes with today's schemas (Avro schema resolution)."""

    def test_each_message_decodes_into_the_current_shape(self, path: Path) -> None:
        """The writer schema is found by fingerprint; fields added since take their defaults."""
        codec = AvroCodec()
        messages = release(path)["messages"]
        assert messages
        for message in messages:
            decoded = codec.decode(bytes.fromhex(message["hex"]))
            assert decoded.schema_name == message["schema"]
            current = {f["name"] for f in codec.schema(decoded.schema_name)["fields"]}
            assert set(decoded.record) == current
