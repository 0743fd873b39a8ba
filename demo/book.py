"""The book: a deterministic run of a subscription business, as the commands it sends.

`Book(customers, months, seed).months()` yields each business month's commands, decided day by
day: the catalogue first (at midnight on the first), then each customer's commands in business
time order. The same seed gives the same commands, ids and all. The book is pure: it decides
from what the ledger's own domain, run in memory (demo/shadow.py), answered to its earlier
commands, and sends nothing anywhere; a driver publishes it.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import partial

from demo.catalogue import PRICE_RISE_NOTICE, STARTER_NEW_PRICE_MINOR, CatalogueYear, plan_weights
from demo.changes import announce_price_rise
from demo.customers import draw_customer
from demo.desk import Desk, command_ids, next_command_id
from demo.life import Life
from demo.records import BookCommand
from ledger.calendar import IntervalUnit, period_boundary

START = datetime(2025, 1, 1, tzinfo=UTC)
DEFAULT_CUSTOMERS = 200
DEFAULT_MONTHS = 12
DEFAULT_SEED = 13
# The share of customers already on the books in the first month; the rest sign up over time.
FIRST_MONTH_SHARE = 0.45
DAY = timedelta(days=1)


@dataclass(frozen=True)
class BookMonth:
    """One business month of the book: its catalogue commands, then its account commands."""

    number: int
    start: datetime
    catalogue: tuple[BookCommand, ...]
    commands: tuple[BookCommand, ...]
    # What the ledger will refuse this month, by code: the book's few deliberate mistakes.
    rejections: dict[str, int] = field(default_factory=dict)

    @property
    def all(self) -> tuple[BookCommand, ...]:
        """Every command of the month, the catalogue's first."""
        return self.catalogue + self.commands


class Book:
    """A subscription business of `customers` customers over `months` months."""

    def __init__(
        self,
        customers: int = DEFAULT_CUSTOMERS,
        months: int = DEFAULT_MONTHS,
        seed: int = DEFAULT_SEED,
        start: datetime = START,
    ) -> None:
        if customers < 1 or months < 1:
            raise ValueError(f"a book needs customers and months, got {customers} and {months}")
        self.customers = customers
        self.month_count = months
        self.seed = seed
        self.start = start

    @property
    def shape(self) -> str:
        """The book's size, as `customers`x`months`."""
        return f"{self.customers}x{self.month_count}"

    @property
    def first_command_id(self) -> str:
        """The id of the book's first command, known without deciding the book."""
        return next_command_id(command_ids(self.seed, self.shape))

    def months(self) -> Iterator[BookMonth]:
        """The book's months in order, each decided when asked for."""
        return _Run(self).months()

    def commands(self) -> Iterator[BookCommand]:
        """Every command of the book in the order to send them."""
        for month in self.months():
            yield from month.all


class _Run:
    """One playing of a book: the desk, the customers and when each next has something to do."""

    def __init__(self, book: Book) -> None:
        self.book = book
        self.desk = Desk(book.seed, book.shape)
        self.catalogue = CatalogueYear(book.month_count)
        self.retired: set[str] = set()
        self.lives: dict[str, Life] = {}
        self.wake: defaultdict[date, set[str]] = defaultdict(set)
        self.signups = _signups(book)

    def months(self) -> Iterator[BookMonth]:
        for number in range(1, self.book.month_count + 1):
            start = period_boundary(self.book.start, IntervalUnit.MONTH, 1, number - 1)
            end = period_boundary(self.book.start, IntervalUnit.MONTH, 1, number)
            self.catalogue.run(self.desk, number, start, self.retired)
            catalogue = tuple(self.desk.take_sent())
            if number == self.catalogue.price_rise_month:
                self._announce_price_rise(start + timedelta(hours=9))
            day = start
            while day < end:
                self._play_day(day)
                day += DAY
            rejections = dict(sorted(self.desk.rejections.items()))
            self.desk.rejections.clear()
            yield BookMonth(number, start, catalogue, tuple(self.desk.take_sent()), rejections)

    def _play_day(self, day: datetime) -> None:
        end = day + DAY
        for at, number in self.signups.pop(day.date(), []):
            customer = draw_customer(
                random.Random(f"billing-ledger-demo:{self.book.seed}:customer:{number}"),
                number,
                plan_weights(self.retired),
            )
            life = Life(customer, self.desk, self.book.seed)
            self.lives[life.account_id] = life
            life.sign_up(at, customer.plan_id)
            self.wake[day.date()].add(life.account_id)
        for account_id in sorted(self.wake.pop(day.date(), set())):
            life = self.lives[account_id]
            life.run_until(end)
            next_time = life.next_time()
            if next_time is not None:
                self.wake[next_time.date()].add(account_id)

    def _announce_price_rise(self, at: datetime) -> None:
        action = partial(
            announce_price_rise, new_price_minor=STARTER_NEW_PRICE_MINOR, notice=PRICE_RISE_NOTICE
        )
        for account_id, life in self.lives.items():
            life.plan(at, action)
            self.wake[at.date()].add(account_id)


def _signups(book: Book) -> dict[date, list[tuple[datetime, int]]]:
    """When each customer signs up, by day, in time order."""
    rng = random.Random(f"billing-ledger-demo:{book.seed}:signups")
    by_day: defaultdict[date, list[tuple[datetime, int]]] = defaultdict(list)
    for number in range(1, book.customers + 1):
        first = rng.random() < FIRST_MONTH_SHARE
        month = 0 if first else rng.randrange(book.month_count)
        start = period_boundary(book.start, IntervalUnit.MONTH, 1, month)
        end = period_boundary(book.start, IntervalUnit.MONTH, 1, month + 1)
        day = start + DAY * rng.randrange((end - start).days)
        at = day + timedelta(minutes=rng.randint(8 * 60, 20 * 60))
        by_day[at.date()].append((at, number))
    return {d: sorted(signups) for d, signups in by_day.items()}


def count_by_type(commands: list[BookCommand]) -> Counter[str]:
    """How many commands of each type."""
    return Counter(c.type for c in commands)
