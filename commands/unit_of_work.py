"""The aggregates one batch of commands loads and changes, saved together in one transaction."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate

from commands.account_cache import AccountCache
from commands.messages import AccountCommand, ChangePlan, Command, PlanCommand, Subscribe
from ledger.account import Account, UnknownAccount
from ledger.application import BillingLedger, Wanted, event_id
from ledger.plans import Plan, UnknownPlan
from ledger.receipts import CommandReceipt


class UnitOfWork:
    """Loads each aggregate once per batch and collects every one it changes."""

    def __init__(self, ledger: BillingLedger, cache: AccountCache | None = None) -> None:
        self.ledger = ledger
        self.cache = cache
        self._accounts: dict[str, Account | None] = {}
        self._receipts: dict[str, CommandReceipt | None] = {}
        self._plans: dict[str, Plan | None] = {}
        self._changed: dict[UUID, Aggregate] = {}
        self._position: dict[UUID, int] = {}
        self._mark = Mark()

    def preload(self, commands: Iterable[Command]) -> None:
        """Read the batch's accounts, plans and receipts at once, instead of one at a time."""
        wanted = Wanted()
        for command in commands:
            wanted.command_ids.add(command.command_id)
            if isinstance(command, AccountCommand):
                wanted.account_ids.add(command.account_id)
            if isinstance(command, PlanCommand | ChangePlan):
                wanted.plan_ids.add(command.plan_id)
            elif isinstance(command, Subscribe):
                wanted.plan_ids.add(command.terms.plan_id)
        wanted.account_ids -= self._accounts.keys()
        if self.cache is not None:
            self._accounts.update(self.cache.take(wanted.account_ids))
            wanted.account_ids -= self._accounts.keys()
        wanted.command_ids -= self._receipts.keys()
        wanted.plan_ids -= self._plans.keys()
        found = self.ledger.read_many(wanted)
        self._accounts.update({a: found.accounts.get(a) for a in wanted.account_ids})
        self._receipts.update({c: found.receipts.get(c) for c in wanted.command_ids})
        self._plans.update({p: found.plans.get(p) for p in wanted.plan_ids})

    def account(self, account_id: str) -> Account | None:
        """The account, as changed so far in this batch; None if it does not exist."""
        if account_id not in self._accounts:
            cached = self.cache.take([account_id]) if self.cache is not None else {}
            self._accounts[account_id] = cached.get(account_id) or self.ledger.account(account_id)
        return self._accounts[account_id]

    def require_account(self, account_id: str) -> Account:
        """The account, or UnknownAccount if it was never opened."""
        account = self.account(account_id)
        if account is None:
            raise UnknownAccount(f"account {account_id!r} was never opened", field="account_id")
        self._change(account)
        return account

    def plan(self, plan_id: str) -> Plan | None:
        """The catalogue plan, as changed so far in this batch; None if it was never defined.

        A plan defined by a command on another partition is seen once that command was saved.
        """
        if plan_id not in self._plans:
            self._plans[plan_id] = self.ledger.plan(plan_id)
        return self._plans[plan_id]

    def require_plan(self, plan_id: str) -> Plan:
        """The plan, to be changed; UnknownPlan if it was never defined."""
        plan = self.plan(plan_id)
        if plan is None:
            raise UnknownPlan(
                f"plan {plan_id!r} is not in the catalogue; define it with DefinePlan",
                field="plan_id",
            )
        self._change(plan)
        return plan

    def receipt(self, command_id: str) -> CommandReceipt | None:
        """The command's receipt, if the command was processed before (even in this batch)."""
        if command_id not in self._receipts:
            self._receipts[command_id] = self.ledger.receipt(command_id)
        receipt = self._receipts[command_id]
        if receipt is not None:
            self._change(receipt)
        return receipt

    def add_account(self, account: Account) -> None:
        """Keep a newly opened account."""
        self._accounts[account.account_id] = account
        self._change(account, created=True)

    def add_plan(self, plan: Plan) -> None:
        """Keep a newly defined plan."""
        self._plans[plan.plan_id] = plan
        self._change(plan, created=True)

    def add_receipt(self, receipt: CommandReceipt) -> None:
        """Keep a new receipt."""
        self._receipts[receipt.command_id] = receipt
        self._change(receipt, created=True)

    def mark(self) -> Mark:
        """A point to collect the events triggered after (one command's)."""
        self._mark = Mark()
        return self._mark

    def events_since(self, mark: Mark) -> list[Any]:
        """The events triggered since `mark`, in the order of the aggregates' first change."""
        return [
            event
            for key in sorted(mark.pending_before, key=self._position.__getitem__)
            for event in self._changed[key].pending_events[mark.pending_before[key] :]
        ]

    def event_ids_since(self, mark: Mark) -> tuple[str, ...]:
        """The ids of the events triggered since `mark`."""
        return tuple(
            event_id(event.originator_id, event.originator_version)
            for event in self.events_since(mark)
        )

    def _change(self, aggregate: Aggregate, *, created: bool = False) -> None:
        """Keep `aggregate` to be saved, noting its pending events before the command changes it
        (none, for one the command `created`).

        Only the aggregates handed out since the mark are looked at for a command's events:
        looking at every aggregate of the batch for every command made a batch quadratic.
        """
        if aggregate.id not in self._changed:
            self._position[aggregate.id] = len(self._changed)
            self._changed[aggregate.id] = aggregate
        before = 0 if created else len(aggregate.pending_events)
        self._mark.pending_before.setdefault(aggregate.id, before)

    @property
    def accounts(self) -> list[Account]:
        """Every existing account this unit of work holds, changed or only read."""
        return [account for account in self._accounts.values() if account is not None]

    @property
    def changed(self) -> list[Aggregate]:
        """Every aggregate with pending events, to be saved together."""
        return [agg for agg in self._changed.values() if agg.pending_events]


@dataclass
class Mark:
    """How many pending events each aggregate handed out since the mark had before it."""

    pending_before: dict[UUID, int] = field(default_factory=dict)
