"""What the store knew when: recording times as position cutoffs, and the account events up to one.

Batches are committed in position order with recorded times that never go back
(docs/audit.md), so what the ledger knew at time K is a prefix of the history: the events up
to the last position of the last batch recorded at or before K.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from psycopg.sql import SQL, Identifier

from audit.records import OTHER_TOPICS, VIEW_EVENTS, account_record, event_type, occurred_at
from audit.replay import Replayed
from audit.store import EVENTS_TABLE, FETCH_ROWS, Snapshot
from ledger.account import account_uuid


@dataclass(frozen=True)
class Knowledge:
    """The prefix of the history recorded by `known_at`: up to `position`, in `batches` batches."""

    known_at: datetime | None  # None: everything in the snapshot
    position: int
    batches: int
    recorded_at: datetime | None  # the time of the last batch it holds

    def describe(self) -> str:
        """One line: when, and how much of the history that is."""
        if self.known_at is None:
            return f"everything recorded (positions up to {self.position})"
        last = "none" if self.recorded_at is None else self.recorded_at.isoformat()
        return (
            f"known at {self.known_at.isoformat()}: positions up to {self.position}, "
            f"{self.batches} batches, the last recorded at {last}"
        )


class History:
    """The account events of one snapshot of the store, and when each batch was recorded."""

    def __init__(self, store: Snapshot) -> None:
        self.store = store
        rows = store.connection.execute(
            SQL("SELECT last_position, recorded_at FROM {} ORDER BY batch").format(
                Identifier(store.schema, store.heads_table.table)
            )
        ).fetchall()
        self._last_positions = [int(row[0]) for row in rows]
        self._recorded = [row[1] for row in rows]
        (last,) = store.connection.execute(
            SQL("SELECT coalesce(max(notification_id), 0) FROM {}").format(
                Identifier(store.schema, EVENTS_TABLE)
            )
        ).fetchone() or (0,)
        self.last_position = int(last)

    def everything(self) -> Knowledge:
        """All the events in the snapshot."""
        return Knowledge(None, self.last_position, len(self._recorded), None)

    def known_at(self, moment: datetime) -> Knowledge:
        """The events of the batches recorded at or before `moment`."""
        batches = 0
        while batches < len(self._recorded) and self._recorded[batches] <= moment:
            batches += 1
        if not batches:
            return Knowledge(moment, 0, 0, None)
        return Knowledge(
            moment, self._last_positions[batches - 1], batches, self._recorded[batches - 1]
        )

    def recorded_at(self, position: int) -> datetime | None:
        """When the batch holding `position` was recorded (None after the last head)."""
        index = bisect_left(self._last_positions, position)
        return self._recorded[index] if index < len(self._recorded) else None

    def account_events(
        self, up_to: int, account_id: str | None = None, as_of: datetime | None = None
    ) -> Iterator[Replayed]:
        """The account events replay applies (audit.records.VIEW_EVENTS), at positions up to
        `up_to`, of one account or all, that happened by `as_of` if given; by position.

        Events of other kinds are left out by the store; those after `as_of` are skipped on
        their business time alone, before their state is parsed.
        """
        statement = SQL(
            "SELECT notification_id, topic, originator_version, state FROM {} "
            "WHERE notification_id <= %s AND topic <> ALL(%s){} ORDER BY notification_id"
        ).format(
            Identifier(self.store.schema, EVENTS_TABLE),
            SQL("") if account_id is None else SQL(" AND originator_id = %s"),
        )
        params: tuple[object, ...] = (up_to, list(OTHER_TOPICS))
        if account_id is not None:
            params += (account_uuid(account_id),)
        with self.store.connection.cursor(name="replay", binary=True) as cursor:
            cursor.itersize = FETCH_ROWS
            cursor.execute(statement, params)
            for position, topic, version, state in cursor:
                kind = event_type(topic)
                if kind is None or kind not in VIEW_EVENTS:
                    continue
                at = occurred_at(state)
                if as_of is not None and at > as_of:
                    continue
                yield Replayed(position, kind, account_record(state, version, at))
