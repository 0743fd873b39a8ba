"""`ledger audit reconcile`, the Kafka half: billing.events and billing.command-results against
the event store, by counts and event ids per partition.

Every stored account or plan event must be on billing.events once, and every command receipt
on billing.command-results once (its result: each command answered exactly once), with the
event_position header of its position. Records of no stored event, events published twice,
missing or with another position, and a key spread over partitions are named. Two limits:
events after the relay's stored position are not published yet, and records the topic's
retention deleted cannot be told from records never published, so those positions are not
checked (the summary says up to where).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from psycopg.sql import SQL, Identifier

from audit.reconcile import Difference
from audit.store import EVENTS_TABLE, FETCH_ROWS, Snapshot
from infra.kafka import Message
from ledger.application import event_id

RECEIPTS = "ledger.receipts:"  # the topics of command receipts, published as results
RELAY_POSITIONS = "ledger_relay_positions"


@dataclass(frozen=True)
class Published:
    """A stored event as it must be found on a topic."""

    event_id: str
    position: int
    label: str


def expected(store: Snapshot) -> tuple[dict[str, Published], dict[str, Published]]:
    """(billing.events, billing.command-results): what each must hold, by event id."""
    statement = SQL(
        "SELECT notification_id, topic, originator_id, originator_version, "
        "CASE WHEN topic LIKE 'ledger.receipts:%%' THEN state END FROM {} ORDER BY notification_id"
    ).format(Identifier(store.schema, EVENTS_TABLE))
    events: dict[str, Published] = {}
    results: dict[str, Published] = {}
    with store.connection.cursor(name="published", binary=True) as cursor:
        cursor.itersize = FETCH_ROWS
        cursor.execute(statement)
        for position, topic, originator_id, version, state in cursor:
            identity = event_id(originator_id, version)
            kind = topic.rpartition(".")[2]
            if topic.startswith(RECEIPTS):
                command = orjson.loads(state)["command_id"]
                results[identity] = Published(
                    identity, position, f"result of command {command} ({kind})"
                )
            else:
                events[identity] = Published(identity, position, kind)
    return events, results


def relayed_up_to(store: Snapshot, cluster_id: str) -> int | None:
    """The last position the relay stored as published to `cluster_id`; None if it never ran."""
    table = Identifier(store.schema, RELAY_POSITIONS)
    exists = store.connection.execute(
        "SELECT to_regclass(format('%%I.%%I', %s::text, %s::text)) IS NOT NULL",
        (store.schema, RELAY_POSITIONS),
    ).fetchone()
    if not exists or not exists[0]:
        return None
    row = store.connection.execute(
        SQL("SELECT notification_id FROM {} WHERE cluster_id = %s AND relay = 'events'").format(
            table
        ),
        (cluster_id,),
    ).fetchone()
    return None if row is None else int(row[0])


def check_topic(
    topic: str,
    wanted: Mapping[str, Published],
    messages: list[Message],
    starts: Mapping[int, int],
    relayed: int | None,
) -> tuple[list[dict[str, Any]], list[Difference]]:
    """Per-partition counts of `topic`, and every difference from what it must hold."""
    found: dict[str, list[Message]] = defaultdict(list)
    partitions_of_key: dict[bytes, set[int]] = defaultdict(set)
    for message in messages:
        found[_header(message, "event_id")].append(message)
        partitions_of_key[message.key or b""].add(message.partition)
    differences: list[Difference] = []
    for identity, copies in found.items():
        differences += _check_copies(topic, wanted.get(identity), identity, copies)
    checked_from = _kept_from(messages, starts)
    for identity, published in wanted.items():
        late = relayed is not None and published.position > relayed
        if identity not in found and not late and published.position >= checked_from:
            differences.append(
                Difference(
                    topic,
                    f"position {published.position}",
                    f"{published.label} (event {identity}) is not on the topic",
                )
            )
    for key, partitions in sorted(partitions_of_key.items()):
        if len(partitions) > 1:
            differences.append(
                Difference(
                    topic,
                    f"key {key.decode(errors='replace')}",
                    f"on partitions {sorted(partitions)}",
                )
            )
    return _partition_rows(topic, messages, starts, wanted, checked_from, relayed), differences


def _check_copies(
    topic: str, published: Published | None, identity: str, copies: list[Message]
) -> list[Difference]:
    places = ", ".join(f"partition {m.partition} offset {m.offset}" for m in copies)
    if published is None:
        return [
            Difference(
                topic,
                f"partition {m.partition} offset {m.offset}",
                f"a record of no stored event (event_id {identity or 'none'})",
            )
            for m in copies
        ]
    where = f"position {published.position}"
    differences = []
    if len(copies) > 1:
        differences.append(
            Difference(
                topic,
                where,
                f"{published.label} (event {identity}) is on the topic {len(copies)} times: {places}",
            )
        )
    for message in copies:
        header = _header(message, "event_position")
        if header != str(published.position):
            differences.append(
                Difference(
                    topic,
                    where,
                    f"the record at partition {message.partition} offset {message.offset} "
                    f"says position {header or 'none'}",
                )
            )
    return differences


def _kept_from(messages: list[Message], starts: Mapping[int, int]) -> int:
    """The first position from which the topic still keeps every record it was given."""
    first: dict[int, int] = {}
    for message in messages:
        if message.partition not in first and starts.get(message.partition, 0) > 0:
            header = _header(message, "event_position")
            first[message.partition] = int(header) if header.isdigit() else 0
    trimmed = [p for p, start in starts.items() if start > 0]
    if any(p not in first for p in trimmed):
        return 2**62  # a partition emptied by retention: nothing can be told missing
    return max((first[p] for p in trimmed), default=0)


def _partition_rows(
    topic: str,
    messages: list[Message],
    starts: Mapping[int, int],
    wanted: Mapping[str, Published],
    checked_from: int,
    relayed: int | None,
) -> list[dict[str, Any]]:
    rows = []
    for partition in sorted(starts):
        mine = [m for m in messages if m.partition == partition]
        ids = {_header(m, "event_id") for m in mine}
        rows.append(
            {
                "topic": topic,
                "partition": partition,
                "log_start": starts[partition],
                "records": len(mine),
                "event_ids": len(ids),
                "of_stored_events": len(ids & wanted.keys()),
            }
        )
    rows.append(
        {
            "topic": topic,
            "partition": "all",
            "records": len(messages),
            "event_ids": len({_header(m, "event_id") for m in messages}),
            "stored_events": len(wanted),
            "relayed_up_to": "never" if relayed is None else relayed,
            "checked_from_position": checked_from if checked_from < 2**62 else "none",
        }
    )
    return rows


def _header(message: Message, name: str) -> str:
    for key, value in message.headers:
        if key == name:
            return value.decode(errors="replace")
    return ""
