"""Two handlers changing one account at once: optimistic concurrency lets exactly one write."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from eventsourcing.persistence import IntegrityError, Tracking

from commands.account_cache import AccountCache
from commands.consumer import handle_batch
from infra.kafka import Message
from ledger.application import BillingLedger
from runtime.runner import open_ledger
from tests.helpers import CODEC, Servers, command_message, open_account, subscribe

pytestmark = pytest.mark.integration


def message(offset: int, command_type: str, record: dict[str, object]) -> Message:
    """A command as it would be read from partition 0 of billing.commands."""
    key, value = command_message(command_type, record)
    return Message("billing.commands", 0, offset, key, value)


@pytest.fixture(name="ledgers")
def fixture_ledgers(servers: Servers) -> Iterator[tuple[BillingLedger, BillingLedger]]:
    """Two ledger applications on one database, as two workers have during a rebalance."""
    first, second = open_ledger(servers.database_url), open_ledger(servers.database_url)
    yield first, second
    first.close()
    second.close()


class TestOptimisticConcurrency:
    """The second writer of the same account version is refused as a whole and changes nothing."""

    def test_the_second_writer_is_refused(
        self, ledgers: tuple[BillingLedger, BillingLedger]
    ) -> None:
        """Both handle a Subscribe on version 1; the later save raises and stores nothing."""
        first, second = ledgers
        opened = handle_batch(
            first, CODEC, [message(0, "OpenAccount", open_account("acc-c"))], "cluster-t"
        )
        first.save(*opened.work.changed, positions=[Tracking("test/commands/0", 0)])

        mine = handle_batch(
            first, CODEC, [message(1, "Subscribe", subscribe("acc-c"))], "cluster-t"
        )
        theirs = handle_batch(
            second,
            CODEC,
            [message(1, "Subscribe", subscribe("acc-c", subscription_id="sub-other"))],
            "cluster-t",
        )
        first.save(*mine.work.changed, positions=[Tracking("test/commands/0", 1)])
        with pytest.raises(IntegrityError):
            second.save(*theirs.work.changed, positions=[Tracking("test/other/0", 1)])

        account = second.account("acc-c")
        assert account is not None and account.version == 3
        assert set(account.subscriptions) == {"sub-1"}
        assert second.stored_position("test/other/0") is None  # its position was not stored
        command_id = theirs.outcomes[0].delivery.command.command_id
        assert second.receipt(command_id) is None  # nor its receipt: it can be processed again

    def test_the_refused_writer_succeeds_when_it_retries_on_fresh_state(
        self, ledgers: tuple[BillingLedger, BillingLedger]
    ) -> None:
        """Handled again from the store, the refused command applies on top of the winner's."""
        first, second = ledgers
        opened = handle_batch(
            first, CODEC, [message(0, "OpenAccount", open_account("acc-d"))], "cluster-t"
        )
        first.save(*opened.work.changed)
        record = subscribe("acc-d", subscription_id="sub-late")
        stale = handle_batch(second, CODEC, [message(1, "Subscribe", record)], "cluster-t")
        winner = handle_batch(
            first, CODEC, [message(2, "Subscribe", subscribe("acc-d"))], "cluster-t"
        )
        first.save(*winner.work.changed)
        with pytest.raises(IntegrityError):
            second.save(*stale.work.changed)
        retried = handle_batch(second, CODEC, [message(1, "Subscribe", record)], "cluster-t")
        second.save(*retried.work.changed)
        account = first.account("acc-d")
        assert account is not None
        assert set(account.subscriptions) == {"sub-1", "sub-late"}
        assert account.version == 5


class TestStaleCachedAccount:
    """A worker whose cached account another worker changed meanwhile can only be refused."""

    def test_a_stale_cached_account_is_refused_then_read_again(
        self, ledgers: tuple[BillingLedger, BillingLedger]
    ) -> None:
        """The cached copy's next event collides with the stored one; read again, it applies."""
        first, second = ledgers
        cache = AccountCache(10)
        opened = handle_batch(
            first, CODEC, [message(0, "OpenAccount", open_account("acc-s"))], "cluster-t", cache
        )
        first.save(*opened.work.changed)
        cache.keep(opened.work.accounts)
        # The partition moved to the second worker without the first hearing of it.
        theirs = handle_batch(
            second, CODEC, [message(1, "Subscribe", subscribe("acc-s"))], "cluster-t"
        )
        second.save(*theirs.work.changed)
        record = subscribe("acc-s", subscription_id="sub-late")
        stale = handle_batch(first, CODEC, [message(2, "Subscribe", record)], "cluster-t", cache)
        with pytest.raises(IntegrityError):
            first.save(*stale.work.changed)
        assert len(cache) == 0  # taken by the refused batch, never kept
        retried = handle_batch(first, CODEC, [message(2, "Subscribe", record)], "cluster-t", cache)
        first.save(*retried.work.changed)
        account = second.account("acc-s")
        assert account is not None and account.version == 5
        assert set(account.subscriptions) == {"sub-1", "sub-late"}
