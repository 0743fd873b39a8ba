"""Fixtures of the unit specifications: an in-memory ledger and a sender of command batches."""

from __future__ import annotations

import pytest

from ledger.application import BillingLedger
from tests.unit.builders import Sender, in_memory_ledger


@pytest.fixture(name="ledger")
def fixture_ledger() -> BillingLedger:
    """A fresh ledger whose event store lives in memory: no PostgreSQL, no Kafka."""
    return in_memory_ledger()


@pytest.fixture(name="send")
def fixture_send(ledger: BillingLedger) -> Sender:
    """Sends one batch of commands to `ledger` and saves what it changed, like the consumer."""
    return Sender(ledger)
