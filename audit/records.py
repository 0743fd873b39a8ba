"""Stored account events read back as their billing.events records, fast, for replay.

The relay makes a record by decoding the stored state into domain objects and converting those
to Avro (wire/event_records.py): about 30 µs an event. Replay needs only the values, so it
parses the stored JSON with orjson and unwraps the transcoder's `{"_type_": ..., "_data_": ...}`
tags in place: datetimes become datetimes, value objects (postings, allocations, ...) their
fields, enums their values, as in the Avro record. tests/unit/test_replay.py checks that both
ways give the same replay.
"""

from __future__ import annotations

from datetime import datetime
from functools import cache
from typing import Any

import orjson
from eventsourcing.utils import get_topic, resolve_topic

from wire.event_records import ACCOUNT_EVENT_SCHEMAS

_TYPE_OF_TOPIC = {
    get_topic(cls): schema.rpartition(".")[2] for cls, schema in ACCOUNT_EVENT_SCHEMAS.items()
}
_fromisoformat = datetime.fromisoformat


@cache
def event_type(topic: str) -> str | None:
    """The billing.events type of an account event's stored topic; None for any other event.

    A topic that is not a class's own is resolved as the event store resolves it (a renamed
    class's old topic, registered as an alias).
    """
    known = _TYPE_OF_TOPIC.get(topic)
    if known is not None or not topic.startswith("ledger."):
        return known
    try:
        cls = resolve_topic(topic)
    except Exception:
        return None
    schema = ACCOUNT_EVENT_SCHEMAS.get(cls)
    return None if schema is None else schema.rpartition(".")[2]


def account_record(state: bytes, version: int) -> dict[str, Any]:
    """The record an account event's stored `state` publishes (its event_id left out)."""
    record: dict[str, Any] = orjson.loads(state)
    for key, value in record.items():
        if value.__class__ is dict or value.__class__ is list:
            record[key] = _plain(value)
    record["occurred_at"] = record.pop("timestamp")
    record.pop("originator_topic", None)
    record["account_version"] = version
    return record


def _plain(value: Any) -> Any:
    if value.__class__ is dict:
        tag = value.get("_type_")
        if tag is None:
            return {key: _plain(item) for key, item in value.items()}
        data = value["_data_"]
        if tag == "datetime_iso":
            return _fromisoformat(data)
        return _plain(data)
    if value.__class__ is list:
        return [_plain(item) for item in value]
    return value
