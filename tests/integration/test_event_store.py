"""The event store on real PostgreSQL: large batches, and positions that only move forward."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from eventsourcing.persistence import IntegrityError, Tracking

from infra.postgres import EventsWakeup, connect
from ledger.account import Account
from ledger.application import BillingLedger
from outbox.relay import create_table
from runtime.runner import open_ledger
from tests.helpers import Servers

pytestmark = pytest.mark.integration


@pytest.fixture(name="ledger")
def fixture_ledger(servers: Servers) -> Iterator[BillingLedger]:
    """The ledger on the test's database."""
    ledger = open_ledger(servers.database_url)
    yield ledger
    ledger.close()


def accounts(count: int, prefix: str) -> list[Account]:
    """`count` new accounts, each with one pending event of about 1 kB."""
    return [
        Account.open(
            command_id=f"c-{prefix}-{n}",
            account_id=f"{prefix}-{n}",
            issued_at=datetime(2026, 1, 1, tzinfo=UTC),
            currency="EUR",
            customer_reference="r" * 900,
        )
        for n in range(count)
    ]


class TestLargeBatches:
    """A batch of thousands of events is saved in one transaction without hanging."""

    def test_five_thousand_events_in_one_save(self, ledger: BillingLedger) -> None:
        """5,000 events of ~1 kB (a ~5 MB insert) are saved; psycopg's pipeline mode hung here."""
        batch = accounts(5000, "big")
        saving = threading.Thread(
            target=ledger.save,
            args=batch,
            kwargs={"positions": [Tracking("test/big/0", 1)]},
            daemon=True,
        )
        saving.start()
        saving.join(timeout=60)
        assert not saving.is_alive(), "the save hung"
        assert ledger.recorder.max_notification_id() == 5000
        assert ledger.stored_position("test/big/0") == 1


class TestPositions:
    """A stored position only moves forward, in the same transaction as the events."""

    def test_a_stale_position_refuses_the_whole_batch(self, ledger: BillingLedger) -> None:
        """Saving at a position not beyond the stored one raises and stores none of the events."""
        ledger.save(*accounts(2, "first"), positions=[Tracking("test/p/0", 10)])
        with pytest.raises(IntegrityError):
            ledger.save(*accounts(2, "second"), positions=[Tracking("test/p/0", 10)])
        assert ledger.account("second-0") is None
        assert ledger.stored_position("test/p/0") == 10

    def test_positions_of_several_partitions_are_stored_together(
        self, ledger: BillingLedger
    ) -> None:
        """One save stores one position per partition."""
        ledger.save(
            *accounts(1, "multi"), positions=[Tracking("test/m/0", 4), Tracking("test/m/1", 7)]
        )
        assert (ledger.stored_position("test/m/0"), ledger.stored_position("test/m/1")) == (4, 7)


class TestWorkersStartingTogether:
    """Several workers opening the ledger at once on an empty database all start."""

    def test_four_at_once_all_open_the_store(self, servers: Servers) -> None:
        """Without taking turns, all but one failed creating the tables (10 runs in 10)."""
        failures: list[BaseException] = []
        ledgers: list[BillingLedger] = []
        start = threading.Barrier(4)

        def open_one() -> None:
            start.wait()
            try:
                ledgers.append(open_ledger(servers.database_url))
            except BaseException as failure:
                failures.append(failure)

        threads = [threading.Thread(target=open_one) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        for ledger in ledgers:
            ledger.close()
        assert failures == []
        assert len(ledgers) == 4

    def test_four_relays_at_once_all_create_their_table(self, servers: Servers) -> None:
        """The relay positions table is created once, whoever comes first."""
        failures: list[BaseException] = []
        start = threading.Barrier(4)

        def create_one() -> None:
            with connect(servers.database_url, autocommit=True) as connection:
                start.wait()
                try:
                    create_table(connection)
                except BaseException as failure:
                    failures.append(failure)

        threads = [threading.Thread(target=create_one) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert failures == []


class TestEventsWakeup:
    """The relay's wait ends when a transaction storing events commits, not at its timeout."""

    def test_a_commit_wakes_the_waiter(self, servers: Servers, ledger: BillingLedger) -> None:
        """Events saved after listening began: the wait answers True, not the timeout's False."""
        wakeup = EventsWakeup(servers.database_url)
        try:
            assert wakeup.wait(0.1) is False  # listening from here on; nothing committed yet
            ledger.save(*accounts(1, "wake"))
            assert wakeup.wait(30) is True
        finally:
            wakeup.close()

    def test_no_more_wakes_than_commits(self, servers: Servers, ledger: BillingLedger) -> None:
        """Three commits wake the waiter at least once and at most three times, never more.

        Notifications that arrived before a wake are consumed by it; how many of the three have
        arrived by then depends on the server, so only the bounds are promised.
        """
        wakeup = EventsWakeup(servers.database_url)
        try:
            wakeup.wait(0.1)
            for prefix in ("a", "b", "c"):
                ledger.save(*accounts(1, prefix))
            assert wakeup.wait(30) is True
            later_wakes = 0
            while wakeup.wait(0.5):
                later_wakes += 1
                assert later_wakes <= 2, "more wakes than commits"
        finally:
            wakeup.close()

    def test_a_waiter_woken_from_another_thread(
        self, servers: Servers, ledger: BillingLedger
    ) -> None:
        """A save in another thread while the wait is under way ends it."""
        wakeup = EventsWakeup(servers.database_url)
        try:
            wakeup.wait(0.1)
            saver = threading.Timer(0.3, lambda: ledger.save(*accounts(1, "later")))
            saver.start()
            assert wakeup.wait(30) is True
            saver.join()
        finally:
            wakeup.close()
