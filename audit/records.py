"""Stored account events read back as their billing.events records, fast, for replay.

The relay makes a record by decoding the stored state into domain objects and converting those
to Avro (wire/event_records.py), which costs several times more than replay's whole fold.
Replay needs only the values, so it parses the stored JSON with orjson and unwraps the
transcoder's `{"_type_": ..., "_data_": ...}` tags in place: datetimes become datetimes, value
objects (postings, allocations, ...) their fields, enums their values, as in the Avro record
(which also spreads Terms and a dunning policy into the record's own fields; replay reads
neither). tests/unit/test_replay.py checks that both ways give the same replay.
"""

from __future__ import annotations

from datetime import datetime
from functools import cache
from typing import Any

import orjson
from eventsourcing.utils import get_topic, resolve_topic

from audit.replay import FACT_EVENTS
from ledger.receipts import CommandReceipt
from wire.event_records import ACCOUNT_EVENT_SCHEMAS, PLAN_EVENT_SCHEMAS


def _declares_postings(cls: type) -> bool:
    return any("postings" in getattr(base, "__annotations__", {}) for base in cls.__mro__)


_TYPE_OF_TOPIC = {
    get_topic(cls): schema.rpartition(".")[2] for cls, schema in ACCOUNT_EVENT_SCHEMAS.items()
}
# The account events that move a balance or an invoice, or say something replay shows: any
# event that declares postings, and the facts replay applies. The others are skipped unread.
VIEW_EVENTS = frozenset(
    schema.rpartition(".")[2]
    for cls, schema in ACCOUNT_EVENT_SCHEMAS.items()
    if _declares_postings(cls) or schema.rpartition(".")[2] in FACT_EVENTS
)
# Stored topics of events that are never in the view, for the store to leave out.
OTHER_TOPICS = tuple(
    sorted(
        [get_topic(cls) for cls in (CommandReceipt.Recorded, CommandReceipt.Redelivered)]
        + [get_topic(cls) for cls in PLAN_EVENT_SCHEMAS]
        + [topic for topic, kind in _TYPE_OF_TOPIC.items() if kind not in VIEW_EVENTS]
    )
)
_fromisoformat = datetime.fromisoformat
# How the transcoder writes every event's state: its timestamp first.
_TIMESTAMP = b'{"timestamp":{"_type_":"datetime_iso","_data_":"'
_AFTER_TIMESTAMP = len(_TIMESTAMP)


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


def occurred_at(state: bytes) -> datetime:
    """An event's business time, read from the start of its stored state without parsing it."""
    if state.startswith(_TIMESTAMP):
        return _fromisoformat(
            state[_AFTER_TIMESTAMP : state.index(b'"', _AFTER_TIMESTAMP)].decode()
        )
    found: datetime = _untag(orjson.loads(state)["timestamp"])
    return found


def account_record(state: bytes, version: int, at: datetime | None = None) -> dict[str, Any]:
    """The record an account event's stored `state` publishes (its event_id left out); `at`,
    if given, is its business time already read (occurred_at)."""
    record: dict[str, Any] = orjson.loads(state)
    stamp = record.pop("timestamp")
    record.pop("originator_topic", None)
    for key, value in record.items():
        if value.__class__ is dict:
            record[key] = _untag(value)
        elif value.__class__ is list and value and value[0].__class__ is dict:
            record[key] = [_untag(item) for item in value]
    record["occurred_at"] = at or _untag(stamp)
    record["account_version"] = version
    return record


# Value objects whose fields are all strings and numbers: nothing inside them to unwrap.
_FLAT = frozenset({"Posting", "Allocation", "OriginalDebt", "Contact", "Source"})


def _untag(value: dict[str, Any]) -> Any:
    """A tagged value unwrapped: a datetime, a value object's fields, an enum's value."""
    tag = value.get("_type_")
    if tag is None:
        return _plain(value)
    data = value["_data_"]
    if tag == "datetime_iso":
        return _fromisoformat(data)
    if tag in _FLAT or not (data.__class__ is dict or data.__class__ is list):
        return data
    return _plain(data)


def _plain(value: Any) -> Any:
    """`value` with the transcoder's tags unwrapped; plain dicts are changed in place."""
    if value.__class__ is dict:
        if "_type_" in value:
            return _untag(value)
        for key, item in value.items():
            if item.__class__ is dict or item.__class__ is list:
                value[key] = _plain(item)
        return value
    if value.__class__ is list:
        return [
            _plain(item) if item.__class__ is dict or item.__class__ is list else item
            for item in value
        ]
    return value
