"""Specification of the accounts a command worker keeps in memory between batches."""

from __future__ import annotations

import pytest
from hypothesis import given
from structlog.testing import capture_logs

from commands.account_cache import AccountCache
from commands.consumer import CommandConsumer
from commands.handlers import process
from commands.unit_of_work import UnitOfWork
from infra.config import ConfigError, Settings
from infra.kafka import Message
from ledger.account import Account
from ledger.application import BillingLedger
from tests import helpers
from tests.helpers import CODEC, command_message
from tests.unit.builders import Sender, in_memory_ledger, open_account, subscribe
from tests.unit.histories import History, histories
from tests.unit.test_properties import PROPERTY, streams
from wire.topics import COMMANDS_TOPIC


@pytest.fixture(name="ledger")
def fixture_ledger() -> BillingLedger:
    return in_memory_ledger()


def saved_account(ledger: BillingLedger, account_id: str) -> Account:
    account = ledger.account(account_id)
    assert account is not None
    return account


class TestAccountCache:
    """Saved accounts are kept, handed out once, and dropped oldest first."""

    def test_a_taken_account_is_no_longer_cached(self, ledger: BillingLedger) -> None:
        """A unit of work takes the account out: a batch that fails cannot leave it changed."""
        Sender(ledger)(open_account("acc-1"))
        cache = AccountCache(10)
        cache.keep([saved_account(ledger, "acc-1")])
        assert list(cache.take(["acc-1", "acc-2"])) == ["acc-1"]
        assert cache.take(["acc-1"]) == {}

    def test_the_least_recently_kept_account_is_dropped_first(self, ledger: BillingLedger) -> None:
        """Past its capacity, the cache forgets the account kept longest ago."""
        Sender(ledger)(*(open_account(f"acc-{n}") for n in range(3)))
        cache = AccountCache(2)
        cache.keep(saved_account(ledger, f"acc-{n}") for n in range(3))
        assert len(cache) == 2
        assert sorted(cache.take(["acc-0", "acc-1", "acc-2"])) == ["acc-1", "acc-2"]

    def test_the_cached_accounts_hold_at_most_max_events(self, ledger: BillingLedger) -> None:
        """An account grows with its history: past `max_events` in all, the oldest are dropped."""
        Sender(ledger)(*(open_account(f"acc-{n}") for n in range(3)), subscribe("acc-2"))
        accounts = [saved_account(ledger, f"acc-{n}") for n in range(3)]
        assert accounts[-1].version > 1  # subscribed: more events than an open account
        cache = AccountCache(10, max_events=accounts[-1].version + 1)
        cache.keep(accounts)
        assert sorted(cache.take(["acc-0", "acc-1", "acc-2"])) == ["acc-1", "acc-2"]
        assert cache.events == 0

    def test_the_events_count_follows_what_is_kept_and_taken(self, ledger: BillingLedger) -> None:
        """Kept again, an account counts once, with its latest version; cleared, none count."""
        Sender(ledger)(open_account("acc-1"), open_account("acc-2"))
        first = saved_account(ledger, "acc-1")
        cache = AccountCache(10, max_events=100)
        cache.keep([first, saved_account(ledger, "acc-2")])
        Sender(ledger)(subscribe("acc-1"))
        cache.keep([saved_account(ledger, "acc-1")])
        assert cache.events == saved_account(ledger, "acc-1").version + 1
        cache.clear()
        assert (len(cache), cache.events) == (0, 0)

    def test_an_account_with_pending_events_is_refused(self, ledger: BillingLedger) -> None:
        """Only an account as saved may be kept: one changed in a batch never saved is a bug."""
        Sender(ledger)(open_account("acc-1"))
        work = UnitOfWork(ledger)
        process(work, Sender(ledger).deliveries([subscribe("acc-1")]), frozenset())
        changed = work.account("acc-1")
        assert changed is not None and changed.pending_events
        with pytest.raises(AssertionError):
            AccountCache(1).keep([changed])


class TestCachedBatches:
    """A worker keeping accounts in memory stores exactly what one reading them back stores."""

    def test_the_second_batch_reads_the_account_from_the_cache(self, ledger: BillingLedger) -> None:
        """The account saved by one batch is the object the next batch changes."""
        cache = AccountCache(10)
        send = Sender(ledger, cache)
        send(open_account("acc-1"))
        kept = cache.take(["acc-1"])["acc-1"]
        cache.keep([kept])
        send(subscribe("acc-1"))
        assert send.live_accounts["acc-1"] is kept
        assert kept.version == saved_account(ledger, "acc-1").version == 3

    @PROPERTY
    @given(history=histories())
    def test_every_stream_is_byte_identical_with_and_without_the_cache(
        self, history: History
    ) -> None:
        """Random histories cut into batches: the same events, byte for byte, cached or not
        (a cache of 2 accounts, or of 6 events, also drops and reads accounts back in between)."""
        caches = (None, AccountCache(100), AccountCache(2), AccountCache(100, max_events=6))
        ledgers = [in_memory_ledger() for _ in caches]
        for ledger, cache in zip(ledgers, caches, strict=True):
            send = Sender(ledger, cache)
            for batch in history.batches():
                send(*batch)
        plain = streams(ledgers[0])
        assert all(streams(ledger) == plain for ledger in ledgers[1:])


def open_by_consumer(ledger: BillingLedger, cache: AccountCache) -> CommandConsumer:
    """A command consumer (no Kafka) that has processed one batch: OpenAccount acc-1."""
    consumer = CommandConsumer(ledger, None, None, CODEC, "cluster", cache)  # type: ignore[arg-type]
    key, value = command_message("OpenAccount", helpers.open_account("acc-1"))
    consumer._process_or_drop([Message(COMMANDS_TOPIC, 0, 0, key, value)])
    return consumer


class TestConsumerCache:
    """The command consumer keeps its batches' accounts in the cache it is given."""

    def test_an_empty_cache_given_is_the_one_used(self, ledger: BillingLedger) -> None:
        """Every cache starts empty, and an empty one is falsy: it must still be the consumer's
        (an `or` once swapped it for one of capacity 0, so no account was ever kept)."""
        cache = AccountCache(10)
        consumer = open_by_consumer(ledger, cache)
        assert consumer.cache is cache
        assert list(cache.take(["acc-1"])) == ["acc-1"]

    def test_each_outcome_is_logged_at_info(self) -> None:
        """The batch path still logs every command's outcome when info is on."""
        with capture_logs() as logs:
            open_by_consumer(in_memory_ledger(), AccountCache(10))
        accepted = [e for e in logs if e["event"] == "commands.accepted"]
        assert [e["command_type"] for e in accepted] == ["OpenAccount"]


class TestCacheSettings:
    """LEDGER_ACCOUNT_CACHE and LEDGER_ACCOUNT_CACHE_EVENTS as the workers read them."""

    def test_defaults(self) -> None:
        """Unset: 20,000 accounts holding at most 500,000 events in all."""
        settings = Settings.from_env({})
        assert (settings.account_cache, settings.account_cache_events) == (20_000, 500_000)

    def test_both_are_read(self) -> None:
        """Set: the worker's cache takes both bounds, 0 events meaning no bound on events."""
        env = {"LEDGER_ACCOUNT_CACHE": "7", "LEDGER_ACCOUNT_CACHE_EVENTS": "0"}
        settings = Settings.from_env(env)
        assert (settings.account_cache, settings.account_cache_events) == (7, 0)

    @pytest.mark.parametrize("raw", ["-1", "many"])
    def test_a_bad_event_bound_is_refused(self, raw: str) -> None:
        """A negative or non-numeric LEDGER_ACCOUNT_CACHE_EVENTS is a configuration error."""
        with pytest.raises(ConfigError, match="LEDGER_ACCOUNT_CACHE_EVENTS"):
            Settings.from_env({"LEDGER_ACCOUNT_CACHE_EVENTS": raw})
