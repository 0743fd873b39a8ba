"""Specification of the ledger's save: the library's save, without its runtime Protocol checks.

`BillingLedger.save` collects an aggregate's events itself; it must store exactly what
eventsourcing's `Application.save` stores for the same batches.
"""

from __future__ import annotations

import inspect
from typing import Any

import pytest
from eventsourcing.application import Application, ProcessingEvent
from eventsourcing.domain import CollectEventsProtocol, DomainEventProtocol
from hypothesis import given

from ledger.application import AggregatesFirst, BillingLedger
from tests.unit.builders import ISSUED_AT, Sender, in_memory_ledger, open_account, terms
from tests.unit.histories import History, histories
from tests.unit.test_properties import PROPERTY, stored


class LibrarySaving(BillingLedger):
    """The ledger as it saved before: through the library's own `Application.save`."""

    save = Application.save  # type: ignore[assignment]


def library_ledger() -> LibrarySaving:
    return LibrarySaving(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})


def rows(ledger: BillingLedger) -> list[tuple[Any, ...]]:
    """Every stored notification as (id, aggregate, version, topic, state bytes)."""
    return [(n.id, n.originator_id, n.originator_version, n.topic, n.state) for n in stored(ledger)]


def aggregates_with_events() -> list[Any]:
    """An account with pending events, its receipt and a plan never defined (None), made by
    the same commands each call."""
    ledger = in_memory_ledger()
    Sender(ledger)(open_account(command_id="3a9e2d5c-8c1f-4d8b-9a57-8c9b1a3e2f10"))
    account = ledger.account("acc-1")
    assert account is not None
    account.subscribe(
        command_id="5d1c6f0e-2b7a-4c3e-8f21-6a4b9e0d7c35",
        issued_at=ISSUED_AT,
        subscription_id="sub-1",
        terms=terms(),
    )
    receipt = ledger.receipt("3a9e2d5c-8c1f-4d8b-9a57-8c9b1a3e2f10")
    return [account, receipt, ledger.plan("never-defined")]


class TestAggregatesFirst:
    """An aggregate's events are collected as the library's checks would collect them."""

    @pytest.mark.parametrize("kind", ["account", "receipt"])
    def test_the_ledgers_aggregates_pass_the_library_checks_as_assumed(self, kind: str) -> None:
        """Each aggregate is no domain event and collects events, by the library's own checks."""
        account, receipt, _ = aggregates_with_events()
        aggregate = {"account": account, "receipt": receipt}[kind]
        assert not isinstance(aggregate, DomainEventProtocol)
        assert isinstance(aggregate, CollectEventsProtocol)

    def test_a_mix_of_aggregates_events_and_none_is_collected_in_the_same_order(self) -> None:
        """Aggregates, a bare event and None: the same events, aggregates and kwargs."""
        ours, library = AggregatesFirst(), ProcessingEvent[Any]()
        for collector in (ours, library):
            account, receipt, nothing = aggregates_with_events()
            event = account.pending_events.pop()
            collector.collect_events(receipt, nothing, event, account, positions=[1])
        assert ours.events == library.events
        assert ours.aggregates.keys() == library.aggregates.keys()
        assert ours.saved_kwargs == library.saved_kwargs == {"positions": [1]}

    def test_the_library_save_is_still_the_one_mirrored(self) -> None:
        """eventsourcing's save calls what ours calls: an upgrade that changes it fails here."""
        source = inspect.getsource(Application.save)
        body = source[source.index('"""', source.index('"""') + 3) + 3 :]
        assert body.split() == [
            "processing_event:",
            "ProcessingEvent[TAggregateID]",
            "=",
            "ProcessingEvent()",
            "processing_event.collect_events(*objs,",
            "**kwargs)",
            "recordings",
            "=",
            "self._record(processing_event)",
            "self._take_snapshots(processing_event)",
            "self._notify(recordings)",
            "self.notify(processing_event.events)",
            "#",
            "Deprecated.",
            "return",
            "recordings",
        ]


class TestSameStoredBytes:
    """The ledger's save stores what the library's save stores, byte for byte."""

    @PROPERTY
    @given(history=histories())
    def test_random_histories(self, history: History) -> None:
        """Random histories sent to both ledgers: the same notifications, ids and bytes."""
        ours, library = in_memory_ledger(), library_ledger()
        send_ours, send_library = Sender(ours), Sender(library)
        for batch in history.batches():
            send_ours(*batch)
            send_library(*batch)
        assert rows(ours) == rows(library)
        assert rows(ours)
