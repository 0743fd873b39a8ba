"""The relay's per-event work, before and after issue 15: stored notification -> Kafka message.

`previous_outgoing` is wire/event_records.py's `outgoing` as it was (the event id made twice,
every value through the Enum/dataclass/sequence checks), kept as the reference the current
paths must match byte for byte (tests/unit/test_event_records.py) and as the benchmark's
baseline. Timed against it: `outgoing` of the domain event (the first step of issue 15) and
StoredMessages (the record straight from the stored state), alternating.

    PYTHONPATH=. .venv/bin/python -m bench.relay_encode [--commands 1000 --accounts 200 --rounds 5]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import time
from collections.abc import Callable
from enum import Enum
from typing import Any

from eventsourcing.persistence import Mapper, Notification

from bench.projections import generate
from infra.kafka import Outgoing
from ledger.application import event_id
from ledger.receipts import CommandReceipt
from tests.unit.builders import in_memory_ledger
from wire.codec import AvroCodec
from wire.event_records import EVENT_SCHEMAS, PLAN_EVENT_SCHEMAS, RESULT_SCHEMA, outgoing
from wire.stored_events import StoredMessages, StoredRecords
from wire.topics import EVENTS_TOPIC, RESULTS_TOPIC

Encode = Callable[[Any, int, AvroCodec], Outgoing]  # a domain event to its message
_BASE = {"originator_id", "originator_version", "timestamp", "originator_topic"}


def previous_outgoing(event: Any, position: int, codec: AvroCodec) -> Outgoing:
    """The message as the relay built it before issue 15."""
    if isinstance(event, CommandReceipt.Recorded | CommandReceipt.Redelivered):
        return _previous_result(event, position, codec)
    identity = event_id(event.originator_id, event.originator_version)
    schema_name = EVENT_SCHEMAS[type(event)]
    plan = type(event) in PLAN_EVENT_SCHEMAS
    record: dict[str, Any] = {
        "event_id": event_id(event.originator_id, event.originator_version),
        "occurred_at": event.timestamp,
        "plan_version" if plan else "account_version": event.originator_version,
    }
    for name, value in vars(event).items():
        if name in _BASE:
            continue
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            record.update(_previous_plain(value))
        else:
            record[name] = _previous_plain(value)
    headers = (
        ("event_type", schema_name.rpartition(".")[2].encode()),
        ("event_id", identity.encode()),
        ("event_position", str(position).encode()),
    )
    key = record["plan_id"] if plan else record["account_id"]
    return Outgoing(EVENTS_TOPIC, key.encode(), codec.encode(schema_name, record), headers)


def _previous_result(
    event: CommandReceipt.Recorded | CommandReceipt.Redelivered, position: int, codec: AvroCodec
) -> Outgoing:
    rejection = event.rejection
    record = {
        "command_id": event.command_id,
        "command_type": event.command_type,
        "account_id": event.account_id,
        "plan_id": event.plan_id,
        "status": "ACCEPTED" if rejection is None else "REJECTED",
        "event_ids": list(event.event_ids),
        "rejection": None if rejection is None else _previous_plain(rejection),
        "redelivery": isinstance(event, CommandReceipt.Redelivered),
        "source_topic": event.source.topic,
        "source_partition": event.source.partition,
        "source_offset": event.source.offset,
        "issued_at": event.timestamp,
    }
    headers = (
        ("event_type", b"CommandResult"),
        ("event_id", event_id(event.originator_id, event.originator_version).encode()),
        ("event_position", str(position).encode()),
        ("command_id", record["command_id"].encode()),
        ("status", record["status"].encode()),
    )
    value = codec.encode(RESULT_SCHEMA, record)
    key = record["plan_id"] or record["account_id"]
    return Outgoing(RESULTS_TOPIC, key.encode(), value, headers)


def _previous_plain(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _previous_plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, list | tuple):
        return [_previous_plain(item) for item in value]
    return value


def messages(
    mapper: Mapper[Any], notifications: list[Notification], codec: AvroCodec, encode: Encode
) -> list[Outgoing]:
    """What the relay publishes for `notifications`, built by `encode`."""
    return [encode(mapper.to_domain_event(n), n.id, codec) for n in notifications]


def stored_messages(
    mapper: Mapper[Any], notifications: list[Notification], codec: AvroCodec
) -> list[Outgoing]:
    """What the relay publishes for `notifications`, made from the stored state (StoredMessages)."""
    make = StoredMessages(mapper, codec)
    return [make(n) for n in notifications]


Build = Callable[[Mapper[Any], list[Notification], AvroCodec], list[Outgoing]]
PATHS: dict[str, Build] = {
    "before": lambda mapper, ns, codec: messages(mapper, ns, codec, previous_outgoing),
    "domain_event": lambda mapper, ns, codec: messages(mapper, ns, codec, outgoing),
    "stored_state": stored_messages,
}


def main() -> None:
    """Time every path on the same generated history, alternating; print JSON."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--commands", type=int, default=1000)
    parser.add_argument("--accounts", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    ledger = in_memory_ledger()
    generate(ledger, args.commands, args.accounts)
    notifications = ledger.recorder.select_notifications(start=1, limit=1_000_000)
    codec = AvroCodec()
    times: dict[str, list[float]] = {name: [] for name in PATHS}
    load = os.getloadavg()[0]
    for _ in range(args.rounds):
        for name, build in PATHS.items():
            started = time.process_time()
            build(ledger.mapper, notifications, codec)
            times[name].append(time.process_time() - started)
    best = {name: round(len(notifications) / min(t)) for name, t in times.items()}
    median = {name: round(len(notifications) / statistics.median(t)) for name, t in times.items()}
    records = StoredRecords(ledger.mapper)
    result = {
        "notifications": len(notifications),
        "from_stored_state": sum(records.of(n) is not None for n in notifications),
        "events_per_cpu_s_best": best,
        "events_per_cpu_s_median": median,
        "ratio_best": round(best["stored_state"] / best["before"], 2),
        "ratio_median": round(median["stored_state"] / median["before"], 2),
        "ratio_to_domain_event_best": round(best["stored_state"] / best["domain_event"], 2),
        "ratio_to_domain_event_median": round(median["stored_state"] / median["domain_event"], 2),
        "rounds": args.rounds,
        "load_average": [round(load, 1), round(os.getloadavg()[0], 1)],
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
