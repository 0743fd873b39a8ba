"""The whole history of events, for a rebuild: from billing.events, or from the event store.

billing.events holds the history as long as nothing was deleted from it (retention): its
earliest offsets are 0 and it holds at least as many messages as the store has events (the
relay publishes each at least once). The store always holds it. Either way the events come
as the projector gets them: decoded billing.events records, in pages.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import psycopg
from eventsourcing.persistence import Mapper, Notification
from fastavro.read import LOGICAL_READERS
from fastavro.write import LOGICAL_WRITERS

from infra.kafka import KafkaClients, Message, Reader
from infra.postgres import connect
from ledger.application import BillingLedger
from wire.codec import AvroCodec, AvroError
from wire.event_records import EVENT_SCHEMAS, RESULT_SCHEMA, event_record
from wire.stored_events import StoredRecords
from wire.topics import EVENTS_TOPIC

# Events per read of the history and per batch applied. Each batch refreshes the delinquency
# of every account it touches once and costs ~20 round trips, so fewer, larger pages do less;
# two of them are held in memory at a time at most (~25 MiB per 16,000 events).
PAGE = 20000
SOURCES = ("auto", "events", "store")
STALL_S = 30.0  # the topic gave nothing this long before its heads: the rebuild stops
EVENT_SCHEMA_NAMES = frozenset(EVENT_SCHEMAS.values())
RECEIPTS = "ledger.receipts:%"  # stored topics of command receipts: results, not events
STORE_TABLE = "billing_events"  # the events table of BillingLedger's store

Event = tuple[str, dict[str, Any]]  # (event type, decoded billing.events record)
_NO_DEFAULT = object()  # a record field without a default
Convert = Callable[[Any], Any]  # a value as written, to the value decoding would return


@dataclass(frozen=True)
class Page:
    """Events read together, with how far the reading is: done out of total."""

    events: list[Event]
    done: int
    total: int


@dataclass(frozen=True)
class History:
    """Where the history is read from, its pages, and the store position it surely covers."""

    name: str  # events or store
    pages: Callable[[], Iterator[Page]]
    covers: int  # every stored event up to this notification id is in the pages


def open_history(
    ledger: BillingLedger, database_url: str, source: str, kafka: KafkaClients | None
) -> History:
    """The history from `source` (SOURCES); `auto` takes the topic when it holds all of it."""
    if source == "store" or (source == "auto" and kafka is None):
        return _store_history(ledger)
    if kafka is None:
        raise HistoryError("--source events needs a Kafka broker (LEDGER_KAFKA_BOOTSTRAP)")
    covers = relayed(database_url, kafka)  # read before the heads: all of it is below them
    reader = kafka.reader()
    earliest = reader.assign_at_start(EVENTS_TOPIC)
    if not earliest:
        reader.close()
        if source == "auto":
            return _store_history(ledger)
        raise HistoryError(f"the broker has no topic {EVENTS_TOPIC}")
    heads = kafka.high_watermarks(EVENTS_TOPIC, earliest)
    missing = sorted(set(earliest) - set(heads))
    stored = stored_events(database_url)
    whole = not missing and all(o == 0 for o in earliest.values())
    whole = whole and sum(heads.values()) >= stored
    if source == "auto" and not whole:
        reader.close()
        return _store_history(ledger)
    if missing:
        reader.close()
        raise HistoryError(f"{EVENTS_TOPIC}: no head for partitions {missing}")
    return History("events", lambda: _topic_pages(reader, earliest, heads), covers)


def stored_events(database_url: str) -> int:
    """How many events the store holds for billing.events (command receipts left out)."""
    with connect(database_url) as connection:
        row = connection.execute(
            f"SELECT count(*) FROM {STORE_TABLE} WHERE topic NOT LIKE %s", (RECEIPTS,)
        ).fetchone()
    return int(row[0]) if row else 0


def relayed(database_url: str, kafka: KafkaClients) -> int:
    """The last notification the relay published to this cluster (0: none): every stored event
    up to it is on billing.events, since the relay stores its position once they are."""
    admin = kafka.admin()
    try:
        cluster_id = admin.cluster_id()
    finally:
        admin.close()
    with connect(database_url) as connection:
        try:
            row = connection.execute(
                "SELECT max(notification_id) FROM ledger_relay_positions WHERE cluster_id = %s",
                (cluster_id,),
            ).fetchone()
        except psycopg.errors.UndefinedTable:
            return 0
    return int(row[0]) if row and row[0] is not None else 0


def _store_history(ledger: BillingLedger) -> History:
    covers = ledger.recorder.max_notification_id() or 0
    return History("store", lambda: store_pages(ledger, 0), covers)


def store_pages(ledger: BillingLedger, after: int) -> Iterator[Page]:
    """The events stored after notification `after`, as the projector decodes them (see
    stored_events_of); a page's `done` is its last notification id, `total` the store's last."""
    codec = AvroCodec()
    total = ledger.recorder.max_notification_id() or 0
    while True:
        notifications = ledger.recorder.select_notifications(
            start=after, limit=PAGE, inclusive_of_start=False
        )
        if not notifications:
            return
        after = notifications[-1].id
        yield Page(stored_events_of(ledger.mapper, notifications, codec), after, max(total, after))


def stored_events_of(
    mapper: Mapper[Any], notifications: Iterable[Notification], codec: AvroCodec
) -> list[Event]:
    """The billing.events events among stored `notifications` (receipts left out), each the
    record the relay encodes (made from the stored state where StoredRecords can), converted as
    the projector's decoding returns it (no Avro bytes: tests/unit/test_history.py checks the
    records equal the round trip's)."""
    events = []
    records = StoredRecords(mapper)
    for notification in notifications:
        if records.schema_of(notification) == RESULT_SCHEMA:
            continue
        stored = records.of(notification)
        if stored is None:
            event = mapper.to_domain_event(notification)
            schema_name = EVENT_SCHEMAS.get(type(event))
            if schema_name is None:
                continue
            record = event_record(event)
        else:
            schema_name, record = stored.schema_name, stored.record
        events.append((schema_name.rpartition(".")[2], _decoded_as(codec, schema_name)(record)))
    return events


@lru_cache(maxsize=256)
def _decoded_as(codec: AvroCodec, schema_name: str) -> Convert:
    """How a record written with `schema_name` comes out of decoding, built once per schema."""
    return _converter(codec.schema(schema_name), {})


def _converter(schema: Any, named: dict[str, Any]) -> Convert:
    """A record, array, union, logical or plain value of `schema` as fastavro decodes it; the
    named types met so far in `named` (a later use of a type is its name only)."""
    if isinstance(schema, str):
        if schema in named:
            return _converter(named[schema], named)
        return float if schema in ("float", "double") else _same
    if isinstance(schema, list):
        return _union(schema, named)
    if "name" in schema:
        named.setdefault(schema["name"], schema)
    kind = schema["type"]
    logical = LOGICAL_READERS.get(f"{kind}-{schema.get('logicalType')}")
    if logical is not None:
        write = LOGICAL_WRITERS[f"{kind}-{schema['logicalType']}"]
        return lambda value: logical(write(value, schema), schema, schema)
    if kind == "record":
        return _record(schema, named)
    if kind == "array":
        items = _converter(schema["items"], named)
        return lambda value: [items(item) for item in value]
    if kind == "map":
        values = _converter(schema["values"], named)
        return lambda value: {key: values(item) for key, item in value.items()}
    if kind in ("enum", "fixed"):
        return _same
    return _converter(kind, named)  # {"type": "long"} and the like


def _record(schema: dict[str, Any], named: dict[str, Any]) -> Convert:
    """A record of `schema`: every field converted, a missing one as its default."""
    fields = [
        (field["name"], _converter(field["type"], named), field.get("default", _NO_DEFAULT))
        for field in schema["fields"]
    ]

    def convert(value: dict[str, Any]) -> dict[str, Any]:
        return {
            name: field(value[name] if name in value or default is _NO_DEFAULT else default)
            for name, field, default in fields
        }

    return convert


def _union(branches: list[Any], named: dict[str, Any]) -> Convert:
    """A value of a union of null and one other type (the only unions the schemas use)."""
    others = [branch for branch in branches if branch != "null"]
    if len(others) != 1:
        raise HistoryError(f"union {branches}: only null and one type are converted")
    other = _converter(others[0], named)
    return lambda value: None if value is None else other(value)


def _same(value: Any) -> Any:
    return value


def _topic_pages(reader: Reader, earliest: dict[int, int], heads: dict[int, int]) -> Iterator[Page]:
    """Every message of billing.events from its earliest offsets up to `heads` (taken when the
    rebuild started), decoded; a message that is no event (dead-lettered live) is left out."""
    codec = AvroCodec()
    positions = dict(earliest)
    total = sum(heads[p] - earliest[p] for p in heads)
    done, events, quiet_since = 0, [], time.monotonic()
    try:
        while any(positions[p] < heads[p] for p in heads):
            messages = [m for m in reader.poll_batch(1.0) if m.offset < heads[m.partition]]
            if not messages:
                if time.monotonic() - quiet_since > STALL_S:
                    raise HistoryError(f"{EVENTS_TOPIC}: nothing read for {STALL_S:.0f} s")
                continue
            quiet_since = time.monotonic()
            for message in messages:
                positions[message.partition] = message.offset + 1
                event = decoded_event(codec, message)
                if event is not None:
                    events.append(event)
            done += len(messages)
            if len(events) >= PAGE:
                yield Page(events, done, total)
                events = []
        yield Page(events, done, total)
    finally:
        reader.close()


def decoded_event(codec: AvroCodec, message: Message | Any) -> Event | None:
    """(event type, record) of a billing.events message; None for anything else."""
    try:
        decoded = codec.decode(message.value or b"")
    except AvroError:
        return None
    if decoded.schema_name not in EVENT_SCHEMA_NAMES:
        return None
    return decoded.schema_name.rpartition(".")[2], decoded.record


class HistoryError(Exception):
    """The history cannot be read from the source asked for."""
