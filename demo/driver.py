"""Plays a book through Kafka as an upstream system: publish a month, wait for its answers.

Each month's catalogue commands go first and are answered before the month's account
commands are sent (a Subscribe must see the plan it names); then the whole month is
published and the driver reads `billing.command-results` until every command is answered.
"""

from __future__ import annotations

import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from demo.book import Book, BookMonth
from demo.records import BookCommand
from infra.kafka import Consumer, KafkaClients, Producer
from runtime.send import encode_command
from wire.codec import AvroCodec
from wire.topics import RESULTS_TOPIC

POLL_S = 0.2


@dataclass
class Progress:
    """How far the book has got through the ledger."""

    months: int
    month: int = 0
    business_month: str = ""
    sent: int = 0
    answered: int = 0
    rejected: int = 0
    events: int = 0
    # Whether every command of the month so far is answered: the month is done.
    month_done: bool = False
    started: float = field(default_factory=time.monotonic)
    rejections: dict[str, int] = field(default_factory=dict)

    @property
    def elapsed_s(self) -> float:
        """Wall seconds since the book started."""
        return time.monotonic() - self.started

    @property
    def commands_per_s(self) -> float:
        """Commands answered per wall second so far."""
        return self.answered / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def as_dict(self) -> dict[str, object]:
        """The progress as plain values, for a JSON line."""
        return {
            "month": self.month,
            "months": self.months,
            "business_month": self.business_month,
            "sent": self.sent,
            "answered": self.answered,
            "rejected": self.rejected,
            "events": self.events,
            "elapsed_s": round(self.elapsed_s, 1),
            "commands_per_s": round(self.commands_per_s),
        }


def ahead(months: Iterator[BookMonth], depth: int = 2) -> Iterator[BookMonth]:
    """The months of `months`, decided in a thread up to `depth` months ahead of the sender.

    Deciding a month takes about as long as the ledger takes to answer one; the ledger's
    loops wait on PostgreSQL and Kafka much of that time, so the two overlap.
    """
    decided: queue.Queue[BookMonth | BaseException | None] = queue.Queue(maxsize=depth)

    def decide() -> None:
        try:
            for month in months:
                decided.put(month)
            decided.put(None)
        except BaseException as error:  # handed to the sender, which raises it
            decided.put(error)

    threading.Thread(target=decide, name="book", daemon=True).start()
    while (month := decided.get()) is not None:
        if isinstance(month, BaseException):
            raise month
        yield month


class Unanswered(Exception):
    """Commands the ledger did not answer in time."""


class Driver:
    """Publishes a book's commands and counts the ledger's answers to them."""

    def __init__(
        self,
        kafka: KafkaClients,
        codec: AvroCodec,
        report: Callable[[Progress], None],
        *,
        answer_timeout_s: float = 120.0,
        months_per_minute: float = 0.0,
    ) -> None:
        self.kafka = kafka
        self.codec = codec
        self.report = report
        self.answer_timeout_s = answer_timeout_s
        self.months_per_minute = months_per_minute

    def play(self, book: Book) -> Progress:
        """Send the whole book, month by month; answer the final progress."""
        progress = Progress(book.month_count)
        producer = self.kafka.producer()
        # A group of its own, reading the results from the start: nothing is missed.
        consumer = self.kafka.consumer(f"billing-ledger-demo-{uuid.uuid4()}")
        consumer.subscribe([RESULTS_TOPIC], lambda _: None, lambda _: None)
        try:
            for month in ahead(book.months()):
                self._pace(progress)
                progress.month = month.number
                progress.business_month = month.start.strftime("%Y-%m")
                progress.month_done = False
                for part in (month.catalogue, month.commands):
                    self._send_and_wait(producer, consumer, part, progress)
                progress.month_done = True
                self.report(progress)
        finally:
            producer.close()
            consumer.close()
        return progress

    def _pace(self, progress: Progress) -> None:
        if self.months_per_minute > 0:
            due = progress.month * 60 / self.months_per_minute
            time.sleep(max(0.0, due - progress.elapsed_s))

    def _send_and_wait(
        self,
        producer: Producer,
        consumer: Consumer,
        commands: Sequence[BookCommand],
        progress: Progress,
    ) -> None:
        if not commands:
            return
        waiting = {c.record["command_id"] for c in commands}
        producer.produce_batch([encode_command(self.codec, c.type, c.record) for c in commands])
        progress.sent += len(commands)
        self.report(progress)
        deadline = time.monotonic() + self.answer_timeout_s
        while waiting:
            if time.monotonic() > deadline:
                raise Unanswered(f"{len(waiting)} commands of month {progress.month} unanswered")
            for message in consumer.poll_batch(POLL_S):
                self._count(message.value, waiting, progress)
            self.report(progress)

    def _count(self, value: bytes | None, waiting: set[str], progress: Progress) -> None:
        if value is None:
            return
        result = self.codec.decode(value).record
        if result["command_id"] not in waiting:
            return
        waiting.discard(result["command_id"])
        progress.answered += 1
        progress.events += len(result["event_ids"])
        if result["status"] == "REJECTED":
            progress.rejected += 1
            code = result["rejection"]["code"]
            progress.rejections[code] = progress.rejections.get(code, 0) + 1
