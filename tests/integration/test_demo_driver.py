"""The demo's driver plays a book through the real pipeline: Kafka, the ledger, PostgreSQL."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator

import pytest

from demo.book import Book
from demo.driver import Driver, Progress
from infra.config import Settings
from infra.kafka import clients
from runtime import runner
from tests.helpers import SESSION_TIMEOUT_MS, Servers
from wire.codec import AvroCodec

pytestmark = pytest.mark.integration
SMALL_BOOK = {"customers": 20, "months": 2, "seed": 5}


@pytest.fixture(name="settings")
def fixture_settings(servers: Servers) -> Settings:
    """Settings pointing at the test's servers."""
    return Settings(
        servers.database_url, servers.kafka_bootstrap, session_timeout_ms=SESSION_TIMEOUT_MS
    )


@pytest.fixture(name="running_ledger")
def fixture_running_ledger(settings: Settings) -> Iterator[None]:
    """The ledger's loops running as `ledger run` runs them, stopped after the test."""
    stop, ready = threading.Event(), threading.Event()
    thread = threading.Thread(
        target=runner.run, args=(settings, stop, lambda _: ready.set()), daemon=True
    )
    thread.start()
    assert ready.wait(60), "the ledger did not start"
    yield
    stop.set()
    thread.join(timeout=60)


class TestDriver:
    """Month by month, every command of the book is sent and answered."""

    @pytest.mark.usefixtures("running_ledger")
    def test_every_command_is_answered_as_the_book_foresaw(self, settings: Settings) -> None:
        """All commands are answered; the rejections are exactly those the book expected."""
        done: list[int] = []

        def report(progress: Progress) -> None:
            if progress.months_done and progress.months_done not in done:
                done.append(progress.months_done)

        assert settings.kafka_bootstrap is not None
        driver = Driver(clients(settings.kafka_bootstrap, settings), AvroCodec(), report)
        progress = driver.play(Book(**SMALL_BOOK))
        months = list(Book(**SMALL_BOOK).months())
        foreseen: Counter[str] = Counter()
        for month in months:
            foreseen.update(month.rejections)
        assert progress.sent == progress.answered == sum(len(m.all) for m in months)
        assert Counter(progress.rejections) == foreseen
        assert progress.events > progress.answered
        assert done == [1, 2]
