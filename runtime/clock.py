"""The optional clock of `ledger run`: AdvanceClock for every account, at the wall-clock time.

The domain never reads the clock; this edge does, and publishes the time as commands like any
upstream system would, so a clock tick is replayable and auditable like every other command.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import psycopg
import structlog

from infra.kafka import Outgoing, Producer
from infra.postgres import Reconnecting
from projections.balances import account_ids
from wire.codec import AvroCodec
from wire.topics import COMMANDS_TOPIC

logger = structlog.get_logger(__name__)


class Clock:
    """Every `interval_s`, publishes AdvanceClock(now) for each account the read model knows."""

    def __init__(
        self,
        producer: Producer,
        codec: AvroCodec,
        database_url: str,
        interval_s: float,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.producer = producer
        self.codec = codec
        self.interval_s = interval_s
        self.now = now
        self._database = Reconnecting(database_url, autocommit=True)
        self._next_tick = time.monotonic()

    def run_once(self) -> int:
        """Publish a tick for every account if one is due; answer how many were published."""
        if time.monotonic() < self._next_tick:
            return 0
        self._next_tick = time.monotonic() + self.interval_s
        issued_at = self.now().replace(microsecond=0)
        messages = [self._tick(account_id, issued_at) for account_id in self._accounts()]
        if messages:
            self.producer.produce_batch(messages)
        logger.info("clock.ticked", accounts=len(messages), issued_at=issued_at.isoformat())
        return len(messages)

    def close(self) -> None:
        """Close the clock's connection."""
        self._database.close()

    def _accounts(self) -> list[str]:
        try:
            return account_ids(self._database.get())
        except psycopg.errors.UndefinedTable:
            return []  # no account projected yet

    def _tick(self, account_id: str, issued_at: datetime) -> Outgoing:
        record = {"command_id": str(uuid.uuid4()), "account_id": account_id, "issued_at": issued_at}
        value = self.codec.encode("billing.commands.AdvanceClock", record)
        return Outgoing(COMMANDS_TOPIC, account_id.encode(), value)
