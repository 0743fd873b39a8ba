"""The aggregates one batch of commands loads and changes, saved together in one transaction."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate

from ledger.account import Account, UnknownAccount
from ledger.application import BillingLedger, event_id
from ledger.receipts import CommandReceipt


class UnitOfWork:
    """Loads each aggregate once per batch and collects every one it changes."""

    def __init__(self, ledger: BillingLedger) -> None:
        self.ledger = ledger
        self._accounts: dict[str, Account | None] = {}
        self._receipts: dict[str, CommandReceipt | None] = {}
        self._changed: dict[UUID, Aggregate] = {}

    def preload(self, account_ids: Iterable[str], command_ids: Iterable[str]) -> None:
        """Read the batch's accounts and receipts at once, instead of one at a time."""
        account_ids = {a for a in account_ids if a not in self._accounts}
        command_ids = {c for c in command_ids if c not in self._receipts}
        accounts, receipts = self.ledger.accounts_and_receipts(account_ids, command_ids)
        self._accounts.update({a: accounts.get(a) for a in account_ids})
        self._receipts.update({c: receipts.get(c) for c in command_ids})

    def account(self, account_id: str) -> Account | None:
        """The account, as changed so far in this batch; None if it does not exist."""
        if account_id not in self._accounts:
            self._accounts[account_id] = self.ledger.account(account_id)
        return self._accounts[account_id]

    def require_account(self, account_id: str) -> Account:
        """The account, or UnknownAccount if it was never opened."""
        account = self.account(account_id)
        if account is None:
            raise UnknownAccount(f"account {account_id!r} was never opened", field="account_id")
        self._changed[account.id] = account
        return account

    def receipt(self, command_id: str) -> CommandReceipt | None:
        """The command's receipt, if the command was processed before (even in this batch)."""
        if command_id not in self._receipts:
            self._receipts[command_id] = self.ledger.receipt(command_id)
        receipt = self._receipts[command_id]
        if receipt is not None:
            self._changed[receipt.id] = receipt
        return receipt

    def add_account(self, account: Account) -> None:
        """Keep a newly opened account."""
        self._accounts[account.account_id] = account
        self._changed[account.id] = account

    def add_receipt(self, receipt: CommandReceipt) -> None:
        """Keep a new receipt."""
        self._receipts[receipt.command_id] = receipt
        self._changed[receipt.id] = receipt

    def mark(self) -> dict[UUID, int]:
        """How many pending events each changed aggregate has now."""
        return {key: len(agg.pending_events) for key, agg in self._changed.items()}

    def events_since(self, mark: dict[UUID, int]) -> list[Any]:
        """The events triggered since `mark`, in the order of the aggregates' first change."""
        return [
            event
            for key, aggregate in self._changed.items()
            for event in aggregate.pending_events[mark.get(key, 0) :]
        ]

    def event_ids_since(self, mark: dict[UUID, int]) -> tuple[str, ...]:
        """The ids of the events triggered since `mark`."""
        return tuple(
            event_id(event.originator_id, event.originator_version)
            for event in self.events_since(mark)
        )

    @property
    def changed(self) -> list[Aggregate]:
        """Every aggregate with pending events, to be saved together."""
        return [agg for agg in self._changed.values() if agg.pending_events]
