"""A small book for the replay and reconcile tests, saved in three batches, figures by hand.

ISSUED_AT is 2026-01-15 09:30 UTC (day 0). Both accounts pay 14 days after each invoice.

- batch 1: `acme` opens and subscribes at 9.99 (invoice sub-1/1, 999, due 29 January);
  `beta` opens and subscribes at 20.00 (sub-1/1, 2000, due 29 January).
- batch 2: the clock reaches day 31 (15 February) on both: sub-1/2 is issued to each (due
  1 March) and sub-1/1 is marked overdue; `acme` pays sub-1/1 on day 35 (19 February).
- batch 3, the correction: a credit note of 5.00 against acme's sub-1/2, for business day 32
  (16 February), recorded after the payment of day 35. The credit settles 500 of sub-1/2.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from eventsourcing.persistence import Tracking

from audit.store import snapshot
from commands.handlers import Delivery, process
from commands.mapping import content_digest
from commands.table import command_from_record
from commands.unit_of_work import UnitOfWork
from ledger.application import BillingLedger
from ledger.receipts import Source
from tests.helpers import ISSUED_AT, advance_clock, head, open_account, record_payment, subscribe

COMMANDS = "test-cluster/billing.commands/0"


def day(n: int) -> datetime:
    """Business time `n` days after ISSUED_AT."""
    return ISSUED_AT + timedelta(days=n)


def batches() -> list[list[tuple[str, dict[str, Any]]]]:
    """The book's commands, batch by batch."""
    return [
        [
            ("OpenAccount", open_account("acme")),
            ("Subscribe", subscribe("acme")),
            ("OpenAccount", open_account("beta")),
            ("Subscribe", subscribe("beta", price_minor=2000)),
        ],
        [
            ("AdvanceClock", advance_clock("acme", 31)),
            ("AdvanceClock", advance_clock("beta", 31)),
            (
                "RecordPayment",
                record_payment("acme", issued_at=day(35), amount_minor=999, invoice_id="sub-1/1"),
            ),
        ],
        [
            (
                "IssueCreditNote",
                head("acme", 32)
                | {
                    "credit_note_id": "cn-1",
                    "invoice_id": "sub-1/2",
                    "amount_minor": 500,
                    "reason": "service outage",
                },
            )
        ],
    ]


def save_replay_book(ledger: BillingLedger) -> None:
    """Save the three batches, each with its Kafka position, as the writer does."""
    offset = 0
    for batch in batches():
        deliveries = []
        for kind, record in batch:
            record = {"command_id": str(uuid.uuid4())} | record
            deliveries.append(
                Delivery(
                    command_from_record(kind, record),
                    kind,
                    content_digest(kind, record),
                    Source("billing.commands", 0, offset),
                )
            )
            offset += 1
        work = UnitOfWork(ledger)
        outcomes = process(work, deliveries, frozenset())
        assert all(o.rejection is None for o in outcomes), outcomes
        ledger.save(*work.changed, positions=[Tracking(COMMANDS, offset - 1)])


def recorded_times(database_url: str) -> list[datetime]:
    """When each batch was recorded, in batch order."""
    with snapshot(database_url) as store:
        return [sealed.head.recorded_at for sealed in store.heads()]
