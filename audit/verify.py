"""`ledger audit verify`: recompute every leaf, root and link of the history, stop at the first break.

The walk trusts nothing stored but the events' own columns: each batch's events are hashed
again (their canonical bytes put together by the server from the columns) and compared with its head, each head is hashed again and compared with its stored
hash and the next head's link, the tree of heads is grown again and compared with each
stored root, and the Kafka positions in the tracking table are compared with the heads.
From a checkpoint, the heads up to it are checked against its signed root (no events read),
and the events are hashed again only after it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NoReturn

from audit.checkpoint import Checkpoint
from audit.store import Snapshot
from infra import merkle
from infra.batch_heads import EPOCH, NO_PREVIOUS, SealedHead
from infra.merkle import leaf_hash


@dataclass(frozen=True)
class Verified:
    """The history checked whole: how much, and the root it gives."""

    batches: int
    events: int
    last_position: int
    tree_root: bytes
    recorded_at: datetime | None
    events_hashed: int

    def describe(self) -> str:
        """One line for people."""
        at = self.recorded_at.isoformat() if self.recorded_at else "-"
        return (
            f"OK: {self.events} events in {self.batches} batches, positions up to "
            f"{self.last_position}, last recorded at {at}; tree of heads size {self.batches}, "
            f"root {self.tree_root.hex()}; {self.events_hashed} events hashed again"
        )


@dataclass(frozen=True)
class Broken:
    """The first thing that does not hold: where, and what differs."""

    batch: int | None
    position: int | None
    problem: str

    def describe(self) -> str:
        """One line for people."""
        where = [f"batch {self.batch}"] if self.batch is not None else []
        where += [f"position {self.position}"] if self.position is not None else []
        return f"BROKEN at {', '.join(where) or 'the store'}: {self.problem}"


class Break(Exception):
    """Raised inside the walk at the first break; carries it."""

    def __init__(self, broken: Broken) -> None:
        super().__init__(broken.describe())
        self.broken = broken


def verify(snapshot: Snapshot, trusted: Checkpoint | None = None) -> Verified | Broken:
    """Walk the store in `snapshot`; from `trusted` on, if given."""
    try:
        return _Walk(snapshot, trusted).run()
    except Break as stop:
        return stop.broken


class _Walk:
    """The state of one verification: the last head checked and the tree of heads so far."""

    def __init__(self, snapshot: Snapshot, trusted: Checkpoint | None) -> None:
        self.snapshot = snapshot
        self.trusted = trusted
        self.previous: SealedHead | None = None
        self.frontier: list[bytes] = []
        self.sources: dict[str, int] = {}
        self.hashed = 0

    def run(self) -> Verified | Broken:
        events_from = 0
        if self.trusted is not None:
            events_from = self._heads_up_to(self.trusted)
        events = _Events(self.snapshot.canonical_events(after_position=events_from))
        for sealed in self.snapshot.heads(after_batch=self._batch()):
            self._check_head(sealed, events)
            self._check_events(sealed, events)
            self._advance(sealed)
        if (extra := events.peek()) is not None:
            self._fail(
                None, extra[0], "this event is in no batch head: it was added after the last batch"
            )
        self._check_positions()
        last = self.previous.head if self.previous else None
        return Verified(
            batches=self._batch(),
            events=last.events_total if last else 0,
            last_position=last.last_position if last else 0,
            tree_root=merkle.frontier_root(self.frontier),
            recorded_at=last.recorded_at if last else None,
            events_hashed=self.hashed,
        )

    def _batch(self) -> int:
        return self.previous.head.batch if self.previous else 0

    def _heads_up_to(self, trusted: Checkpoint) -> int:
        """Check heads 1..size against the checkpoint's root; answer the position to go on from."""
        for sealed in self.snapshot.heads():
            if sealed.head.batch > trusted.tree_size:
                break
            self._check_head(sealed, None)
            self._advance(sealed)
        if self._batch() != trusted.tree_size:
            self._fail(
                None,
                None,
                f"the checkpoint covers {trusted.tree_size} batches, the store has {self._batch()}",
            )
        root = merkle.frontier_root(self.frontier)
        if root != trusted.root:
            self._fail(
                self._batch(),
                None,
                f"the heads up to the checkpoint give root {root.hex()}, the checkpoint says {trusted.root.hex()}: the history before it was rewritten",
            )
        assert self.previous is not None
        return self.previous.head.last_position

    def _check_head(self, sealed: SealedHead, events: _Events | None) -> None:
        head = sealed.head
        expected = self._batch() + 1
        if head.batch != expected:
            self._fail(
                expected,
                None,
                f"the heads go from batch {expected - 1} to batch {head.batch}: batch {expected} is missing",
            )
        previous_hash = self.previous.head_hash if self.previous else NO_PREVIOUS
        if head.previous_hash != previous_hash:
            self._fail(
                head.batch,
                None,
                f"its link to the previous head is {head.previous_hash.hex()}, the previous head hashes to {previous_hash.hex()}",
            )
        if (recomputed := head.hash()) != sealed.head_hash:
            self._fail(
                head.batch,
                None,
                f"its stored hash is {sealed.head_hash.hex()}, its fields hash to {recomputed.hex()}: the head was changed",
            )
        before = self.previous.head if self.previous else None
        if head.recorded_at < (before.recorded_at if before else EPOCH):
            self._fail(
                head.batch,
                None,
                f"recorded at {head.recorded_at.isoformat()}, before the previous batch",
            )
        total = head.event_count + (before.events_total if before else 0)
        if head.events_total != total:
            self._fail(
                head.batch,
                None,
                f"it counts {head.events_total} events in all, the heads add up to {total}",
            )
        last = before.last_position if before else 0
        if head.first_position <= last:
            self._fail(
                head.batch,
                head.first_position,
                f"its positions start at {head.first_position}, not after the previous batch's last ({last})",
            )

    def _check_events(self, sealed: SealedHead, events: _Events) -> None:
        head = sealed.head
        span = f"the batch holds positions {head.first_position}..{head.last_position}"
        leaves: list[bytes] = []
        for position in range(head.first_position, head.last_position + 1):
            row = events.take_up_to(head.last_position)
            if row is None or row[0] > position:
                self._fail(
                    head.batch,
                    position,
                    f"{span}; this one is missing: an event was deleted or moved",
                )
            if row[0] < position:
                self._fail(
                    head.batch,
                    row[0],
                    f"{span}; this event lies before them, after the previous batch: it was added",
                )
            leaves.append(leaf_hash(row[1]))
        if (extra := events.take_up_to(head.last_position)) is not None:
            self._fail(head.batch, extra[0], f"{span}; this event is extra: it was added")
        self.hashed += len(leaves)
        if (events_root := merkle.root(leaves)) != head.events_root:
            self._fail(
                head.batch,
                head.first_position,
                f"the events at positions {head.first_position}..{head.last_position} hash to root {events_root.hex()}, the head says {head.events_root.hex()}: an event in this batch was altered, replaced or moved",
            )

    def _advance(self, sealed: SealedHead) -> None:
        self.frontier = merkle.append(self.frontier, sealed.head.batch - 1, sealed.head_hash)
        root = merkle.frontier_root(self.frontier)
        if root != sealed.tree_root or tuple(self.frontier) != sealed.tree_frontier:
            self._fail(
                sealed.head.batch,
                None,
                f"the tree of heads up to it has root {root.hex()}, the head stores {sealed.tree_root.hex()}",
            )
        self.sources.update(sealed.head.sources)
        self.previous = sealed

    def _check_positions(self) -> None:
        stored = self.snapshot.positions()
        for name in sorted(stored.keys() | self.sources.keys()):
            in_heads, in_table = self.sources.get(name), stored.get(name)
            if in_heads != in_table:
                self._fail(
                    None,
                    None,
                    f"Kafka position {name}: the tracking table says {_offset(in_table)}, the last batch head that stored it says {_offset(in_heads)}",
                )

    def _fail(self, batch: int | None, position: int | None, problem: str) -> NoReturn:
        raise Break(Broken(batch, position, problem))


def _offset(offset: int | None) -> str:
    return "nothing" if offset is None else f"offset {offset}"


class _Events:
    """The stored events by position, with one row of look-ahead."""

    def __init__(self, rows: Iterator[Any]) -> None:
        self._rows = rows
        self._next: Any = next(self._rows, None)

    def peek(self) -> Any:
        """The next row, not taken."""
        return self._next

    def take_up_to(self, position: int) -> Any:
        """The next row if its position is at most `position`, else None (it stays)."""
        row = self._next
        if row is None or row[0] > position:
            return None
        self._next = next(self._rows, None)
        return row
