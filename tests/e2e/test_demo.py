"""`ledger demo` end to end: the CLI starts the ledger, plays a book through Kafka, reports it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import psycopg
import pytest
from kafka import KafkaAdminClient
from psycopg import sql
from psycopg.conninfo import make_conninfo

from demo.book import Book
from infra.config import Settings
from projections.registry import READ_MODELS
from runtime.runner import topic_specs
from tests.browser import Browser
from tests.helpers import SESSION_TIMEOUT_MS, Servers, kafka_clients, wait_for

pytestmark = pytest.mark.integration
BOOK = ("--customers", "50", "--months", "3", "--seed", "7")
OUTPUT = Path(__file__).resolve().parents[1] / "output"  # tests/output, ignored by git


def demo(servers: Servers, database_url: str, *args: str) -> list[dict[str, Any]]:
    """Run `ledger demo ARGS` on `database_url` and the test's broker; its JSON lines."""
    env = {
        **os.environ,
        "LEDGER_DATABASE_URL": database_url,
        "LEDGER_KAFKA_BOOTSTRAP": servers.kafka_bootstrap,
        "LEDGER_SESSION_TIMEOUT_MS": str(SESSION_TIMEOUT_MS),
        "LEDGER_CONSUMER_GROUP": f"billing-ledger-{uuid.uuid4().hex[:8]}",
    }
    if "--dashboard" not in args:  # not into the checkout's root; each run overwrites it
        args = (*args, "--dashboard", str(OUTPUT / "demo-run.html"))
    done = subprocess.run(
        [sys.executable, "-m", "runtime.cli", "demo", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


def by_event(lines: list[dict[str, Any]], event: str) -> dict[str, Any]:
    """The one line of `event`."""
    (found,) = [line for line in lines if line["event"] == event]
    return found


class TestDemo:
    """A small book played through the real pipeline, as README command 1 plays the default."""

    def test_every_command_is_answered_and_the_reports_are_printed(
        self, servers: Servers, chromium: str
    ) -> None:
        """Every command of the book is answered, the rejections are those the book foresaw,
        the end prints balances, aging, forecast and metrics with rows, and the dashboard it
        writes draws every chart in chromium without an error."""
        page = OUTPUT / "demo-dashboard.html"
        lines = demo(servers, servers.database_url, *BOOK, "--dashboard", str(page))
        assert by_event(lines, "demo.dashboard")["url"] == page.resolve().as_uri()
        with Browser(chromium) as browser:
            check = browser.check(page, OUTPUT / "demo-dashboard.png")
        assert (check.ready, check.errors, check.requests) == ("true", [], [])
        assert check.charts and [c for c in check.charts if c["traces"] == 0] == []
        done = by_event(lines, "demo.done")
        months = list(Book(50, 3, 7).months())
        foreseen: Counter[str] = Counter()
        for month in months:
            foreseen.update(month.rejections)
        assert done["sent"] == done["answered"] == sum(len(m.all) for m in months)
        assert done["months_done"] == 3
        assert Counter(done["rejections"]) == foreseen
        assert done["events"] > done["answered"]
        reports = {
            r["report"].split(" ")[0]: r["rows"] for r in by_event(lines, "demo.reports")["reports"]
        }
        for kind in ("Balances", "Aging:", "Cash-flow", "MRR", "Charges", "Dunning"):
            assert reports[kind], f"report {kind} has no rows"
        progress = [line for line in lines if line["event"] == "demo.progress"]
        assert [line["months_done"] for line in progress] == [1, 2, 3]


class TestSameSeed:
    """The demo is deterministic: the same seed gives the same read models."""

    def test_two_runs_on_fresh_databases_give_identical_read_models(self, servers: Servers) -> None:
        """Every read-model table has the same rows, by count and checksum, after each run."""
        second = _new_database(servers.database_url)
        try:
            demo(servers, servers.database_url, *BOOK)
            _empty_topics(servers.kafka_bootstrap)
            demo(servers, second, *BOOK)
            assert _checksums(servers.database_url) == _checksums(second)
        finally:
            _drop_database(servers.database_url, second)


def _checksums(database_url: str) -> dict[str, tuple[Any, ...]]:
    """Each read-model table's row count and the md5 of its rows' md5s, in order."""
    sums = {}
    with psycopg.connect(database_url) as connection:
        for table in (t for model in READ_MODELS for t in model.tables):
            row = connection.execute(
                sql.SQL(
                    "SELECT count(*), md5(coalesce(string_agg(md5(t::text), '' "
                    "ORDER BY md5(t::text)), '')) FROM {} t"
                ).format(sql.Identifier(table))
            ).fetchone()
            assert row is not None
            sums[table] = tuple(row)
    assert any(count for count, _ in sums.values())
    return sums


def _new_database(database_url: str) -> str:
    name = f"test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return make_conninfo(database_url, dbname=name)


def _drop_database(database_url: str, doomed: str) -> None:
    name = psycopg.conninfo.conninfo_to_dict(doomed)["dbname"]
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(str(name)))
        )


def _empty_topics(bootstrap: str) -> None:
    """Delete the ledger's topics and create them anew, empty: the second run starts clean."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    names = [spec.name for spec in topic_specs(Settings(None, None))]
    try:
        admin.delete_topics(names, timeout_ms=30_000)
        wait_for(lambda: not set(names) & set(admin.list_topics()), timeout_s=60)
    finally:
        admin.close()
    kafka = kafka_clients(bootstrap).admin()
    try:
        kafka.ensure_topics(topic_specs(Settings(None, None)))
    finally:
        kafka.close()
