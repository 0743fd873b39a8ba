"""The relay's per-event work, before and after issue 15: stored notification -> Kafka message.

`previous_outgoing` is wire/event_records.py's `outgoing` as it was (the event id made twice,
every value through the Enum/dataclass/sequence checks), kept as the reference the current one
must match byte for byte (tests/unit/test_event_records.py) and as the benchmark's baseline.

    PYTHONPATH=. .venv/bin/python -m bench.relay_encode [--commands 1000 --accounts 200 --rounds 5]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
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
from wire.event_records import EVENT_SCHEMAS, PLAN_EVENT_SCHEMAS, outgoing
from wire.topics import EVENTS_TOPIC

Encode = Callable[[Any, int, AvroCodec], Outgoing]
_BASE = {"originator_id", "originator_version", "timestamp", "originator_topic"}


def previous_outgoing(event: Any, position: int, codec: AvroCodec) -> Outgoing:
    """The message as the relay built it before issue 15 (receipts as today: unchanged)."""
    if isinstance(event, CommandReceipt.Recorded | CommandReceipt.Redelivered):
        return outgoing(event, position, codec)
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


def main() -> None:
    """Time both paths on the same generated history, alternating; print JSON."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--commands", type=int, default=1000)
    parser.add_argument("--accounts", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    ledger = in_memory_ledger()
    generate(ledger, args.commands, args.accounts)
    notifications = ledger.recorder.select_notifications(start=1, limit=1_000_000)
    codec = AvroCodec()
    paths: dict[str, Encode] = {"before": previous_outgoing, "after": outgoing}
    best = {name: float("inf") for name in paths}
    load = os.getloadavg()[0]
    for _ in range(args.rounds):
        for name, encode in paths.items():
            started = time.process_time()
            messages(ledger.mapper, notifications, codec, encode)
            best[name] = min(best[name], time.process_time() - started)
    rates = {name: round(len(notifications) / seconds) for name, seconds in best.items()}
    result = {
        "notifications": len(notifications),
        "events_per_cpu_s": rates,
        "ratio": round(rates["after"] / rates["before"], 2),
        "load_average": [round(load, 1), round(os.getloadavg()[0], 1)],
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
