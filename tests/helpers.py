"""Test helpers that talk to the real servers: plain Kafka clients, as an upstream system would use."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from commands.mapping import key_field_of
from infra.config import Settings
from infra.kafka import KafkaClients, clients
from wire.codec import AvroCodec, Decoded

CODEC = AvroCodec()
# Joins take about half the session timeout on the embedded broker; Apache Kafka refuses
# less than its group.min.session.timeout.ms (6000 by default), so set the variable there.
SESSION_TIMEOUT_MS = int(os.environ.get("LEDGER_SESSION_TIMEOUT_MS") or 2000)
ISSUED_AT = datetime(2026, 1, 15, 9, 30, tzinfo=UTC)
# The library the tests build the ledger's own Kafka clients with, named as `ledger run` reads
# it: LEDGER_KAFKA_CLIENT=confluent-kafka runs the suite on the other client.
KAFKA_CLIENT = Settings.from_env(
    {"LEDGER_KAFKA_CLIENT": os.environ.get("LEDGER_KAFKA_CLIENT", "")}
).kafka_client


@dataclass(frozen=True)
class Servers:
    """Where one test's PostgreSQL database and Kafka broker are."""

    database_url: str
    kafka_bootstrap: str
    embedded_home: Path | None = (
        None  # where the servers a test restarts run (own_postgres, own_broker)
    )


def kafka_clients(bootstrap: str) -> KafkaClients:
    """The ledger's client factory for `bootstrap`, on the library LEDGER_KAFKA_CLIENT names."""
    return clients(bootstrap, Settings(None, bootstrap, kafka_client=KAFKA_CLIENT))


@dataclass(frozen=True)
class Read:
    """A message read back from a topic, decoded when it is Avro."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: dict[str, bytes]
    decoded: Decoded | None


def open_account(account_id: str, **fields: Any) -> dict[str, Any]:
    """An OpenAccount record with a fresh command_id."""
    return {
        "command_id": str(uuid.uuid4()),
        "account_id": account_id,
        "issued_at": ISSUED_AT,
        "currency": "EUR",
        "customer_reference": f"customer-of-{account_id}",
        "contacts": [{"channel": "email", "address": f"{account_id}@example.com"}],
    } | fields


def subscribe(account_id: str, **fields: Any) -> dict[str, Any]:
    """A Subscribe record (monthly, 9.99 EUR, no trial) with a fresh command_id."""
    return {
        "command_id": str(uuid.uuid4()),
        "account_id": account_id,
        "issued_at": ISSUED_AT,
        "subscription_id": "sub-1",
        "plan_id": "basic-monthly",
        "price_minor": 999,
        "currency": "EUR",
        "interval_unit": "MONTH",
        "interval_count": 1,
        "trial_days": 0,
        "days_until_due": 14,
        "cancellation_policy": "AT_PERIOD_END",
        "early_payment_discount_bp": 0,
        "early_payment_days": 0,
    } | fields


def define_plan(plan_id: str, **fields: Any) -> dict[str, Any]:
    """A DefinePlan record (monthly, 9.99 EUR, no trial) with a fresh command_id."""
    return {
        "command_id": str(uuid.uuid4()),
        "plan_id": plan_id,
        "issued_at": ISSUED_AT,
        "name": plan_id,
        "price_minor": 999,
        "currency": "EUR",
        "interval_unit": "MONTH",
        "interval_count": 1,
        "trial_days": 0,
    } | fields


def record_payment(account_id: str, **fields: Any) -> dict[str, Any]:
    """A RecordPayment record (10.00 EUR by bank transfer) with a fresh command_id."""
    return {
        "command_id": str(uuid.uuid4()),
        "account_id": account_id,
        "issued_at": ISSUED_AT + timedelta(days=3),
        "payment_id": f"pay-{uuid.uuid4().hex[:8]}",
        "amount_minor": 1000,
        "currency": "EUR",
        "payment_method_kind": "bank_transfer",
        "invoice_id": None,
    } | fields


def head(account_id: str, days: int = 0) -> dict[str, Any]:
    """The fields every command has, with a fresh command_id, `days` after ISSUED_AT."""
    return {
        "command_id": str(uuid.uuid4()),
        "account_id": account_id,
        "issued_at": ISSUED_AT + timedelta(days=days),
    }


def set_dunning_policy(account_id: str, **fields: Any) -> dict[str, Any]:
    """A SetDunningPolicy record: the recommended policy, suspending at the end."""
    return (
        head(account_id)
        | {
            "reminder_days_before_due": [3],
            "reminder_days_after_due": [1, 7, 14],
            "retry_days_after_failure": [1, 3, 7],
            "grace_days": 21,
            "final_action": "SUSPEND",
        }
        | fields
    )


def fail_charge(account_id: str, invoice_id: str, days: int = 14) -> dict[str, Any]:
    """A FailCharge record: the card had insufficient funds."""
    return head(account_id, days) | {
        "invoice_id": invoice_id,
        "payment_method_kind": "credit_card",
        "reason": "insufficient_funds",
    }


def cancel_subscription(
    account_id: str, days: int, subscription_id: str = "sub-1"
) -> dict[str, Any]:
    """A CancelSubscription record."""
    return head(account_id, days) | {"subscription_id": subscription_id}


def advance_clock(account_id: str, days: int) -> dict[str, Any]:
    """An AdvanceClock record `days` after ISSUED_AT, with a fresh command_id."""
    return {
        "command_id": str(uuid.uuid4()),
        "account_id": account_id,
        "issued_at": ISSUED_AT + timedelta(days=days),
    }


def publish(
    bootstrap: str, messages: list[tuple[bytes | None, bytes]], topic: str = "billing.commands"
) -> None:
    """Publish raw (key, value) pairs with a plain kafka-python producer."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    try:
        for key, value in messages:
            producer.send(topic, key=key, value=value)
        producer.flush()
    finally:
        producer.close()


def command_message(command_type: str, record: Mapping[str, Any]) -> tuple[bytes, bytes]:
    """The (key, value) of a command, keyed by its account id (a plan command: its plan id)."""
    key = record[key_field_of(command_type)]
    return key.encode(), CODEC.encode(f"billing.commands.{command_type}", record)


def read_until(
    bootstrap: str,
    topic: str,
    done: Callable[[list[Read]], bool],
    timeout_s: float = 20.0,
) -> list[Read]:
    """Read `topic` from the start of every partition until `done(messages)` or the timeout."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        consumer.assign([TopicPartition(topic, p) for p in sorted(partitions)])
        consumer.seek_to_beginning()
        found: list[Read] = []
        deadline = time.monotonic() + timeout_s
        while not done(found) and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=200).values():
                found.extend(_read(r) for r in batch)
        return found
    finally:
        consumer.close()


def _read(record: Any) -> Read:
    try:
        decoded: Decoded | None = CODEC.decode(record.value)
    except Exception:
        decoded = None
    return Read(
        record.partition,
        record.offset,
        record.key,
        record.value,
        {k: v for k, v in record.headers},
        decoded,
    )


def wait_for(condition: Callable[[], Any], timeout_s: float = 20.0, every_s: float = 0.05) -> Any:
    """Poll `condition` until it answers something truthy; fail with the last answer."""
    deadline = time.monotonic() + timeout_s
    answer = condition()
    while not answer and time.monotonic() < deadline:
        time.sleep(every_s)
        answer = condition()
    assert answer, f"condition not met within {timeout_s} s: {answer!r}"
    return answer


def has_partitions_of_both_groups(log: Path) -> bool:
    """Whether a `ledger run` log says it resumed partitions of its commands and its projections.

    Tests stop a worker only after the other has both shares: on tansu, a member leaving while
    another's join is pending can stall that join for minutes (README, the embedded broker).
    """
    text = log.read_text()
    return "commands.partition.resumed" in text and "projector.partition.resumed" in text
