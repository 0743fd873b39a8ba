"""A book of accounts driven by commands through the real domain, projected into real PostgreSQL.

Commands go to an in-memory ledger as the consumer would send them; the events they stored are
published as billing.events messages (the relay's encoding), decoded as the projector decodes
them, and applied by every registered read model in one transaction per step, which ends with the work
they deferred (the forecast snapshots), as the projector does when idle.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from commands.table import command_from_record
from infra.postgres import create_tables
from ledger.application import BillingLedger
from projections.projector import POSITIONS_SCHEMA, catch_up
from projections.registry import READ_MODELS
from tests.unit.builders import Sender, in_memory_ledger
from wire.codec import AvroCodec
from wire.event_records import outgoing

CODEC = AvroCodec()
START = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)


def day(n: int) -> datetime:
    """Business time `n` days after START (1 January 2026, 09:00 UTC)."""
    return START + timedelta(days=n)


class Book:
    """Commands in, read-model rows out: each `do` is one batch, projected at once."""

    def __init__(self, database_url: str, ledger: BillingLedger | None = None) -> None:
        self.ledger = ledger or in_memory_ledger()
        self.send = Sender(self.ledger)
        self.connection = psycopg.connect(database_url)
        create_tables(self.connection, POSITIONS_SCHEMA, *(m.schema for m in READ_MODELS))
        self.position = 0
        self.messages: list[tuple[str, dict[str, Any]]] = []  # every event projected, in order

    def do(self, command_type: str, account_id: str, at: datetime, **fields: Any) -> None:
        """Send one command at business time `at`; it must be accepted."""
        record = {
            "command_id": str(uuid.uuid4()),
            "account_id": account_id,
            "issued_at": at,
        } | fields
        (outcome,) = self.send(command_from_record(command_type, record))
        assert outcome.rejection is None, outcome.rejection
        self.project()

    def open(self, account_id: str, at: datetime = START, currency: str = "EUR") -> None:
        """Open an account."""
        self.do(
            "OpenAccount",
            account_id,
            at,
            currency=currency,
            customer_reference=f"crm-{account_id}",
            contacts=[],
        )

    def subscribe(self, account_id: str, at: datetime, price_minor: int, **terms: Any) -> None:
        """Subscribe `sub-1` to a monthly custom plan at `price_minor`, due in 14 days."""
        self.do(
            "Subscribe",
            account_id,
            at,
            **{
                "subscription_id": "sub-1",
                "plan_id": "custom",
                "price_minor": price_minor,
                "currency": "EUR",
                "interval_unit": "MONTH",
                "interval_count": 1,
                "trial_days": 0,
                "days_until_due": 14,
                "cancellation_policy": "AT_PERIOD_END",
                "early_payment_discount_bp": 0,
                "early_payment_days": 0,
            }
            | terms,
        )

    def pay(self, account_id: str, at: datetime, amount_minor: int, **fields: Any) -> None:
        """Record a payment by bank transfer."""
        self.do(
            "RecordPayment",
            account_id,
            at,
            **{
                "payment_id": f"pay-{uuid.uuid4().hex[:8]}",
                "amount_minor": amount_minor,
                "currency": "EUR",
                "payment_method_kind": "bank_transfer",
                "invoice_id": None,
            }
            | fields,
        )

    def tick(self, account_id: str, at: datetime) -> None:
        """Advance the account's clock to `at`."""
        self.do("AdvanceClock", account_id, at)

    def project(self) -> None:
        """Apply the events stored since the last call to every read model, in one transaction."""
        notifications = self.ledger.recorder.select_notifications(
            start=self.position, limit=10_000, inclusive_of_start=False
        )
        with self.connection.transaction(), self.connection.cursor() as cursor:
            for notification in notifications:
                message = outgoing(
                    self.ledger.mapper.to_domain_event(notification), notification.id, CODEC
                )
                decoded = CODEC.decode(message.value or b"")
                if not decoded.schema_name.startswith("billing.events."):
                    continue  # a command result
                event_type = decoded.schema_name.rpartition(".")[2]
                self.messages.append((event_type, decoded.record))
                for model in READ_MODELS:
                    model.apply(cursor, event_type, decoded.record)
            catch_up(cursor, READ_MODELS)  # as the projector does once idle
        if notifications:
            self.position = notifications[-1].id

    def replay(self) -> None:
        """Apply every event projected so far once more, as a republished history would be."""
        with self.connection.transaction(), self.connection.cursor() as cursor:
            for event_type, record in self.messages:
                for model in READ_MODELS:
                    model.apply(cursor, event_type, record)
            catch_up(cursor, READ_MODELS)

    def rows(self, query: str, *params: Any) -> list[tuple[Any, ...]]:
        """The rows of a query, in a transaction of their own."""
        with self.connection.transaction():
            return self.connection.execute(query, params).fetchall()

    def close(self) -> None:
        """Close the database connection."""
        self.connection.close()
