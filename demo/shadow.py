"""The ledger as the book's upstream system sees it: the ledger's own domain, in memory.

The simulator decides what a customer does next from what the ledger did with the customer's
earlier commands: which invoices it issued (and their ids, amounts and due dates), what is
outstanding, which retries and reminders fell due. Rather than copy the ledger's rules (invoice
numbering, proration, credit application, early-payment discounts, dunning), the shadow runs
every command of the book through the same mapping and handlers as the command consumer, on an
in-memory event store, and answers with the events. The domain is deterministic, so the
pipeline makes the same events from the same commands, as long as each account's commands
keep their order and catalogue commands are handled before the account commands after them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from commands.handlers import Delivery, process
from commands.mapping import content_digest
from commands.messages import Command
from commands.table import command_from_record
from commands.unit_of_work import UnitOfWork
from demo.records import BookCommand
from ledger.account import Account
from ledger.application import BillingLedger
from ledger.receipts import Source

SHADOW_TOPIC = "demo.shadow"


@dataclass(frozen=True)
class Answer:
    """What the ledger did with one command: the rejection's code, or the events."""

    rejection_code: str | None
    events: tuple[Any, ...]

    @property
    def accepted(self) -> bool:
        """Whether the ledger accepted the command."""
        return self.rejection_code is None


class _BookWork(UnitOfWork):
    """A unit of work that lasts the whole book, handed one command at a time.

    Preloading reads a batch's aggregates at once; it compares the batch's ids with all the
    unit holds, which over a whole book would grow with every command. Its getters load what
    is missing anyway, so the book's unit skips it.
    """

    def preload(self, commands: Iterable[Command]) -> None:
        """Nothing: each aggregate is loaded when first asked for."""


class Shadow:
    """An in-memory ledger that answers each command of the book as the real one would."""

    def __init__(self) -> None:
        self.ledger = BillingLedger(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
        # One unit of work for the whole book: aggregates stay in memory, nothing is saved.
        self.work = _BookWork(self.ledger)
        self.offset = 0

    def send(self, command: BookCommand) -> Answer:
        """Handle `command` and answer with what it did."""
        account_id = command.record.get("account_id")
        before = self._pending(account_id)
        delivery = Delivery(
            command_from_record(command.type, command.record),
            command.type,
            content_digest(command.type, command.record),
            Source(SHADOW_TOPIC, 0, self.offset),
        )
        self.offset += 1
        (outcome,) = process(self.work, [delivery], frozenset())
        if outcome.rejection is not None:
            return Answer(outcome.rejection.code, ())
        account = self.account(account_id) if account_id else None
        events = tuple(account.pending_events[before:]) if account is not None else ()
        return Answer(None, events)

    def account(self, account_id: str) -> Account | None:
        """The account as the ledger holds it now, if it was opened."""
        return self.work.account(account_id)

    def _pending(self, account_id: str | None) -> int:
        account = self.account(account_id) if account_id else None
        return len(account.pending_events) if account is not None else 0
