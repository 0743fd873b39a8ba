"""Speed of the audit toolkit: `verify` over a generated history, and the writer with heads on and off.

    python bench/audit.py verify [EVENTS]            (default 1,000,000 events)
    python bench/audit.py replay [EVENTS] [VERIFY_RUNS]  (default 1,000,000 events, 2 runs)
    python bench/audit.py writer [BATCHES] [SIZE]    (default 20 batches of 500 commands, each way)

`verify` saves EVENTS new accounts (one AccountOpened of ~450 bytes each) through the real
writer, 1,000 per transaction, then times `ledger audit verify`'s walk over them.
`replay` saves a year of accounts (open, subscribe, then each month paid and invoiced: 15
events an account) through the domain and the real writer, 100 accounts per transaction,
until EVENTS, then times `ledger audit verify` twice and `ledger audit replay` three times
(as of the middle of the year: everything; known at the middle batch's time with the later
corrections beside it; one account), with the load average beside each figure.
`writer` times the command path without Kafka (handle the commands, save events, receipts
and positions in one transaction) on two fresh databases, one with batch heads and one with
the writer as it was before them, alternating batch by batch so both see the same machine.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from eventsourcing.persistence import StoredEvent, Tracking
from psycopg.conninfo import make_conninfo

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from audit.store import snapshot  # noqa: E402
from audit.verify import verify  # noqa: E402
from commands.handlers import Delivery, process  # noqa: E402
from commands.mapping import content_digest  # noqa: E402
from commands.table import command_from_record  # noqa: E402
from commands.unit_of_work import UnitOfWork  # noqa: E402
from infra.postgres import NOTIFY_EVENTS, PositionsProcessRecorder, event_store_env  # noqa: E402
from ledger.account import Account, CancellationPolicy, Terms  # noqa: E402
from ledger.application import BillingLedger  # noqa: E402
from ledger.calendar import IntervalUnit  # noqa: E402
from ledger.receipts import Source  # noqa: E402
from local import embedded  # noqa: E402
from tests.helpers import open_account, subscribe  # noqa: E402


class WithoutHeads(PositionsProcessRecorder):
    """The writer as it was before batch heads: events and positions only."""

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        with self.datastore.get_connection() as conn, conn.transaction(), conn.cursor() as curs:
            self._insert_events(curs, stored_events, **kwargs)
            if not stored_events:
                return None
            self._insert_stored_events(curs, stored_events, **kwargs)
            ids = self._fetch_ids_after_insert_events(curs, stored_events, **kwargs)
            curs.execute(NOTIFY_EVENTS)
            return ids


class Spent:
    """Seconds the writer spent on batch heads: hashing events before the lock, the head under it."""

    hashing = 0.0
    head = 0.0

    @classmethod
    def watch(cls) -> None:
        """Time the writer's head work from here on (the wrappers add a little, never less)."""
        import infra.postgres as writer

        hash_leaf, hash_root, add_head = (
            writer.event_leaf,
            writer.merkle.root,
            writer.PositionsProcessRecorder._add_head,
        )

        def event_leaf(*args: Any) -> bytes:
            started = time.perf_counter()
            try:
                return hash_leaf(*args)
            finally:
                cls.hashing += time.perf_counter() - started

        def root(leaves: Sequence[bytes]) -> bytes:
            started = time.perf_counter()
            try:
                return hash_root(leaves)
            finally:
                cls.hashing += time.perf_counter() - started

        def timed_add_head(self: PositionsProcessRecorder, *args: Any) -> None:
            started = time.perf_counter()
            try:
                add_head(self, *args)
            finally:
                cls.head += time.perf_counter() - started

        writer.event_leaf = event_leaf  # type: ignore[assignment]
        writer.merkle.root = root  # type: ignore[assignment]
        writer.PositionsProcessRecorder._add_head = timed_add_head  # type: ignore[method-assign]


def fresh_database(server_url: str) -> str:
    name = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    return make_conninfo(server_url, dbname=name)


def open_ledger(database_url: str, *, heads: bool = True) -> BillingLedger:
    env = event_store_env(database_url)
    if not heads:
        env["PROCESS_RECORDER_TOPIC"] = "__main__:WithoutHeads"
    return BillingLedger(env=env)


def bench_verify(server_url: str, events: int) -> None:
    database_url = fresh_database(server_url)
    ledger = open_ledger(database_url)
    started = time.perf_counter()
    opened = datetime(2026, 1, 1, tzinfo=UTC)
    for start in range(0, events, 1000):
        accounts = [
            Account.open(
                command_id=f"c-{n}",
                account_id=f"acc-{n}",
                issued_at=opened,
                currency="EUR",
                customer_reference=f"crm-{n:012d}-" + "r" * 200,
            )
            for n in range(start, min(events, start + 1000))
        ]
        ledger.save(*accounts, positions=[Tracking("bench/commands/0", start)])
    print(f"generated {events} events in {time.perf_counter() - started:.0f} s")
    ledger.close()
    with psycopg.connect(database_url) as connection:
        (size,) = connection.execute(
            "SELECT avg(length(state))::int FROM billing_events"
        ).fetchone() or (0,)
    print(f"average state: {size} bytes")
    for run in range(3):
        started, cpu = time.perf_counter(), time.process_time()
        with snapshot(database_url) as store:
            result = verify(store)
        took, cpu = time.perf_counter() - started, time.process_time() - cpu
        print(
            f"verify run {run + 1}: {took:.1f} s = {events / took:,.0f} events/s; the verifier's "
            f"own CPU {cpu:.1f} s = {events / cpu:,.0f} events per CPU second; "
            f"{result.describe()[:40]}"
        )


MONTHS = 4  # paid and invoiced per account after subscribing: 1 + 2 + 3 * MONTHS events


def year_of(n: int) -> Account:
    """Account n: opened, subscribed at 9.99 a month, each month paid then invoiced again."""
    opened = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=n % 10_000)
    account = Account.open(
        command_id=f"o-{n}",
        account_id=f"acc-{n}",
        issued_at=opened,
        currency="EUR",
        customer_reference=f"crm-{n:012d}",
    )
    account.subscribe(command_id=f"s-{n}", issued_at=opened, subscription_id="sub-1", terms=TERMS)
    for month in range(MONTHS):
        at = opened + timedelta(days=31 * month + 3)
        account.record_payment(
            command_id=f"p-{n}-{month}",
            issued_at=at,
            payment_id=f"pay-{month}",
            amount_minor=999,
            currency="EUR",
            payment_method_kind="credit_card",
            invoice_id=f"sub-1/{month + 1}",
        )
        account.advance_clock(command_id=f"c-{n}-{month}", issued_at=at + timedelta(days=28))
    return account


TERMS = Terms("basic", 999, "EUR", IntervalUnit.MONTH, 1, 0, 14, CancellationPolicy.AT_PERIOD_END)


def load() -> str:
    """The 1-minute load average, to read each figure beside."""
    return f"load {os.getloadavg()[0]:.1f}"


def generate_year(database_url: str, events: int) -> int:
    """Save accounts' years until `events` events; answer how many were saved."""
    ledger = open_ledger(database_url)
    started, saved, n = time.perf_counter(), 0, 0
    per_account = 3 + 3 * MONTHS
    while saved < events:
        accounts = [year_of(n + k) for k in range(100)]
        ledger.save(*accounts, positions=[Tracking("bench/commands/0", n)])
        n, saved = n + 100, saved + 100 * per_account
        if n % 10_000 == 0:
            print(f"  {saved:,} events, {time.perf_counter() - started:.0f} s", flush=True)
    ledger.close()
    print(f"generated {saved:,} events ({n:,} accounts) in {time.perf_counter() - started:.0f} s")
    return saved


def kept_year(server_url: str, events: int) -> tuple[str, int]:
    """The generated history: with BENCH_HOME set, kept there between runs (generated once)."""
    if not os.environ.get("BENCH_HOME"):
        database_url = fresh_database(server_url)
        return database_url, generate_year(database_url, events)
    name = f"bench_year_{events}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            admin.execute(f'CREATE DATABASE "{name}"')
    database_url = make_conninfo(server_url, dbname=name)
    if exists:
        with psycopg.connect(database_url) as connection:
            row = connection.execute("SELECT count(*) FROM billing_events").fetchone()
        print(f"reusing {name}")
        return database_url, int(row[0]) if row else 0
    return database_url, generate_year(database_url, events)


class ServerCpu:
    """The CPU time of the PostgreSQL backend serving a connection (from /proc, Linux)."""

    def __init__(self, connection: psycopg.Connection[Any]) -> None:
        row = connection.execute("SELECT pg_backend_pid()").fetchone()
        self.stat = Path(f"/proc/{row[0] if row else 0}/stat")
        self.started = self.seconds()

    def seconds(self) -> float:
        """utime + stime of the backend so far (0 if /proc cannot tell)."""
        try:
            fields = self.stat.read_text().rpartition(")")[2].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def spent(self) -> str:
        """The backend's CPU seconds since this was made, as a clause of the result line."""
        return f"; the PostgreSQL backend's CPU {self.seconds() - self.started:.1f} s"


def timed(name: str, events: int, run: Callable[[], str]) -> None:
    """Run once; print wall and CPU time, events per second of each, and the load average."""
    before = load()
    started, cpu = time.perf_counter(), time.process_time()
    said = run()
    took, cpu = time.perf_counter() - started, time.process_time() - cpu
    print(
        f"{name}: {took:.1f} s = {events / took:,.0f} events/s; own CPU {cpu:.1f} s = "
        f"{events / cpu:,.0f} events per CPU second ({before} before, {load()} after); {said}",
        flush=True,
    )


def bench_replay(server_url: str, events: int = 1_000_000, verify_runs: int = 2) -> None:
    from audit.history import History
    from audit.replay import replay

    database_url, saved = kept_year(server_url, events)
    with psycopg.connect(database_url) as connection:
        (total, size) = connection.execute(
            "SELECT count(*), avg(length(state))::int FROM billing_events"
        ).fetchone() or (0, 0)
    print(f"{total:,} events stored, average state {size} bytes")
    as_of = datetime(2026, 3, 1, tzinfo=UTC)

    def verify_all() -> str:
        with snapshot(database_url) as store:
            server = ServerCpu(store.connection)
            return verify(store).describe()[:60] + server.spent()

    def replay_all(middle: bool = False, account: str | None = None) -> str:
        with snapshot(database_url) as store:
            server = ServerCpu(store.connection)
            history = History(store)
            knowledge = [history.everything()]
            if middle:
                heads = list(store.heads())
                knowledge.insert(0, history.known_at(heads[len(heads) // 2].head.recorded_at))
            cutoffs = [k.position for k in knowledge]
            events = history.account_events(max(cutoffs), account, as_of)
            result = replay(as_of, cutoffs, events)
            spent = server.spent()
        return f"{result.counted:,} events by as-of in the view, {len(result.views[-1]):,} accounts{spent}"

    for run in range(verify_runs):
        timed(f"verify run {run + 1}", total, verify_all)
    for run in range(3):
        timed(f"replay run {run + 1}, everything", saved, replay_all)
    timed("replay known at the middle batch, corrections beside", saved, lambda: replay_all(True))
    timed("replay of one account", 3 + 3 * MONTHS, lambda: replay_all(account="acc-12345"))


def deliveries(batch: int, size: int) -> list[Delivery]:
    records = []
    for n in range(size // 2):
        account = f"b{batch}-{n}"
        records += [("OpenAccount", open_account(account)), ("Subscribe", subscribe(account))]
    return [
        Delivery(
            command_from_record(kind, record),
            kind,
            content_digest(kind, record),
            Source("billing.commands", 0, batch * size + offset),
        )
        for offset, (kind, record) in enumerate(records)
    ]


def save_batch(ledger: BillingLedger, batch: int, size: int) -> float:
    commands = deliveries(batch, size)
    started = time.perf_counter()
    work = UnitOfWork(ledger)
    process(work, commands, frozenset())
    ledger.save(
        *work.changed, positions=[Tracking("bench/billing.commands/0", batch * size + size - 1)]
    )
    return time.perf_counter() - started


def bench_writer(server_url: str, batches: int = 20, size: int = 500) -> None:
    Spent.watch()
    ledgers = {
        "heads on": open_ledger(fresh_database(server_url)),
        "heads off": open_ledger(fresh_database(server_url), heads=False),
    }
    times: dict[str, list[float]] = {name: [] for name in ledgers}
    for batch in range(batches + 2):
        if batch == 2:  # the first batches warm caches and prepared statements
            Spent.hashing = Spent.head = 0.0
        order = list(ledgers.items()) if batch % 2 else list(reversed(ledgers.items()))
        for name, ledger in order:
            took = save_batch(ledger, batch, size)
            if batch >= 2:
                times[name].append(took)
    for name, taken in times.items():
        median = statistics.median(taken)
        print(
            f"{name}: median {median * 1000:.1f} ms per batch of {size} commands = {size / median:,.0f} commands/s (total {sum(taken):.1f} s)"
        )
    on, off = (statistics.median(times[n]) for n in ("heads on", "heads off"))
    print(f"heads cost {100 * (on - off) / off:+.1f}% of the command path (median batch)")
    total_on = sum(times["heads on"])
    print(
        f"inside the writer with heads on: hashing events {Spent.hashing:.2f} s, adding heads "
        f"under the lock {Spent.head:.2f} s, of {total_on:.1f} s saving batches "
        f"= {100 * (Spent.hashing + Spent.head) / total_on:.1f}%"
    )


def main(argv: list[str]) -> None:
    kept = os.environ.get("BENCH_HOME")  # keep the servers and the history there
    home = Path(kept) if kept else Path(tempfile.mkdtemp(prefix="ledger-bench-"))
    status, started = embedded.up(home)
    assert status.postgres.address
    try:
        if argv[0] == "verify":
            bench_verify(status.postgres.address, int(argv[1]) if len(argv) > 1 else 1_000_000)
        elif argv[0] == "replay":
            bench_replay(status.postgres.address, *(int(a) for a in argv[1:3]))
        else:
            bench_writer(status.postgres.address, *(int(a) for a in argv[1:3]))
    finally:
        if not kept:
            embedded.down(home, started)


if __name__ == "__main__":
    main(sys.argv[1:] or ["verify"])
