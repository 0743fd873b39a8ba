"""Speed of the output side without Kafka: the projector's write path and `ledger projections rebuild`.

    python -m bench projections [COMMANDS] [ACCOUNTS]     (default 20,000 commands over a fifth as many accounts)

The history is generated through the application directly (bench/mix.py's commands, handled
and saved 1,000 per transaction, as the command consumer does), then:
- **projector**: the stored events, encoded as the relay publishes them, are applied by
  `Projector._apply` in batches of 500 messages (its transaction, positions, failures and
  dead letters; no broker: the rate is the projector's own write path), then
  `Projector.catch_up` makes the forecast snapshots the batches left pending, timed apart;
- **relay**: `EventRelay.run_once` until the notification log is published to an embedded
  broker (tansu; `LEDGER_KAFKA_CLIENT` picks the client), events and receipts;
- **rebuild**: `runtime.rebuild.rebuild` of every read model from the event store, then its
  comparison with the tables the projector wrote (they must be identical).
Peak RSS of this process (`ru_maxrss`) is printed after each step; the history held in
memory for the projector step is most of it.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from typing import Any

from eventsourcing.persistence import Tracking

from bench.audit import fresh_database, open_ledger
from bench.machine import machine
from bench.mix import plans, workload
from bench.pipeline import RESULTS
from bench.servers import BenchServers, bench_servers
from commands.handlers import Delivery, process
from commands.mapping import content_digest
from commands.table import command_from_record
from commands.unit_of_work import UnitOfWork
from infra.kafka import Message, Outgoing, clients
from ledger.application import BillingLedger
from ledger.receipts import Source
from outbox.relay import EventRelay
from projections.projector import Projector
from projections.registry import READ_MODELS
from runtime import rebuild
from wire.codec import AvroCodec
from wire.event_records import outgoing
from wire.topics import EVENTS_TOPIC

SAVE_BATCH = 1000
PROJECT_BATCH = 500


def generate(ledger: BillingLedger, commands: int, accounts: int) -> int:
    """Handle and save the mix's commands; answer the notification-log rows stored."""
    mix = plans() + workload(commands, accounts)
    for start in range(0, len(mix), SAVE_BATCH):
        deliveries = [
            Delivery(
                command_from_record(kind, record),
                kind,
                content_digest(kind, record),
                Source("billing.commands", 0, start + offset),
            )
            for offset, (kind, record) in enumerate(mix[start : start + SAVE_BATCH])
        ]
        work = UnitOfWork(ledger)
        process(work, deliveries, frozenset())
        last = start + len(deliveries) - 1
        ledger.save(*work.changed, positions=[Tracking("bench/billing.commands/0", last)])
    return ledger.recorder.max_notification_id() or 0


def event_messages(ledger: BillingLedger) -> list[Message]:
    """Every stored event as the projector reads it from billing.events (receipts left out)."""
    codec, messages, after = AvroCodec(), [], 0
    while page := ledger.recorder.select_notifications(after, 1000, inclusive_of_start=False):
        for notification in page:
            out = outgoing(ledger.mapper.to_domain_event(notification), notification.id, codec)
            if out.topic == EVENTS_TOPIC:
                messages.append(
                    Message(EVENTS_TOPIC, 0, len(messages), out.key, out.value, out.headers)
                )
        after = page[-1].id
    return messages


class NoProducer:
    """Where the projector's dead letters would go; the generated history has none."""

    def produce_batch(self, messages: list[Outgoing]) -> None:
        assert not messages, "the generated history holds a record that is not an event"


def apply(database_url: str, messages: list[Message]) -> Projector:
    """A projector that has applied `messages` with its write path, in batches, no more."""
    projector = Projector(
        "bench",
        READ_MODELS,
        None,
        NoProducer(),
        AvroCodec(),
        database_url,
        "bench",  # type: ignore[arg-type]
    )
    for start in range(0, len(messages), PROJECT_BATCH):
        projector._apply(messages[start : start + PROJECT_BATCH])
    return projector


def project(database_url: str, messages: list[Message]) -> tuple[float, float]:
    """Apply `messages` with the projector's write path, then the work it deferred (the
    forecast snapshots, as when idle); answer the seconds each took."""
    started = time.perf_counter()
    projector = apply(database_url, messages)
    took = time.perf_counter() - started
    projector.catch_up()
    caught_up = time.perf_counter() - started - took
    projector.close()
    return took, caught_up


def relay(ledger: BillingLedger, database_url: str, bootstrap: str) -> tuple[int, float]:
    """Publish the whole notification log; answer the rows published and the seconds."""
    producer = clients(bootstrap).producer()
    event_relay = EventRelay(ledger, producer, AvroCodec(), database_url, "bench")
    started, published = time.perf_counter(), 0
    while count := event_relay.run_once():
        published += count
    took = time.perf_counter() - started
    event_relay.close()
    producer.close()
    return published, took


def peak_rss_mib() -> float:
    """This process's peak resident set so far."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(servers: BenchServers, commands: int, accounts: int) -> dict[str, Any]:
    """Generate, project, relay, rebuild; the figures."""
    database_url = fresh_database(servers.server_url)
    ledger = open_ledger(database_url)
    started = time.perf_counter()
    rows = generate(ledger, commands, accounts)
    print(f"generated {rows} notification-log rows in {time.perf_counter() - started:.0f} s")
    messages = event_messages(ledger)
    print(f"{len(messages)} events; peak RSS {peak_rss_mib():.0f} MiB")
    took, caught_up = project(database_url, messages)
    print(
        f"projector: {len(messages) / took:,.0f} events/s ({took:.1f} s), then {caught_up:.1f} s "
        f"making the snapshots left pending; peak RSS {peak_rss_mib():.0f} MiB"
    )
    published, relay_s = relay(ledger, database_url, servers.bootstrap)
    print(f"relay: {published / relay_s:,.0f} rows/s ({published} rows, {relay_s:.1f} s)")
    outcome = rebuild.rebuild(ledger, database_url, READ_MODELS)
    print(
        f"rebuild: {outcome.events_per_s:,.0f} events/s ({outcome.seconds:.1f} s, with the "
        f"comparison); differences {outcome.differences or 'none'}; peak RSS {peak_rss_mib():.0f} MiB"
    )
    ledger.close()
    return {
        "events": len(messages),
        "projector_events_per_s": round(len(messages) / took),
        "projector_catch_up_s": round(caught_up, 1),
        "projector_events_per_s_with_catch_up": round(len(messages) / (took + caught_up)),
        "relay_rows_per_s": round(published / relay_s),
        "rebuild_events_per_s": round(outcome.events_per_s),
        "rebuild_differences": outcome.differences,
        "peak_rss_mib": round(peak_rss_mib()),
    }


def main(commands: int = 20_000, accounts: int | None = None) -> None:
    """Start an embedded PostgreSQL server and broker, run, stop them (accounts: a fifth of
    the commands)."""
    with bench_servers() as servers:
        started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        details = machine(servers.server_url)
        figures = run(servers, commands, accounts or commands // 5)
        details["load_average_1_5_15_after"] = [round(x, 2) for x in os.getloadavg()]
    result = {"started": started, "commands": commands, "machine": details, **figures}
    out = RESULTS / f"projections-{started.replace(':', '')}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {out}")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
