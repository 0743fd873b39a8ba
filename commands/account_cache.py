"""Accounts kept in memory between batches, so a batch does not read them back from the store.

Only the worker that owns an account's partition changes it, so the account as this worker
last saved it is the account in the store. A unit of work takes the accounts it needs out of
the cache and they come back only once their batch is saved: an account of a batch that
failed, or was dropped, is read from the store again. The consumer empties the cache when
its partitions change. Should a stale account slip through all the same (a worker that lost
its partitions without hearing of it), its next event collides with the stored one of the
same version, the save fails and the batch is read again: a stale copy can cost a retry,
never a wrong event.

An account in memory grows with its history (its invoices, its payments' ids), by about
240 bytes per event over some 2 kB (bench/README.md, "memory.py"), so a bound on the number
of accounts alone lets the cache grow as long as the accounts live: the events they hold in
all are bounded too.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable

from ledger.account import Account


class AccountCache:
    """The last saved state of up to `capacity` accounts holding up to `max_events` events in
    all (None: any number), least recently used dropped first."""

    def __init__(self, capacity: int, max_events: int | None = None) -> None:
        self.capacity = capacity
        self.max_events = max_events
        self._accounts: OrderedDict[str, Account] = OrderedDict()
        self._events = 0

    @property
    def events(self) -> int:
        """The events of the cached accounts, in all (their versions summed)."""
        return self._events

    def take(self, account_ids: Iterable[str]) -> dict[str, Account]:
        """Remove and answer the cached ones among `account_ids`."""
        taken = {}
        for account_id in account_ids:
            account = self._pop(account_id)
            if account is not None:
                taken[account_id] = account
        return taken

    def keep(self, accounts: Iterable[Account]) -> None:
        """Keep `accounts`, just saved (no pending events), as the newest."""
        for account in accounts:
            assert not account.pending_events, "only saved accounts are kept"
            self._pop(account.account_id)
            self._accounts[account.account_id] = account
            self._events += account.version
        while self._accounts and self._over():
            self._pop(next(iter(self._accounts)))

    def clear(self) -> None:
        """Forget every account: the partitions this worker owns have changed."""
        self._accounts.clear()
        self._events = 0

    def _over(self) -> bool:
        too_many_events = self.max_events is not None and self._events > self.max_events
        return len(self._accounts) > self.capacity or too_many_events

    def _pop(self, account_id: str) -> Account | None:
        account = self._accounts.pop(account_id, None)
        if account is not None:
            self._events -= account.version
        return account

    def __len__(self) -> int:
        return len(self._accounts)
