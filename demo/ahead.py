"""The book's months, decided in a process of their own ahead of the driver that sends them.

Deciding a month runs the ledger's domain in memory (demo/shadow.py), some half a
millisecond of CPU per command. In the demo's process that would take the interpreter lock
from the ledger's own loops, which are what the demo waits for; in a process of its own it
runs beside them, on the other core.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import signal
import traceback
from collections.abc import Generator
from typing import Any

from demo.book import Book, BookMonth

POLL_S = 1.0


def months_ahead(book: Book, depth: int = 2) -> Generator[BookMonth, None, None]:
    """The months of `book` in order, decided up to `depth` months ahead in a child process."""
    # spawn: a clean interpreter, not a fork of one whose threads may hold locks.
    context = multiprocessing.get_context("spawn")
    decided: Any = context.Queue(maxsize=depth)
    child = context.Process(
        target=_decide, args=(book, decided, os.getpid()), name="book", daemon=True
    )
    child.start()
    try:
        while (month := _next(decided, child)) is not None:
            yield month
    finally:
        if child.is_alive():
            child.kill()
        child.join()


def _next(decided: Any, child: Any) -> BookMonth | None:
    while True:
        try:
            item = decided.get(timeout=POLL_S)
        except queue.Empty:
            if not child.is_alive():
                raise BookFailed(f"the book's process ended, exit code {child.exitcode}") from None
            continue
        if isinstance(item, str):
            raise BookFailed(f"deciding the book failed:\n{item}")
        assert item is None or isinstance(item, BookMonth)
        return item


def _decide(book: Book, decided: Any, parent: int) -> None:
    """The child: decide every month and hand it over; a failure as its traceback's text."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the demo's own process handles Ctrl-C
    try:
        for month in book.months():
            _put(decided, month, parent)
        _put(decided, None, parent)
    except Exception:
        _put(decided, traceback.format_exc(), parent)


def _put(decided: Any, item: object, parent: int) -> None:
    """Hand `item` over once there is room; give up if the demo's process has gone."""
    while True:
        try:
            decided.put(item, timeout=POLL_S)
            return
        except queue.Full:
            if os.getppid() != parent:
                return


class BookFailed(Exception):
    """The book could not be decided."""
