"""A customer's agenda: what they (or their payment system) will do, and when."""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime


@dataclass(order=True)
class _Entry:
    at: datetime
    number: int
    action: Callable[[datetime], None] = field(compare=False)


class Agenda:
    """Actions kept in time order; actions due at the same time run in the order planned."""

    def __init__(self) -> None:
        self._entries: list[_Entry] = []
        self._planned = 0

    def plan(self, at: datetime, action: Callable[[datetime], None]) -> None:
        """Run `action(at)` at `at`."""
        self._planned += 1
        heapq.heappush(self._entries, _Entry(at, self._planned, action))

    def next_time(self) -> datetime | None:
        """When the next action is due; None when nothing is planned."""
        return self._entries[0].at if self._entries else None

    def pop(self) -> tuple[datetime, Callable[[datetime], None]]:
        """The next action and its time, taken off the agenda."""
        entry = heapq.heappop(self._entries)
        return entry.at, entry.action
