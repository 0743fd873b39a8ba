"""The naive baseline: one eventsourcing `save`, so one transaction, per command, read with kafka-python.

It runs the ledger's own decoding, handlers and domain, one message at a time, storing the
message's offset with its events as the pipeline does; nothing is relayed or projected.

    python -m bench.baseline DATABASE_URL BOOTSTRAP TOPIC COUNT

Defines the mix's catalogue plans first, prints `ready` once positioned at the start of TOPIC, then, after COUNT commands, one JSON
line: the wall-clock time the last was saved, the events stored and the CPU seconds used.
"""

from __future__ import annotations

import json
import sys
import time

from eventsourcing.persistence import Tracking
from kafka import KafkaConsumer, TopicPartition

from bench.mix import encoded, plans
from commands.consumer import handle_batch
from infra.kafka import Message
from ledger.application import BillingLedger
from runtime.runner import open_ledger
from tests.helpers import CODEC


def main(database_url: str, bootstrap: str, topic: str, count: int) -> None:
    ledger = open_ledger(database_url)
    define_plans(ledger)
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=100
    )
    partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
    consumer.assign(partitions)
    for partition in partitions:
        consumer.seek(partition, 0)
    print("ready", flush=True)
    done = events = 0
    while done < count:
        for batch in consumer.poll(timeout_ms=500).values():
            for record in batch:
                message = Message(
                    record.topic, record.partition, record.offset, record.key, record.value
                )
                handled = handle_batch(ledger, CODEC, [message], "baseline")
                events += sum(len(o.event_ids) for o in handled.outcomes if not o.redelivery)
                position = Tracking(f"baseline/{record.topic}/{record.partition}", record.offset)
                ledger.save(*handled.work.changed, positions=[position])
                done += 1
    finished_at = time.time()
    print(
        json.dumps(
            {
                "finished_at": finished_at,
                "commands": done,
                "events": events,
                "cpu_s": time.process_time(),
            }
        ),
        flush=True,
    )
    consumer.close()
    ledger.close()


def define_plans(ledger: BillingLedger) -> None:
    """The catalogue the mix's plan changes need, as the pipeline gets it before its burst."""
    for offset, (key, value) in enumerate(encoded(plans())):
        handled = handle_batch(ledger, CODEC, [Message("plans", 0, offset, key, value)], "baseline")
        ledger.save(*handled.work.changed)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]))
