"""Records of stored events made straight from their stored JSON, without the domain events.

The event store's mapper decodes an event's JSON with a Python object hook into value
objects, which wire/event_records.py then turns back into plain values for Avro. Here orjson
decodes the state and each tagged value (`{"_type_": name, "_data_": data}`) becomes at once
what event_records makes of the object it stands for. Whatever this cannot make the same way
(an older stored version to upcast, a tag, shape or store setting it does not know) is left
to the domain-event path: `StoredRecords.of` answers None. tests/unit/test_stored_events.py
checks the records are the domain path's, and TestSameBytesAsBefore in
tests/unit/test_event_records.py that the messages are the same bytes as before issue 15.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from enum import Enum
from typing import Any, NamedTuple
from uuid import UUID

import orjson
from eventsourcing.persistence import JSONTranscoder, Mapper, Notification, Transcoding
from eventsourcing.utils import resolve_topic

from infra.kafka import Outgoing
from ledger.application import DataclassAsDict, event_id
from ledger.receipts import CommandReceipt
from wire.codec import AvroCodec, AvroError
from wire.event_records import (
    EVENT_BASE_FIELDS,
    EVENT_SCHEMAS,
    PLAN_EVENT_SCHEMAS,
    RESULT_SCHEMA,
    message,
    outgoing,
    plain,
    plain_result_record,
)

Read = Callable[[Any], Any]  # a tag's stored data, to the plain value event_records makes
_SCALARS: frozenset[type[Any]] = frozenset({str, int, float, bool, type(None)})
_STORED_BASE_FIELDS = EVENT_BASE_FIELDS | {"class_version"}  # the mapper pops class_version


class StoredRecord(NamedTuple):
    """The record of one stored event, the schema it is written with, and its event id."""

    schema_name: str
    record: dict[str, Any]
    identity: str


@dataclass(frozen=True)
class _Topic:
    """What a stored topic is published as: known once per topic."""

    schema_name: str
    class_version: int
    version_field: str | None  # None: a receipt, published as a CommandResult
    redelivery: bool


class StoredMessages:
    """The Kafka message of each stored notification, as `outgoing` makes it of the domain event,
    made straight from the stored state whenever StoredRecords can."""

    def __init__(self, mapper: Mapper[Any], codec: AvroCodec) -> None:
        self._mapper = mapper
        self._codec = codec
        self._records = StoredRecords(mapper)

    def __call__(self, notification: Notification) -> Outgoing:
        """The message publishing `notification`."""
        stored = self._records.of(notification)
        if stored is not None:
            try:
                return message(
                    stored.schema_name, stored.record, stored.identity, notification.id, self._codec
                )
            except AvroError:
                pass  # the domain-event path raises the error it always raised for this event
        event = self._mapper.to_domain_event(notification)
        return outgoing(event, notification.id, self._codec)


class StoredRecords:
    """Makes the record of a stored notification from its stored state, for one mapper."""

    def __init__(self, mapper: Mapper[Any]) -> None:
        transcoder = mapper.transcoder
        # Only the JSON transcoder's format, in the clear, is read here; the rest is the mapper's.
        self._direct = (
            isinstance(transcoder, JSONTranscoder) and not mapper.cipher and not mapper.compressor
        )
        names = transcoder.names if isinstance(transcoder, JSONTranscoder) else {}
        self._tags: dict[str, Read] = {}
        for name, transcoding in names.items():
            self._tags[name] = self._reader(transcoding)
        self._topics: dict[str, _Topic | None] = {}

    def schema_of(self, notification: Notification) -> str | None:
        """The schema the notification is published with, if its stored topic is known here."""
        topic = self._topic(notification.topic)
        return None if topic is None else topic.schema_name

    def of(self, notification: Notification) -> StoredRecord | None:
        """The notification's record, or None: then only its domain event makes it."""
        topic = self._topic(notification.topic)
        if topic is None or not self._direct or type(notification.originator_id) is not UUID:
            return None
        try:
            state = orjson.loads(notification.state)
            if type(state) is not dict or state.get("class_version", 1) < topic.class_version:
                return None  # an older stored version: the event class upcasts it
            value_of, scalars = self._value, _SCALARS  # most values are scalars: no call
            fields = {
                name: value if type(value) in scalars else value_of(value)
                for name, value in state.items()
            }
            identity = event_id(notification.originator_id, notification.originator_version)
            if topic.version_field is None:
                record = plain_result_record(fields, topic.redelivery)
            else:
                version = notification.originator_version
                record = _event_record(fields, identity, topic.version_field, version)
        except (_NotDirect, orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return None  # made by the domain-event path, which raises its own error if any
        return StoredRecord(topic.schema_name, record, identity)

    def _topic(self, stored_topic: str) -> _Topic | None:
        if stored_topic not in self._topics:
            self._topics[stored_topic] = _topic_of(stored_topic)
        return self._topics[stored_topic]

    def _value(self, value: Any) -> Any:
        """A stored JSON value as the plain value the domain path makes of its decoded object."""
        kind = type(value)
        if kind is dict:
            read = self._tags.get(value.get("_type_")) if len(value) == 2 else None
            if read is None or "_data_" not in value:
                raise _NotDirect  # an unknown tag, or a plain object: its objects would stay
            return read(value["_data_"])
        if kind is list:
            return [item if type(item) in _SCALARS else self._value(item) for item in value]
        if kind in _SCALARS:
            return value
        raise _NotDirect

    def _reader(self, transcoding: Transcoding) -> Read:
        if isinstance(transcoding, DataclassAsDict):
            return self._dataclass_reader(transcoding)
        decode = transcoding.decode
        if issubclass(transcoding.type, datetime | date):  # `plain` keeps what these decode to

            def read_time(data: Any) -> Any:
                if type(data) is not str:
                    raise _NotDirect
                return decode(data)

            return read_time

        def read(data: Any) -> Any:
            if type(data) not in _SCALARS:
                raise _NotDirect  # the object hook would have decoded what is inside first
            value = plain(decode(data))
            if type(value) is dict:
                raise _NotDirect  # spread or not: only a value object's dict is known here
            return value

        return read

    def _dataclass_reader(self, transcoding: DataclassAsDict) -> Read:
        """A value object's fields as a dict, as `plain` makes of the object decoded."""
        cls = transcoding.type
        if hasattr(cls, "__post_init__") or any(not f.init for f in dataclasses.fields(cls)):
            return _not_direct
        names = set(transcoding.field_names)
        defaults = _defaults(cls)
        converters = {name: _converted(c) for name, c in transcoding.converters.items()}
        value_of = self._value

        def read(data: Any) -> Any:
            if type(data) is not dict:
                raise _NotDirect
            values = {
                name: value if type(value) in _SCALARS else value_of(value)
                for name, value in data.items()
            }
            for name, convert in converters.items():  # the decoding converts what it finds
                if name in values:
                    values[name] = convert(values[name])
            if values.keys() != names:
                _fill_defaults(values, names, defaults)
            return values

        return read


def _converted(convert: Callable[[Any], Any]) -> Read:
    """What `plain` makes of a value object's field converted on decoding, from the plain value."""
    if isinstance(convert, type) and issubclass(convert, Enum):
        members = {member.value: member.value for member in convert.__members__.values()}

        def read_member(value: Any) -> Any:
            return members[value]  # KeyError: left to the enum's own lookup (_missing_)

        return read_member
    if convert is tuple:

        def read_sequence(value: Any) -> Any:
            if type(value) is not list:
                raise _NotDirect
            return value  # its items are plain already: so is the tuple made of them

        return read_sequence

    return functools.partial(_plain_converted, convert)


def _plain_converted(convert: Callable[[Any], Any], value: Any) -> Any:
    if type(value) is dict:
        raise _NotDirect  # the converter would be given the value object
    return plain(convert(value))


def _defaults(cls: type[Any]) -> dict[str, Callable[[], Any]]:
    """How each field of dataclass `cls` that has a default makes it."""
    defaults: dict[str, Callable[[], Any]] = {}
    for field in dataclasses.fields(cls):
        if field.default_factory is not dataclasses.MISSING:
            defaults[field.name] = field.default_factory
        elif field.default is not dataclasses.MISSING:
            defaults[field.name] = functools.partial(_same, field.default)
    return defaults


def _fill_defaults(
    values: dict[str, Any], names: set[str], defaults: dict[str, Callable[[], Any]]
) -> None:
    """A value object stored before some of its fields were added gets their defaults."""
    missing = names - values.keys()
    if not values.keys() <= names or not missing <= defaults.keys():
        raise _NotDirect  # the value object's constructor refuses it
    for name in missing:
        values[name] = plain(defaults[name]())


def _event_record(
    fields: dict[str, Any], identity: str, version_field: str, version: int
) -> dict[str, Any]:
    """An account or plan event's record from its plain fields (a value object is spread)."""
    record: dict[str, Any] = {
        "event_id": identity,
        "occurred_at": fields["timestamp"],
        version_field: version,
    }
    for name, value in fields.items():
        if name in _STORED_BASE_FIELDS:
            continue
        if type(value) is dict:  # only value objects read as dicts: plain objects are refused
            record.update(value)
        else:
            record[name] = value
    return record


def _topic_of(stored_topic: str) -> _Topic | None:
    try:
        cls = resolve_topic(stored_topic)
    except Exception:  # the mapper raises the library's own error for it
        return None
    class_version = getattr(cls, "class_version", 1)
    if cls in (CommandReceipt.Recorded, CommandReceipt.Redelivered):
        redelivery = cls is CommandReceipt.Redelivered
        return _Topic(RESULT_SCHEMA, class_version, None, redelivery)
    if cls not in EVENT_SCHEMAS:
        return None
    version_field = "plan_version" if cls in PLAN_EVENT_SCHEMAS else "account_version"
    return _Topic(EVENT_SCHEMAS[cls], class_version, version_field, False)


def _same(value: Any) -> Any:
    return value


def _not_direct(data: Any) -> Any:
    raise _NotDirect


class _NotDirect(Exception):
    """The stored state holds something only the domain-event path makes the same way."""
