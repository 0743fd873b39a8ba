"""`ledger run`: the command handler, the event relay and the projections, as threads of one
process, or each in a process of its own (LEDGER_WORKERS >= 1, runtime/processes.py)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace

import psycopg
import structlog
from eventsourcing.persistence import InterfaceError, OperationalError

from commands.account_cache import AccountCache
from commands.consumer import CommandConsumer
from infra.config import Settings
from infra.kafka import Admin, KafkaClients, TopicSpec, clients
from infra.postgres import EventsWakeup, connect, event_store_env, redact, schema_lock
from ledger.application import BillingLedger
from local import embedded
from outbox.relay import EventRelay
from projections.projector import Projector
from projections.registry import READ_MODELS, READ_MODELS_PROJECTOR
from runtime.clock import Clock
from wire.codec import AvroCodec
from wire.topics import COMMANDS_TOPIC, DEAD_LETTER_TOPIC, EVENTS_TOPIC, RESULTS_TOPIC

logger = structlog.get_logger(__name__)
IDLE_SLEEP_S = 0.05
# The relay waits this long for a commit's notification before it looks at the store anyway.
RELAY_IDLE_WAIT_S = 0.5
# The projector's cost is mostly per batch (a statement per table), so it takes larger batches
# than the command loop: the default book of `ledger demo` reached its read models in 34 s with
# batches of 5,000 events against 196 s with 500 (measured when each batch also made the
# forecast snapshots it changed; they are made apart now: projections/snapshot_days.py).
PROJECTOR_BATCH_SIZE = 5000
CLUSTER_CHECK_S = 2.0
# PostgreSQL unreachable, as psycopg and the event store's library say it.
DATABASE_DOWN = (psycopg.OperationalError, InterfaceError, OperationalError)


@dataclass(frozen=True)
class Endpoints:
    """Where the services connect: the database, the broker's clients and its cluster id."""

    database_url: str
    kafka: KafkaClients
    cluster_id: str


@contextmanager
def servers(settings: Settings) -> Iterator[tuple[str, str]]:
    """(database URL, Kafka bootstrap) as configured, starting embedded servers for what is not.

    Embedded servers this call started are stopped again on exit.
    """
    started: frozenset[str] = frozenset()
    database_url, bootstrap = settings.database_url, settings.kafka_bootstrap
    home = None
    if database_url is None or bootstrap is None:
        home = embedded.ledger_home()
        status, started = embedded.up(home)
        database_url = database_url or status.postgres.address
        bootstrap = bootstrap or status.kafka.address
        logger.info("embedded.up", home=str(home), started=sorted(started))
    assert database_url and bootstrap
    try:
        yield database_url, bootstrap
    finally:
        if home is not None and started:
            embedded.down(home, started)
            logger.info("embedded.down", stopped=sorted(started))


def connect_kafka(settings: Settings, database_url: str, bootstrap: str) -> Endpoints:
    """Create the topics the ledger needs on the broker, and learn its cluster id."""
    kafka = clients(bootstrap, settings)
    admin = kafka.admin()
    try:
        admin.ensure_topics(topic_specs(settings))
        cluster_id = admin.cluster_id()
    finally:
        admin.close()
    logger.info(
        "ledger.connected", database=redact(database_url), kafka=bootstrap, cluster_id=cluster_id
    )
    return Endpoints(database_url, kafka, cluster_id)


def topic_specs(settings: Settings) -> list[TopicSpec]:
    """The topics the ledger reads and writes."""
    return [
        TopicSpec(name, settings.topic_partitions, settings.replication_factor)
        for name in (COMMANDS_TOPIC, RESULTS_TOPIC, EVENTS_TOPIC, DEAD_LETTER_TOPIC)
    ]


def open_ledger(database_url: str) -> BillingLedger:
    """The ledger application on the database at `database_url`.

    The library creates the event store's tables on first use with CREATE TABLE IF NOT
    EXISTS, which fails in all but one of several workers starting together on an empty
    database (PostgreSQL's catalog refuses the same type twice); the schema lock makes them
    take turns.
    """
    with connect(database_url) as connection, schema_lock(connection):
        return BillingLedger(env=event_store_env(database_url))


OnRunning = Callable[["Endpoints"], None]


def run(settings: Settings, stop: threading.Event, on_running: OnRunning | None = None) -> None:
    """Run the three loops until `stop` is set; each finishes its batch in flight first.

    `on_running` is called with the endpoints once the loops run (each time, after a new
    cluster).

    If the broker turns out to be another cluster (the embedded broker restarted, losing its
    topics), the loops are stopped, the loss is reported, and they start again on the new
    cluster: the relay republishes the event history there.
    """
    if settings.workers:
        from runtime.processes import start_forkserver

        start_forkserver()
    with servers(settings) as (database_url, bootstrap):
        failures = 0
        while not stop.is_set():
            try:
                where = connect_kafka(settings, database_url, bootstrap)
                replacement = loops_runner(settings)(settings, where, stop, on_running)
                if replacement is not None:
                    report_replaced_cluster(where, replacement)
                failures = 0
            except DATABASE_DOWN as error:  # at start: wait for it, as the loops do later
                failures += 1
                logger.warning(
                    "postgres.unreachable",
                    database=redact(database_url),
                    error=str(error),
                    retry_in_s=backoff_s(failures),
                )
                stop.wait(backoff_s(failures))
    logger.info("ledger.stopped")


RunLoops = Callable[[Settings, "Endpoints", threading.Event, OnRunning | None], str | None]


def loops_runner(settings: Settings) -> RunLoops:
    """Threads of this process, or a process per loop when LEDGER_WORKERS asks for workers."""
    if settings.workers == 0:
        return run_on_cluster
    from runtime.processes import run_processes  # it builds its children's loops from here

    return run_processes


def backoff_s(failures: int) -> float:
    """How long to wait after `failures` failures in a row: 0.4 s doubling to 10 s."""
    return min(0.2 * 2.0**failures, 10.0)


def run_on_cluster(
    settings: Settings, where: Endpoints, stop: threading.Event, on_running: OnRunning | None
) -> str | None:
    """Run the loops until `stop` is set (answers None) or the cluster id changes (answers it)."""
    halt = threading.Event()
    replacement = None
    with ExitStack() as stack:
        loops = [
            command_loop(settings, where, stack),
            relay_loop(settings, where, stack),
            projector_loop(settings, where, stack),
        ]
        if settings.clock_interval_s > 0:
            loops.append(clock_loop(settings, where, stack))
        threads = [
            threading.Thread(target=repeat, args=(name, step, halt), name=name, daemon=True)
            for name, step in loops
        ]
        for thread in threads:
            thread.start()
        logger.info("ledger.running", loops=[name for name, _ in loops])
        if on_running is not None:
            on_running(where)
        admin = where.kafka.admin()
        stack.callback(admin.close)
        while replacement is None and not stop.wait(CLUSTER_CHECK_S):
            replacement = other_cluster(admin, where.cluster_id)
        logger.info("ledger.stopping", reason="stop" if replacement is None else "new cluster")
        halt.set()
        for thread in threads:
            thread.join(timeout=30)
    return replacement


def other_cluster(admin: Admin, cluster_id: str) -> str | None:
    """The cluster id the broker answers now, if it is not `cluster_id`."""
    try:
        current = admin.cluster_id()
    except Exception:  # the broker is unreachable for now: the loops back off meanwhile
        return None
    return current if current != cluster_id else None


def report_replaced_cluster(where: Endpoints, new_cluster_id: str) -> None:
    """Log what the old cluster's loss means: which command offsets were processed there."""
    prefix = f"{where.cluster_id}/"
    with connect(where.database_url) as connection:
        rows = connection.execute(
            "SELECT application_name, notification_id FROM billing_tracking "
            "WHERE starts_with(application_name, %s) ORDER BY application_name",
            (prefix,),
        ).fetchall()
    processed = {str(name).removeprefix(prefix): int(offset) for name, offset in rows}
    logger.warning(
        "kafka.cluster.replaced",
        old_cluster_id=where.cluster_id,
        new_cluster_id=new_cluster_id,
        processed_up_to=processed,
        detail="the broker is a new, empty cluster: commands published to the old one after "
        "these offsets were never processed and must be resent by their senders (their "
        "command_id makes resending safe); every stored event is being republished",
    )


Step = Callable[[], int]


def command_loop(settings: Settings, where: Endpoints, stack: ExitStack) -> tuple[str, Step]:
    """The command handler's step: one batch of commands."""
    ledger = open_ledger(where.database_url)
    stack.callback(ledger.close)
    consumer = where.kafka.consumer(f"{settings.consumer_group}-commands")
    stack.callback(consumer.close)
    producer = where.kafka.producer()
    stack.callback(producer.close)
    cache = AccountCache(settings.account_cache, settings.account_cache_events or None)
    handler = CommandConsumer(ledger, consumer, producer, AvroCodec(), where.cluster_id, cache)
    handler.subscribe([COMMANDS_TOPIC])
    return "commands", lambda: len(handler.run_once())


def relay_loop(settings: Settings, where: Endpoints, stack: ExitStack) -> tuple[str, Step]:
    """The relay's step: one batch of stored events to Kafka."""
    ledger = open_ledger(where.database_url)
    stack.callback(ledger.close)
    producer = where.kafka.producer()
    stack.callback(producer.close)
    relay = EventRelay(
        ledger,
        producer,
        AvroCodec(),
        where.database_url,
        where.cluster_id,
        batch_size=max(settings.batch_size, 1000),
    )
    stack.callback(relay.close)
    wakeup = EventsWakeup(where.database_url)
    stack.callback(wakeup.close)

    def step() -> int:
        published = relay.run_once()
        if not published:
            wakeup.wait(RELAY_IDLE_WAIT_S)
        return published

    return "relay", step


def projector_loop(settings: Settings, where: Endpoints, stack: ExitStack) -> tuple[str, Step]:
    """The projections' step: one batch of events into the read models."""
    kafka = replace(
        where.kafka,
        settings=replace(
            where.kafka.settings, batch_size=max(settings.batch_size, PROJECTOR_BATCH_SIZE)
        ),
    )
    consumer = kafka.consumer(f"{settings.consumer_group}-projections")
    stack.callback(consumer.close)
    producer = where.kafka.producer()
    stack.callback(producer.close)
    projector = Projector(
        READ_MODELS_PROJECTOR,
        READ_MODELS,
        consumer,
        producer,
        AvroCodec(),
        where.database_url,
        where.cluster_id,
    )
    stack.callback(projector.close)
    projector.subscribe([EVENTS_TOPIC])
    return "projections", projector.run_once


def clock_loop(settings: Settings, where: Endpoints, stack: ExitStack) -> tuple[str, Step]:
    """The clock's step: a tick for every account, when one is due."""
    producer = where.kafka.producer()
    stack.callback(producer.close)
    clock = Clock(producer, AvroCodec(), where.database_url, settings.clock_interval_s)
    stack.callback(clock.close)
    return "clock", clock.run_once


def repeat(name: str, step: Step, stop: threading.Event) -> None:
    """Run `step` until `stop` is set, backing off after each failure."""
    failures = 0
    while not stop.is_set():
        try:
            done = step()
            failures = 0
        except Exception:
            failures += 1
            logger.exception("loop.failed", loop=name, retry_in_s=backoff_s(failures))
            stop.wait(backoff_s(failures))
            continue
        if not done and name == "clock":
            time.sleep(IDLE_SLEEP_S)  # the consumers' polls and the relay wait by themselves
