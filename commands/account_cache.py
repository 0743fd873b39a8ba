"""Accounts kept in memory between batches, so a batch does not read them back from the store.

Only the worker that owns an account's partition changes it, so the account as this worker
last saved it is the account in the store. A unit of work takes the accounts it needs out of
the cache and they come back only once their batch is saved: an account of a batch that
failed, or was dropped, is read from the store again. The consumer empties the cache when
its partitions change. Should a stale account slip through all the same (a worker that lost
its partitions without hearing of it), its next event collides with the stored one of the
same version, the save fails and the batch is read again: a stale copy can cost a retry,
never a wrong event.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable

from ledger.account import Account


class AccountCache:
    """The last saved state of up to `capacity` accounts, least recently used dropped first."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._accounts: OrderedDict[str, Account] = OrderedDict()

    def take(self, account_ids: Iterable[str]) -> dict[str, Account]:
        """Remove and answer the cached ones among `account_ids`."""
        taken = {}
        for account_id in account_ids:
            account = self._accounts.pop(account_id, None)
            if account is not None:
                taken[account_id] = account
        return taken

    def keep(self, accounts: Iterable[Account]) -> None:
        """Keep `accounts`, just saved (no pending events), as the newest."""
        for account in accounts:
            assert not account.pending_events, "only saved accounts are kept"
            self._accounts[account.account_id] = account
            self._accounts.move_to_end(account.account_id)
        while len(self._accounts) > self.capacity:
            self._accounts.popitem(last=False)

    def clear(self) -> None:
        """Forget every account: the partitions this worker owns have changed."""
        self._accounts.clear()

    def __len__(self) -> int:
        return len(self._accounts)
