"""A sample book for the audit tests: the session's PostgreSQL, a fresh database per test.

The book is the worked example's customer year (tools/worked_example.py), saved three
commands per batch with their Kafka positions, plus one batch of positions only (as when a
poll brings nothing but dead letters).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from eventsourcing.persistence import Tracking
from psycopg.conninfo import make_conninfo

from audit.checkpoint import checkpoint_of, sign
from audit.store import snapshot
from commands.handlers import Delivery, process
from commands.mapping import PLAN_COMMAND_TYPES, content_digest, key_field_of
from commands.table import command_from_record
from commands.unit_of_work import UnitOfWork
from ledger.application import BillingLedger
from ledger.receipts import Source
from runtime.runner import open_ledger
from tools.worked_example import ACCOUNT, NAMESPACE, PLAN, story

COMMANDS = "test-cluster/billing.commands/0"
DEAD_LETTERS_ONLY = "test-cluster/billing.commands/1"
PER_BATCH = 3


@pytest.fixture(name="postgres_url")
def fixture_postgres_url(session_postgres: str | None) -> str:
    """LEDGER_DATABASE_URL, or the session's embedded PostgreSQL (tests/conftest.py)."""
    url = os.environ.get("LEDGER_DATABASE_URL") or session_postgres
    assert url
    return url


@pytest.fixture(name="database_url")
def fixture_database_url(postgres_url: str) -> Iterator[str]:
    """A new, empty database for one test."""
    name = f"audit_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_conninfo(postgres_url, dbname=name)
    finally:
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(name="ledger")
def fixture_ledger(database_url: str) -> Iterator[BillingLedger]:
    """The ledger on the test's database, holding the sample book."""
    ledger = open_ledger(database_url)
    save_book(ledger)
    yield ledger
    ledger.close()


@pytest.fixture(name="cli")
def fixture_cli() -> Iterator[None]:
    """Leaves logging as it was: `main` points structlog at the stream pytest captures."""
    yield
    structlog.reset_defaults()


@pytest.fixture(name="key")
def fixture_key() -> Ed25519PrivateKey:
    """The auditor's signing key."""
    return Ed25519PrivateKey.generate()


def save_book(ledger: BillingLedger, first_offset: int = 0) -> None:
    """Save the worked example's commands, PER_BATCH per save, then a positions-only batch."""
    deliveries = [
        delivery(first_offset + n, kind, fields) for n, (_, kind, fields) in enumerate(story())
    ]
    for start in range(0, len(deliveries), PER_BATCH):
        batch = deliveries[start : start + PER_BATCH]
        work = UnitOfWork(ledger)
        process(work, batch, frozenset())
        ledger.save(*work.changed, positions=[Tracking(COMMANDS, batch[-1].source.offset)])
    ledger.save(positions=[Tracking(DEAD_LETTERS_ONLY, first_offset)])


def delivery(offset: int, command_type: str, fields: dict[str, Any]) -> Delivery:
    """The worked example's command number `offset` as read from partition 0."""
    record = {"command_id": str(uuid.uuid5(NAMESPACE, f"audit-{offset}"))}
    record[key_field_of(command_type)] = PLAN if command_type in PLAN_COMMAND_TYPES else ACCOUNT
    record |= fields
    return Delivery(
        command_from_record(command_type, record),
        command_type,
        content_digest(command_type, record),
        Source("billing.commands", 0, offset),
    )


def signed_checkpoint(database_url: str, key: Ed25519PrivateKey) -> str:
    """A checkpoint of the store as it is now, signed by `key`."""
    with snapshot(database_url) as store:
        last = store.last_head()
    assert last is not None
    return sign(checkpoint_of(last), key)


def execute(database_url: str, statement: str, *params: Any) -> int:
    """Run one statement directly on the database, as someone tampering would; answer the rows changed."""
    with psycopg.connect(database_url, autocommit=True) as connection:
        return connection.execute(statement, params).rowcount  # type: ignore[arg-type]
