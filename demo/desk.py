"""The book's desk: numbers each command, hands it to the shadow ledger, keeps what was sent."""

from __future__ import annotations

import random
import uuid
from collections import Counter
from datetime import datetime
from typing import Any

from demo.records import BookCommand
from demo.shadow import Answer, Shadow


class Desk:
    """Sends the book's commands as an upstream system would, in the order it decides them."""

    def __init__(self, seed: int, shape: str) -> None:
        self.shadow = Shadow()
        self._ids = command_ids(seed, shape)
        self.sent: list[BookCommand] = []
        self.rejections: Counter[str] = Counter()

    def send(self, command_type: str, issued_at: datetime, **fields: Any) -> Answer:
        """Send one command at business time `issued_at`; answer what the ledger did with it."""
        record = {"command_id": self._new_command_id(), "issued_at": issued_at, **fields}
        command = BookCommand(command_type, record)
        self.sent.append(command)
        answer = self.shadow.send(command)
        if answer.rejection_code is not None:
            self.rejections[answer.rejection_code] += 1
        return answer

    def take_sent(self) -> list[BookCommand]:
        """The commands sent since the last call, in business-time order (stable)."""
        sent, self.sent = self.sent, []
        return sorted(sent, key=lambda c: c.issued_at)

    def _new_command_id(self) -> str:
        return next_command_id(self._ids)


def command_ids(seed: int, shape: str) -> random.Random:
    """The generator of a book's command ids: they depend on the seed and the book's shape
    (`customers`x`months`) alone, so two different books never share a command id."""
    return random.Random(f"billing-ledger-demo:{seed}:{shape}:command-ids")


def next_command_id(ids: random.Random) -> str:
    """The next command id of `ids`."""
    return str(uuid.UUID(int=ids.getrandbits(128), version=4))
