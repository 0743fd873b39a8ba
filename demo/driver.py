"""Plays a book through Kafka as an upstream system: publish it month by month, count the answers.

The driver reads `billing.command-results` from its end, fixed before the first command is
sent, so no answer is missed. Months follow each other without waiting for the ledger to
drain: the commands of one account share a partition, so the ledger sees them in the order
they were decided. Only the catalogue reaches across accounts (a Subscribe must see the plan
it names, at the price the book saw), so a month with catalogue commands first waits until
every earlier command is answered, then sends its catalogue and waits for that too. At most
MONTHS_IN_FLIGHT months are unanswered at once, which keeps the progress honest.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack, closing
from dataclasses import dataclass, field

from demo.ahead import months_ahead
from demo.book import Book
from demo.records import BookCommand
from infra.kafka import KafkaClients, Producer, Reader
from runtime.send import encode_command
from wire.codec import AvroCodec
from wire.topics import RESULTS_TOPIC

POLL_S = 0.2
MONTHS_IN_FLIGHT = 2


@dataclass
class Progress:
    """How far the book has got through the ledger."""

    months: int
    # The latest month sent, and how many months have every command answered.
    month: int = 0
    business_month: str = ""
    months_done: int = 0
    sent: int = 0
    answered: int = 0
    rejected: int = 0
    events: int = 0
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None  # when the last command was answered
    settle_s: float = 0.0  # how long the read models took to catch up after that
    rejections: dict[str, int] = field(default_factory=dict)

    @property
    def elapsed_s(self) -> float:
        """Wall seconds from the book's start to its last answer (or to now)."""
        return (self.finished or time.monotonic()) - self.started

    @property
    def commands_per_s(self) -> float:
        """Commands answered per wall second so far."""
        return self.answered / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def as_dict(self) -> dict[str, object]:
        """The progress as plain values, for a JSON line."""
        return {
            "month": self.month,
            "months": self.months,
            "months_done": self.months_done,
            "business_month": self.business_month,
            "sent": self.sent,
            "answered": self.answered,
            "rejected": self.rejected,
            "events": self.events,
            "elapsed_s": round(self.elapsed_s, 1),
            "commands_per_s": round(self.commands_per_s),
        }


class Unanswered(Exception):
    """Commands the ledger did not answer in time."""


class Stopped(Exception):
    """The driver was told to stop before the book was played."""


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
        stop: threading.Event | None = None,
    ) -> None:
        self.kafka = kafka
        self.codec = codec
        self.report = report
        self.answer_timeout_s = answer_timeout_s
        self.months_per_minute = months_per_minute
        self.stop = stop or threading.Event()

    def play(self, book: Book) -> Progress:
        """Send the whole book, month by month; answer the final progress once all is answered."""
        progress = Progress(book.month_count)
        with ExitStack() as stack:
            producer = self.kafka.producer()
            stack.callback(producer.close)
            reader = self.kafka.reader()
            stack.callback(reader.close)
            reader.assign_at_end(RESULTS_TOPIC)  # before anything is sent: no answer is missed
            answers = _Answers(reader, self.codec, progress, self, self.report)
            months = stack.enter_context(closing(months_ahead(book)))
            for month in months:
                self._pace(answers)
                answers.wait_until_done(month.number - MONTHS_IN_FLIGHT)
                progress.month = month.number
                progress.business_month = month.start.strftime("%Y-%m")
                if month.catalogue:
                    answers.wait_until_done(month.number - 1)
                    self._send(producer, answers, month.number, month.catalogue)
                    answers.wait_for_all_sent()
                self._send(producer, answers, month.number, month.commands)
                answers.month_sent(month.number)
            answers.wait_until_done(book.month_count)
        progress.finished = time.monotonic()
        return progress

    def _pace(self, answers: _Answers) -> None:
        """With --speed, hold the next month back until its minute share has passed."""
        if self.months_per_minute > 0:
            due = answers.progress.month * 60 / self.months_per_minute
            answers.wait(lambda: answers.progress.elapsed_s >= due)

    def _send(
        self, producer: Producer, answers: _Answers, month: int, commands: Sequence[BookCommand]
    ) -> None:
        answers.expect(month, [c.record["command_id"] for c in commands])
        producer.produce_batch([encode_command(self.codec, c.type, c.record) for c in commands])
        answers.progress.sent += len(commands)
        self.report(answers.progress)


class _Answers:
    """The commands sent and not yet answered, by month, and the reading of their results."""

    def __init__(
        self,
        reader: Reader,
        codec: AvroCodec,
        progress: Progress,
        driver: Driver,
        report: Callable[[Progress], None],
    ) -> None:
        self.reader = reader
        self.codec = codec
        self.progress = progress
        self.timeout_s = driver.answer_timeout_s
        self.stop = driver.stop
        self.report = report
        self.month_of: dict[str, int] = {}  # command id -> its month, until answered
        self.unanswered: dict[int, int] = {}  # month -> commands sent and not answered
        self.last_sent = 0  # the last month whose commands are all sent

    def expect(self, month: int, command_ids: list[str]) -> None:
        """Count the answers to `command_ids`, commands of `month`, from now on."""
        self.month_of.update(dict.fromkeys(command_ids, month))
        self.unanswered[month] = self.unanswered.get(month, 0) + len(command_ids)

    def month_sent(self, month: int) -> None:
        """Every command of `month` is sent: once answered, the month is done."""
        self.last_sent = month
        self._advance()

    def wait_for_all_sent(self) -> None:
        """Read results until every command sent so far is answered."""
        self.wait(lambda: not self.month_of)

    def wait_until_done(self, month: int) -> None:
        """Read results until every month up to `month` is answered."""
        self.wait(lambda: self.progress.months_done >= month)

    def wait(self, done: Callable[[], bool]) -> None:
        """Read and count results until `done()`; Stopped when the driver is told to stop,
        Unanswered when commands wait and no answer came for the timeout."""
        deadline = time.monotonic() + self.timeout_s
        while not done():
            if self.stop.is_set():
                raise Stopped(f"stopped with {len(self.month_of)} commands unanswered")
            if not self.month_of:
                deadline = time.monotonic() + self.timeout_s
            elif time.monotonic() > deadline:
                raise Unanswered(
                    f"{len(self.month_of)} commands unanswered after {self.timeout_s:.0f} s "
                    "without an answer (is the ledger running?)"
                )
            answered = sum(self._count(m.value) for m in self.reader.poll_batch(POLL_S))
            if answered:
                deadline = time.monotonic() + self.timeout_s
                self._advance()
            self.report(self.progress)

    def _count(self, value: bytes | None) -> bool:
        if value is None:
            return False
        result = self.codec.decode(value).record
        month = self.month_of.pop(result["command_id"], None)
        if month is None:
            return False  # another sender's, or a redelivery already counted
        self.unanswered[month] -= 1
        progress = self.progress
        progress.answered += 1
        progress.events += len(result["event_ids"])
        if result["status"] == "REJECTED":
            progress.rejected += 1
            code = result["rejection"]["code"]
            progress.rejections[code] = progress.rejections.get(code, 0) + 1
        return True

    def _advance(self) -> None:
        progress = self.progress
        while progress.months_done < self.last_sent and not self.unanswered.get(
            progress.months_done + 1
        ):
            progress.months_done += 1
