"""Crash harness: stream commands at `ledger run`, SIGKILL it in every window, check nothing broke.

Used by tests/e2e/test_crash.py (a short run in CI) and bench/crash_soak.py (10,000 commands).
"""

from __future__ import annotations

import random
import signal
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from commands.handlers import Delivery, process
from commands.mapping import content_digest
from commands.table import command_from_record
from commands.unit_of_work import UnitOfWork
from infra.faults import CRASH_POINTS
from ledger.application import BillingLedger, event_id
from ledger.receipts import Source
from projections.balances import SCHEMA as BALANCES_SCHEMA
from projections.balances import Balances
from runtime.runner import open_ledger
from tests.helpers import (
    Servers,
    advance_clock,
    cancel_subscription,
    command_message,
    fail_charge,
    open_account,
    publish,
    read_until,
    record_payment,
    set_dunning_policy,
    subscribe,
    wait_for,
)
from tests.processes import start_ledger, stop_ledger
from wire.event_records import ACCOUNT_EVENT_SCHEMAS, account_event_record
from wire.topics import EVENTS_TOPIC

Command = tuple[str, dict[str, Any]]


def workload(accounts: int, rng: random.Random) -> list[Command]:
    """A realistic mix: opens, subscriptions, rule violations and resent (duplicate) commands."""
    commands: list[Command] = []
    for number in range(accounts):
        account = f"acc-{number}"
        commands.append(("OpenAccount", open_account(account)))
        if rng.random() < 0.3:
            commands.append(("SetDunningPolicy", set_dunning_policy(account)))
        commands.append(("Subscribe", subscribe(account, price_minor=rng.randint(100, 9_999))))
        if rng.random() < 0.2:
            commands.append(("FailCharge", fail_charge(account, "sub-1/1")))
        roll = rng.random()
        if roll < 0.2:
            commands.append(("Subscribe", subscribe(account, subscription_id="sub-2")))
        elif roll < 0.3:
            commands.append(("Subscribe", subscribe(account, price_minor=-5)))  # rejected
        elif roll < 0.35:
            commands.append(("Subscribe", subscribe(f"ghost-{number}")))  # unknown account
        if rng.random() < 0.5:
            commands.append(("AdvanceClock", advance_clock(account, rng.choice((20, 45, 70)))))
        if rng.random() < 0.5:
            amount = rng.choice((500, 999, 5_000))  # partial, maybe exact, maybe overpaid
            commands.append(("RecordPayment", record_payment(account, amount_minor=amount)))
        if rng.random() < 0.15:
            commands.append(("CancelSubscription", cancel_subscription(account, days=50)))
        if rng.random() < 0.3:
            commands.append(("AdvanceClock", advance_clock(account, 75)))
        if rng.random() < 0.1:
            commands.append(rng.choice(commands[-3:]))  # the same command sent again
    return commands


def expected_ledger(commands: list[Command]) -> BillingLedger:
    """The ledger a clean run of `commands`, in order, gives (in memory)."""
    ledger = BillingLedger(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    for offset, (kind, record) in enumerate(commands):
        delivery = Delivery(
            command_from_record(kind, record),
            kind,
            content_digest(kind, record),
            Source("expected", 0, offset),
        )
        work = UnitOfWork(ledger)
        process(work, [delivery], frozenset())
        ledger.save(*work.changed)
    return ledger


@dataclass
class CrashReport:
    """What a crash run did and found."""

    commands_sent: int = 0
    distinct_commands: int = 0
    kills: Counter[str] = field(default_factory=Counter)
    duplicates: int = 0
    lost: int = 0
    events_stored: int = 0
    events_published: int = 0
    republished: int = 0
    read_model_differences: int = 0

    def summary(self) -> str:
        """One line per figure."""
        return "\n".join(f"{name}: {value}" for name, value in vars(self).items())


def crash_run(
    servers: Servers, work_dir: Path, accounts: int, kills: int, seed: int
) -> CrashReport:
    """Stream the workload, kill the ledger `kills` times, restart it, and check the outcome."""
    rng = random.Random(seed)
    commands = workload(accounts, rng)
    report = CrashReport(
        commands_sent=len(commands), distinct_commands=len({r["command_id"] for _, r in commands})
    )
    env = {
        "LEDGER_DATABASE_URL": servers.database_url,
        "LEDGER_KAFKA_BOOTSTRAP": servers.kafka_bootstrap,
        "LEDGER_BATCH_SIZE": "50",
    }
    # Each round gets its share of the commands just before the ledger starts, so that
    # every kill lands while there is work in flight.
    share = -(-len(commands) // (kills + 1))
    parts = [commands[start : start + share] for start in range(0, len(commands), share)]
    for round_number in range(kills):
        publish(servers.kafka_bootstrap, [command_message(k, r) for k, r in parts[round_number]])
        mode = rng.choice((*CRASH_POINTS, "random"))
        log = work_dir / f"ledger-{round_number}.log"
        if mode == "random":
            ledger = start_ledger(env, log)
            time.sleep(rng.uniform(0.5, 3.0))
            ledger.send_signal(signal.SIGKILL)
            ledger.wait(timeout=30)
        else:
            passes = rng.randint(1, 2) if mode == "commands.after_save" else 1
            ledger = start_ledger(env | {"LEDGER_CRASH_AT": f"{mode}:{passes}"}, log)
            try:
                ledger.wait(timeout=30)
            except subprocess.TimeoutExpired:  # the point was not reached twice: kill anyway
                ledger.send_signal(signal.SIGKILL)
                ledger.wait(timeout=30)
                mode += " (not reached)"
        report.kills[mode] += 1
    for part in parts[kills:]:
        publish(servers.kafka_bootstrap, [command_message(k, r) for k, r in part])
    final_log = work_dir / "ledger-final.log"
    final = start_ledger(env, final_log)
    try:
        wait_for(lambda: "ledger.running" in final_log.read_text(), timeout_s=60)
        wait_until_quiet(servers.database_url, report.distinct_commands)
    finally:
        assert stop_ledger(final) == 0
    check(servers, commands, report)
    return report


def wait_until_quiet(database_url: str, distinct_commands: int, timeout_s: float = 120) -> None:
    """Wait until every command has a receipt, the relay has published all, and rows settled.

    Fails only after `timeout_s` without progress (a busy machine is slow, not stuck).
    """
    deadline = time.monotonic() + timeout_s
    state: tuple[Any, ...] = ()
    replayed: tuple[int, dict[str, tuple[Any, ...]]] | None = None  # (last event, rows)
    while time.monotonic() < deadline:
        with psycopg.connect(database_url) as connection:
            receipts, last, published = connection.execute(
                "SELECT (SELECT count(*) FROM billing_events"
                "        WHERE topic LIKE '%CommandReceipt.Recorded'),"
                " (SELECT max(notification_id) FROM billing_events),"
                " (SELECT max(notification_id) FROM ledger_relay_positions)"
            ).fetchone() or (0, 0, 0)
        live = live_balances(database_url)
        differences: list[tuple[Any, ...]] | str = "read model not compared yet"
        # The replay reads the whole event store: once the counts say quiet, and once.
        if receipts == distinct_commands and last == published:
            if replayed is None or replayed[0] != last:
                replayed = (last, replay_balances(database_url))
            differences = balance_differences(live, replayed[1])
            if not differences:
                return
        progress = (receipts, last, published, sorted(live.items()))
        if state and progress != state[0]:
            deadline = time.monotonic() + timeout_s
        state = (progress, (receipts, distinct_commands, last, published, differences))
        time.sleep(0.5)
    raise AssertionError(
        f"no progress for {timeout_s} s: receipts, commands, last event, "
        f"published, read-model differences = {state[1]}"
    )


def balance_differences(
    live: dict[str, tuple[Any, ...]], replayed: dict[str, tuple[Any, ...]]
) -> list[tuple[Any, ...]]:
    """The first accounts whose balances row differs from the replay, and both counts; [] if none."""
    differing = [
        (account, live.get(account), replayed.get(account))
        for account in sorted(live.keys() | replayed.keys())
        if live.get(account) != replayed.get(account)
    ]
    return [*differing[:3], ("counts", len(live), len(replayed))] if differing else []


def check(servers: Servers, commands: list[Command], report: CrashReport) -> None:
    """Fill the report's findings: duplicates, losses, publication and the read model."""
    expected = expected_ledger(commands)
    stored = open_ledger(servers.database_url)
    try:
        effects = Counter(event.command_id for event in account_events(stored))
        wanted = Counter(event.command_id for event in account_events(expected))
        report.duplicates = sum(max(0, effects[c] - n) for c, n in wanted.items()) + sum(
            n for c, n in effects.items() if c not in wanted
        )
        report.lost = sum(max(0, n - effects[c]) for c, n in wanted.items())
        report.lost += sum(1 for _, r in commands if stored.receipt(r["command_id"]) is None)
        stored_ids = {event_id_of(e) for e in account_events(stored)}
    finally:
        stored.close()
    report.events_stored = len(stored_ids)
    reads = read_until(
        servers.kafka_bootstrap,
        EVENTS_TOPIC,
        lambda found: stored_ids <= {r.headers["event_id"].decode() for r in found},
        timeout_s=60,
    )
    payloads: dict[str, set[bytes]] = {}
    for read in reads:
        payloads.setdefault(read.headers["event_id"].decode(), set()).add(read.value)
    report.events_published = len(stored_ids & payloads.keys())
    report.republished = len(reads) - len(payloads)
    assert all(len(values) == 1 for values in payloads.values()), "an event id changed content"
    live, replayed = live_balances(servers.database_url), replay_balances(servers.database_url)
    report.read_model_differences = len(set(live.items()) ^ set(replayed.items()))


def account_events(ledger: BillingLedger) -> list[Any]:
    """Every stored account event, in notification order."""
    events = []
    start = 1
    while batch := ledger.recorder.select_notifications(start=start, limit=1000):
        events += [ledger.mapper.to_domain_event(n) for n in batch if ":Account." in n.topic]
        start = batch[-1].id + 1
    return events


def event_id_of(event: Any) -> str:
    """The stable id of a stored event."""
    return event_id(event.originator_id, event.originator_version)


def live_balances(database_url: str) -> dict[str, tuple[Any, ...]]:
    """The balances read model as the projector built it."""
    with psycopg.connect(database_url) as connection:
        try:
            rows = connection.execute("SELECT * FROM balances").fetchall()
        except psycopg.errors.UndefinedTable:
            return {}
    return {row[0]: tuple(row) for row in rows}


def replay_balances(database_url: str) -> dict[str, tuple[Any, ...]]:
    """The balances read model rebuilt from the event store alone, in a throwaway schema."""
    ledger = open_ledger(database_url)
    try:
        events = account_events(ledger)
    finally:
        ledger.close()
    with psycopg.connect(database_url) as connection:
        connection.execute("CREATE SCHEMA replay")
        connection.execute("SET LOCAL search_path TO replay")
        connection.execute(BALANCES_SCHEMA)
        with connection.cursor() as cursor:
            for event in events:
                record = account_event_record(event)
                Balances().apply(cursor, _event_type(event), record)
        rows = connection.execute("SELECT * FROM balances").fetchall()
        connection.rollback()
    return {row[0]: tuple(row) for row in rows}


def _event_type(event: Any) -> str:
    return ACCOUNT_EVENT_SCHEMAS[type(event)].rpartition(".")[2]
