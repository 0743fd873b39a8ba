"""One loop for every consumer whose read positions are stored with what it wrote.

The command consumer stores its Kafka offsets with the events of a batch, the projector with
its rows. Both read the same way: seek each assigned partition to just after its stored
offset, poll a batch, process it; after a batch that failed, seek back to the stored offsets
before polling again, so nothing is skipped and nothing is read from Kafka's own offsets.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

import structlog

from infra.kafka.protocols import Consumer, Message, Partition

logger = structlog.get_logger(__name__)

Result = TypeVar("Result")


class TrackedLoop(Generic[Result]):
    """Polls `consumer` and hands each batch to `process`, resuming from stored offsets.

    `stored_offset` answers the last offset of a partition that `process` has stored. A seek
    that fails when partitions are assigned (the database is down during a rebalance) is
    retried before the next poll instead of letting the consumer read from offset 0.
    `on_rebalance`, if given, is called whenever partitions are assigned or revoked.
    """

    def __init__(
        self,
        name: str,
        consumer: Consumer,
        stored_offset: Callable[[Partition], int | None],
        process: Callable[[list[Message]], Result],
        idle: Callable[[], Result],
        on_rebalance: Callable[[], None] | None = None,
    ) -> None:
        self.name = name
        self.consumer = consumer
        self.stored_offset = stored_offset
        self.process = process
        self.idle = idle
        self.on_rebalance = on_rebalance or _nothing
        self._resync = False

    def subscribe(self, topics: Sequence[str]) -> None:
        """Join the consumer group on `topics`; assigned partitions resume from stored offsets."""
        self.consumer.subscribe(topics, self.on_assigned, self.on_revoked)

    def on_assigned(self, partitions: Sequence[Partition]) -> None:
        """Seek newly assigned partitions to their stored offsets, or retry before next poll."""
        self.on_rebalance()
        try:
            self.seek_to_stored(partitions)
        except Exception as error:  # the client would swallow it and read from offset 0
            logger.warning(f"{self.name}.seek.failed", error=str(error), retry="before next poll")
            self._resync = True

    def on_revoked(self, partitions: Sequence[Partition]) -> None:
        """Say which partitions this worker no longer reads."""
        self.on_rebalance()
        logger.info("kafka.partitions.revoked", partitions=[f"{t}/{p}" for t, p in partitions])

    def seek_to_stored(self, partitions: Sequence[Partition]) -> None:
        """Resume each partition after its stored position (from the start if none)."""
        resume_after(
            self.consumer, partitions, self.stored_offset, f"{self.name}.partition.resumed"
        )

    def resync(self) -> None:
        """Seek back to the stored offsets before the next poll (the last batch was dropped)."""
        self._resync = True

    def run_once(self, timeout_s: float = 0.5) -> Result:
        """Poll one batch and process it; answer what `process` answered (`idle()` if none).

        If processing fails, the consumer has already moved past the batch: the next call
        first seeks back to the stored offsets.
        """
        if self._resync:
            self.seek_to_stored(self.consumer.assignment())
            self._resync = False
        messages = self.consumer.poll_batch(timeout_s)
        if self._resync or not messages:
            return self.idle()  # a seek failed during this poll's rebalance: read again
        try:
            return self.process(messages)
        except BaseException:
            self._resync = True
            raise


def resume_after(
    consumer: Consumer,
    partitions: Sequence[Partition],
    stored_offset: Callable[[Partition], int | None],
    log_event: str,
) -> None:
    """Seek each partition to just after its stored offset (its start if none), and say so."""
    for partition in partitions:
        stored = stored_offset(partition)
        consumer.seek(partition, 0 if stored is None else stored + 1)
        logger.info(log_event, topic=partition[0], partition=partition[1], stored_offset=stored)


def _nothing() -> None:
    """No rebalance hook."""
