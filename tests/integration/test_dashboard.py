"""The dashboard in a real browser: a demo book through the domain into the read models, the
page written from them and loaded in headless chromium."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from commands.table import command_from_record
from demo.book import Book as DemoBook
from demo.dashboard import CHARTS, page
from demo.dashboard_data import CurrencyBook, Dashboard
from runtime.send import encode_command
from tests.browser import Browser, PageCheck
from tests.helpers import CODEC, Servers
from tests.integration.books import Book

pytestmark = pytest.mark.integration
OUTPUT = Path(__file__).resolve().parents[1] / "output"  # tests/output, ignored by git
PAGE = OUTPUT / "dashboard.html"
SMALL_BOOK = {"customers": 40, "months": 4, "seed": 3}
BATCH = 50  # commands per batch, as the consumer takes them from one poll


@pytest.fixture(name="database_url")
def fixture_database_url(servers: Servers) -> Iterator[str]:
    """Read models filled by a small demo book: each command encoded and decoded as the
    consumer does, handled by the domain, its events projected as the projector applies them."""
    book = Book(servers.database_url)
    for month in DemoBook(**SMALL_BOOK).months():
        for commands in (month.catalogue, month.commands):
            for start in range(0, len(commands), BATCH):
                batch = commands[start : start + BATCH]
                book.send(*(command_from_record(c.type, _decoded(c.type, c.record)) for c in batch))
                book.project()
    yield servers.database_url
    book.connection.close()


def _decoded(command_type: str, record: dict[str, object]) -> dict[str, object]:
    return CODEC.decode(encode_command(CODEC, command_type, record).value or b"").record


@pytest.fixture(name="written")
def fixture_written(database_url: str) -> subprocess.CompletedProcess[str]:
    """`ledger report dashboard --out tests/output/dashboard.html` on the book's read models."""
    return subprocess.run(
        [sys.executable, "-m", "runtime.cli", "report", "dashboard", "--out", str(PAGE)],
        env={**os.environ, "LEDGER_DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.fixture(name="page_check")
def fixture_page_check(written: subprocess.CompletedProcess[str], chromium: str) -> PageCheck:
    """The dashboard of the book loaded in chromium, its screenshot in tests/output."""
    assert written.returncode == 0, written.stderr
    with Browser(chromium) as browser:
        return browser.check(PAGE, OUTPUT / "dashboard.png")


class TestDashboardInTheBrowser:
    """The page of a small book in chromium (one test: the book takes a while to play)."""

    def test_draws_every_chart_offline_without_errors(
        self, written: subprocess.CompletedProcess[str], page_check: PageCheck
    ) -> None:
        """The command says where the page is; in chromium the page is ready with no console
        error and no request; every chart drawn, none left empty; the table lists the accounts
        owing past due; a PNG of the whole page in tests/output."""
        assert f"dashboard written to {PAGE}" in written.stdout
        assert PAGE.resolve().as_uri() in written.stdout
        assert page_check.ready == "true"
        assert page_check.errors == []
        assert page_check.requests == []
        assert page_check.empty == []
        assert [c["key"] for c in page_check.charts] == [
            draw.__name__.removesuffix("_chart") for draw in CHARTS
        ]
        assert [c for c in page_check.charts if c["traces"] == 0 or c["marks"] == 0] == []
        assert page_check.tables and page_check.tables[0] > 0
        assert (OUTPUT / "dashboard.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    def test_a_book_with_nothing_to_draw_says_so(self, chromium: str, tmp_path: Path) -> None:
        """A currency without rows: every chart and the table show their sentence, and the
        page is still ready with no console error."""
        written = tmp_path / "empty.html"
        empty = Dashboard(datetime(2026, 1, 1, tzinfo=UTC), (CurrencyBook("EUR"),))
        written.write_text(page(empty), encoding="utf-8")
        with Browser(chromium) as browser:
            check = browser.check(written, tmp_path / "empty.png")
        assert check.ready == "true"
        assert check.errors == []
        assert check.charts == []
        expected = [draw.__name__.removesuffix("_chart") for draw in CHARTS]
        assert check.empty == [*expected, "delinquent"]
