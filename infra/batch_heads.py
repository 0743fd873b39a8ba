"""The log of batch heads: the canonical bytes of events and heads, and the heads table.

Every transaction that stores events (or only Kafka positions) adds one batch head: the
Merkle root of its events, the time it was recorded, the Kafka positions it stored, and the
hash of the previous head. The heads' hashes are the leaves of one RFC 6962 tree over the
whole history, whose root each head keeps too. docs/audit.md defines every byte.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from psycopg import Cursor
from psycopg.sql import SQL, Composed, Identifier

from infra import merkle

EVENT_MAGIC = b"BLE1"
HEAD_MAGIC = b"BLH1"
NO_PREVIOUS = bytes(merkle.HASH_SIZE)  # the previous hash of the first head
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_HEAD_FIELDS = struct.Struct(">Q32sQQQ32sqI")


def event_bytes(topic: str, originator_id: UUID, originator_version: int, state: bytes) -> bytes:
    """The canonical bytes of a stored event: what its Merkle leaf hashes."""
    name = topic.encode()
    return b"".join(
        (
            EVENT_MAGIC,
            struct.pack(">I", len(name)),
            name,
            originator_id.bytes,
            struct.pack(">QI", originator_version, len(state)),
            state,
        )
    )


def event_leaf(topic: str, originator_id: UUID, originator_version: int, state: bytes) -> bytes:
    """The Merkle leaf hash of a stored event."""
    return merkle.leaf_hash(event_bytes(topic, originator_id, originator_version, state))


def microseconds(moment: datetime) -> int:
    """`moment` as whole microseconds since 1970-01-01T00:00:00Z."""
    return (moment - EPOCH) // timedelta(microseconds=1)


@dataclass(frozen=True)
class BatchHead:
    """One committed batch: its events, its time, its Kafka positions and its links.

    `last_position` is the notification id of the batch's last event: its `event_count`
    events hold the positions up to it without a gap (the previous head's for none).
    `events_total` counts the events of this batch and every earlier one. `sources` are the
    Kafka positions (tracking name, offset) the batch stored, sorted by name.
    """

    batch: int
    previous_hash: bytes
    last_position: int
    event_count: int
    events_total: int
    events_root: bytes
    recorded_at: datetime
    sources: tuple[tuple[str, int], ...]

    def canonical_bytes(self) -> bytes:
        """The bytes the head's hash is taken over."""
        fixed = _HEAD_FIELDS.pack(
            self.batch,
            self.previous_hash,
            self.last_position,
            self.event_count,
            self.events_total,
            self.events_root,
            microseconds(self.recorded_at),
            len(self.sources),
        )
        parts = [HEAD_MAGIC, fixed]
        for name, offset in self.sources:
            encoded = name.encode()
            parts.append(struct.pack(">I", len(encoded)) + encoded + struct.pack(">q", offset))
        return b"".join(parts)

    def hash(self) -> bytes:
        """The head's hash: its leaf in the tree of heads, and the next head's previous hash."""
        return merkle.leaf_hash(self.canonical_bytes())

    @property
    def first_position(self) -> int:
        """The notification id of the batch's first event (last_position + 1 if it has none)."""
        return self.last_position - self.event_count + 1


@dataclass(frozen=True)
class SealedHead:
    """A batch head as stored: with its hash and the tree of heads up to it."""

    head: BatchHead
    head_hash: bytes
    tree_root: bytes
    tree_frontier: tuple[bytes, ...]


def seal(
    previous: SealedHead | None,
    *,
    events_root: bytes,
    event_count: int,
    last_position: int | None,
    sources: Sequence[tuple[str, int]],
    now: datetime,
) -> SealedHead:
    """The head following `previous` for a batch; its time never goes back before the
    previous head's, so the heads' order and their times agree."""
    before = previous.head if previous is not None else None
    recorded_at = now if before is None else max(now, before.recorded_at)
    head = BatchHead(
        batch=1 if before is None else before.batch + 1,
        previous_hash=NO_PREVIOUS if previous is None else previous.head_hash,
        last_position=last_position if last_position is not None else _last(before),
        event_count=event_count,
        events_total=event_count + (0 if before is None else before.events_total),
        events_root=events_root,
        recorded_at=recorded_at.astimezone(UTC),
        sources=tuple(sorted(sources)),
    )
    head_hash = head.hash()
    frontier = merkle.append(
        () if previous is None else previous.tree_frontier, head.batch - 1, head_hash
    )
    return SealedHead(head, head_hash, merkle.frontier_root(frontier), tuple(frontier))


def _last(head: BatchHead | None) -> int:
    return 0 if head is None else head.last_position


class BatchHeadsTable:
    """The table of batch heads beside an events table: its DDL and its two statements."""

    COLUMNS = (
        "batch, previous_hash, last_position, event_count, events_total, events_root, "
        "recorded_at, source_names, source_offsets, head_hash, tree_root, tree_frontier"
    )

    def __init__(self, schema: str, table: str) -> None:
        self.table = table
        name = SQL("{}.{}").format(Identifier(schema), Identifier(table))
        self.create_statement: Composed = SQL(
            "CREATE TABLE IF NOT EXISTS {} ("
            "batch bigint PRIMARY KEY, previous_hash bytea NOT NULL, "
            "last_position bigint NOT NULL, event_count bigint NOT NULL, "
            "events_total bigint NOT NULL, events_root bytea NOT NULL, "
            "recorded_at timestamptz NOT NULL, source_names text[] NOT NULL, "
            "source_offsets bigint[] NOT NULL, head_hash bytea NOT NULL, "
            "tree_root bytea NOT NULL, tree_frontier bytea NOT NULL)"
        ).format(name)
        self.select_statement = SQL("SELECT " + self.COLUMNS + " FROM {}").format(name)
        self.last_statement = self.select_statement + SQL(" ORDER BY batch DESC LIMIT 1")
        self.insert_statement = SQL(
            "INSERT INTO {} (" + self.COLUMNS + ") VALUES (" + ", ".join(["%s"] * 12) + ")"
        ).format(name)

    def last(self, curs: Cursor[Any]) -> SealedHead | None:
        """The latest head, read inside the transaction that holds the events table's lock."""
        curs.execute(self.last_statement, prepare=True)
        row = curs.fetchone()
        return None if row is None else head_from_row(row)

    def insert(self, curs: Cursor[Any], sealed: SealedHead) -> None:
        """Store `sealed` in the transaction of its batch."""
        head = sealed.head
        curs.execute(
            self.insert_statement,
            (
                head.batch,
                head.previous_hash,
                head.last_position,
                head.event_count,
                head.events_total,
                head.events_root,
                head.recorded_at,
                [name for name, _ in head.sources],
                [offset for _, offset in head.sources],
                sealed.head_hash,
                sealed.tree_root,
                b"".join(sealed.tree_frontier),
            ),
            prepare=True,
        )


def head_from_row(row: Any) -> SealedHead:
    """A stored head from a row of BatchHeadsTable.COLUMNS (a tuple or a dict row)."""
    values = list(row.values()) if isinstance(row, dict) else list(row)
    (batch, previous, last, count, total, events_root, recorded_at, names, offsets) = values[:9]
    head_hash, tree_root, frontier = (bytes(v) for v in values[9:12])
    head = BatchHead(
        batch=batch,
        previous_hash=bytes(previous),
        last_position=last,
        event_count=count,
        events_total=total,
        events_root=bytes(events_root),
        recorded_at=recorded_at.astimezone(UTC),
        sources=tuple(zip(names, offsets, strict=True)),
    )
    size = merkle.HASH_SIZE
    nodes = tuple(frontier[i : i + size] for i in range(0, len(frontier), size))
    return SealedHead(head, head_hash, tree_root, nodes)
