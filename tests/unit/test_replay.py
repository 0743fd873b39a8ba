"""Replay's fast reading of stored events gives what the relay's records give (audit/records.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from eventsourcing.persistence import Notification

from audit.records import OTHER_TOPICS, VIEW_EVENTS, account_record, event_type, occurred_at
from audit.replay import Replayed, replay
from audit.replay_rows import balance_row, delinquency_row, invoice_rows
from commands.handlers import process
from commands.unit_of_work import UnitOfWork
from ledger.application import BillingLedger
from tests.integration.audit_book import delivery
from tools.worked_example import story
from wire.codec import AvroCodec
from wire.event_records import outgoing

CODEC = AvroCodec()
Stored = tuple[BillingLedger, list[Notification]]


@pytest.fixture(name="stored", scope="module")
def fixture_stored() -> Stored:
    """The worked example's year in an in-memory ledger: its notifications."""
    ledger = BillingLedger(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    work = UnitOfWork(ledger)
    commands = [delivery(n, kind, fields) for n, (_, kind, fields) in enumerate(story())]
    process(work, commands, frozenset())
    ledger.save(*work.changed)
    return ledger, list(ledger.recorder.select_notifications(start=1, limit=10_000))


def fast(stored: Stored) -> list[Replayed]:
    """The account events as replay reads them: only those it applies."""
    _, notifications = stored
    return [
        Replayed(n.id, kind, account_record(n.state, n.originator_version))
        for n in notifications
        if n.topic not in OTHER_TOPICS
        and (kind := event_type(n.topic)) is not None
        and kind in VIEW_EVENTS
    ]


def relayed(stored: Stored) -> list[Replayed]:
    """The account events as the relay publishes them and the projector decodes them."""
    ledger, notifications = stored
    events = []
    for n in notifications:
        message = outgoing(ledger.mapper.to_domain_event(n), n.id, CODEC)
        decoded = CODEC.decode(message.value or b"")
        if decoded.schema_name.startswith("billing.events.") and "account_id" in decoded.record:
            events.append(Replayed(n.id, decoded.schema_name.rpartition(".")[2], decoded.record))
    return events


class TestFastRecords:
    """Parsing the stored JSON is a shortcut, not another meaning."""

    def test_same_events_in_the_same_order(self, stored: Stored) -> None:
        """Every account event replay applies is read, with its billing.events type."""
        assert [(e.position, e.event_type) for e in fast(stored)] == [
            (e.position, e.event_type) for e in relayed(stored) if e.event_type in VIEW_EVENTS
        ]

    def test_business_time_without_parsing(self, stored: Stored) -> None:
        """The time read off the state's start is the event's timestamp."""
        _, notifications = stored
        for n in notifications:
            assert occurred_at(n.state) == account_record(n.state, 1)["occurred_at"]
        assert occurred_at(
            b'{"x": 1, "timestamp": {"_type_": "datetime_iso", "_data_": '
            b'"2026-01-01T00:00:00+00:00"}}'
        ) == datetime(2026, 1, 1, tzinfo=UTC)

    @pytest.mark.parametrize("month", [1, 2, 3, 4, 6, 9, 12])
    def test_same_views_at_month_ends(self, stored: Stored, month: int) -> None:
        """Balances, invoices and delinquency agree at each month's start through the year."""
        as_of = datetime(2024, month, 28, tzinfo=UTC)
        views = []
        for events in (fast(stored), relayed(stored)):
            (view,) = replay(as_of, [10**9], events).views
            views.append(
                [
                    (balance_row(a), invoice_rows(a, as_of), delinquency_row(a, as_of))
                    for a in view.values()
                ]
            )
        assert views[0] == views[1]
        assert views[0][0][0]["invoiced_minor"] > 0

    def test_other_topics_are_not_account_events(self) -> None:
        """Receipts and plans are left out; an unknown topic is not an error."""
        assert event_type("ledger.receipts:CommandReceipt.Recorded") is None
        assert event_type("ledger.plans:Plan.Defined") is None
        assert event_type("ledger.nowhere:Gone.Event") is None
        assert event_type("ledger.account:Account.InvoiceIssued") == "InvoiceIssued"
