"""Commands for the unit specifications, and a sender that delivers them the way the consumer does."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from commands.account_cache import AccountCache
from commands.handlers import Delivery, Outcome, process
from commands.mapping import content_digest
from commands.messages import (
    AdvanceClock,
    Command,
    DefinePlan,
    FailCharge,
    OpenAccount,
    RecordPayment,
    Subscribe,
)
from commands.unit_of_work import UnitOfWork
from ledger.account import Account, CancellationPolicy, Contact, Terms, account_uuid
from ledger.application import BillingLedger
from ledger.calendar import IntervalUnit
from ledger.plan_terms import TermsAsked
from ledger.receipts import Source
from ledger.receivables import ChargeFailureReason

# Whole milliseconds, as every issued_at that arrives through Avro (timestamp-millis) is.
ISSUED_AT = datetime(2024, 1, 31, 9, 30, tzinfo=UTC)
COMMANDS_TOPIC = "billing.commands"


def in_memory_ledger() -> BillingLedger:
    """A fresh ledger whose event store lives in memory."""
    return BillingLedger(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})


def new_command_id() -> str:
    """A fresh, valid command_id."""
    return str(uuid.uuid4())


def terms(**overrides: Any) -> Terms:
    """Monthly terms at 15.00 EUR without a trial, due in 14 days, with `overrides`."""
    base = Terms(
        plan_id="gold-monthly",
        price_minor=1500,
        currency="EUR",
        interval_unit=IntervalUnit.MONTH,
        interval_count=1,
        trial_days=0,
        days_until_due=14,
        cancellation_policy=CancellationPolicy.AT_PERIOD_END,
    )
    return dataclasses.replace(base, **overrides)


def open_account(
    account_id: str = "acc-1",
    *,
    command_id: str | None = None,
    issued_at: datetime = ISSUED_AT,
    currency: str = "EUR",
    customer_reference: str = "customer-1",
    contacts: tuple[Contact, ...] = (Contact("email", "billing@example.com"),),
) -> OpenAccount:
    """An OpenAccount command, with a fresh command_id unless one is given."""
    return OpenAccount(
        command_id=command_id or new_command_id(),
        account_id=account_id,
        issued_at=issued_at,
        currency=currency,
        customer_reference=customer_reference,
        contacts=contacts,
    )


def subscribe(
    account_id: str = "acc-1",
    *,
    command_id: str | None = None,
    issued_at: datetime = ISSUED_AT,
    subscription_id: str = "sub-1",
    **term_overrides: Any,
) -> Subscribe:
    """A Subscribe command on `terms(**term_overrides)`, with a fresh command_id unless given."""
    return Subscribe(
        command_id=command_id or new_command_id(),
        account_id=account_id,
        issued_at=issued_at,
        subscription_id=subscription_id,
        terms=TermsAsked.custom(terms(**term_overrides)),
    )


def define_plan(
    plan_id: str = "gold-monthly",
    *,
    command_id: str | None = None,
    issued_at: datetime = ISSUED_AT,
    name: str = "Gold",
    price_minor: int = 1500,
    currency: str = "EUR",
    interval_unit: IntervalUnit = IntervalUnit.MONTH,
    interval_count: int = 1,
    trial_days: int = 0,
) -> DefinePlan:
    """A DefinePlan command: by default 15.00 EUR a month without a trial."""
    return DefinePlan(
        command_id=command_id or new_command_id(),
        plan_id=plan_id,
        issued_at=issued_at,
        name=name,
        price_minor=price_minor,
        currency=currency,
        interval_unit=interval_unit,
        interval_count=interval_count,
        trial_days=trial_days,
    )


def subscribe_to_plan(
    account_id: str = "acc-1",
    *,
    plan_id: str = "gold-monthly",
    command_id: str | None = None,
    issued_at: datetime = ISSUED_AT,
    subscription_id: str = "sub-1",
    **asked: Any,
) -> Subscribe:
    """A Subscribe to catalogue plan `plan_id` that sets only what `asked` gives."""
    terms = TermsAsked(
        plan_id=plan_id,
        price_minor=None,
        currency=None,
        interval_unit=None,
        interval_count=None,
        trial_days=None,
        days_until_due=14,
        cancellation_policy=CancellationPolicy.AT_PERIOD_END,
    )
    return Subscribe(
        command_id=command_id or new_command_id(),
        account_id=account_id,
        issued_at=issued_at,
        subscription_id=subscription_id,
        terms=dataclasses.replace(terms, **asked),
    )


def advance_clock(
    account_id: str = "acc-1", *, issued_at: datetime, command_id: str | None = None
) -> AdvanceClock:
    """An AdvanceClock command to `issued_at`, with a fresh command_id unless one is given."""
    return AdvanceClock(
        command_id=command_id or new_command_id(), account_id=account_id, issued_at=issued_at
    )


def record_payment(
    account_id: str = "acc-1",
    *,
    amount_minor: int,
    invoice_id: str | None = None,
    payment_id: str | None = None,
    command_id: str | None = None,
    issued_at: datetime = ISSUED_AT,
    currency: str = "EUR",
    payment_method_kind: str = "credit_card",
) -> RecordPayment:
    """A RecordPayment command by credit card in EUR, with fresh command and payment ids."""
    return RecordPayment(
        command_id=command_id or new_command_id(),
        account_id=account_id,
        issued_at=issued_at,
        payment_id=payment_id or f"pay-{uuid.uuid4()}",
        amount_minor=amount_minor,
        currency=currency,
        payment_method_kind=payment_method_kind,
        invoice_id=invoice_id,
    )


def fail_charge(
    account_id: str = "acc-1",
    *,
    invoice_id: str,
    reason: ChargeFailureReason = ChargeFailureReason.INSUFFICIENT_FUNDS,
    command_id: str | None = None,
    issued_at: datetime = ISSUED_AT,
    payment_method_kind: str = "credit_card",
) -> FailCharge:
    """A FailCharge command for `invoice_id`, by default a card with insufficient funds."""
    return FailCharge(
        command_id=command_id or new_command_id(),
        account_id=account_id,
        issued_at=issued_at,
        invoice_id=invoice_id,
        payment_method_kind=payment_method_kind,
        reason=reason,
    )


def account_events(ledger: BillingLedger, account_id: str = "acc-1") -> list[Any]:
    """Every stored event of the account, oldest first (none if it was never opened)."""
    return list(ledger.repository.event_store.get(account_uuid(account_id)))


def digest_of(command: Command) -> str:
    """The content digest of a command: equal for equal content, different otherwise."""
    return content_digest(type(command).__name__, dataclasses.asdict(command))


class Sender:
    """Delivers batches of commands to a ledger as the consumer does: process, then one save."""

    def __init__(self, ledger: BillingLedger, cache: AccountCache | None = None) -> None:
        self.ledger = ledger
        self.cache = cache
        self.next_offset = 0
        # The account objects the command methods last changed, by account id, as saved.
        self.live_accounts: dict[str, Account] = {}

    def deliveries(self, commands: Iterable[Command]) -> list[Delivery]:
        """The commands as deliveries read from consecutive offsets of one partition."""
        batch = []
        for command in commands:
            source = Source(COMMANDS_TOPIC, 0, self.next_offset)
            self.next_offset += 1
            batch.append(Delivery(command, type(command).__name__, digest_of(command), source))
        return batch

    def __call__(self, *commands: Command, poisoned: frozenset[str] = frozenset()) -> list[Outcome]:
        """Process `commands` as one batch and save every aggregate it changed."""
        work = UnitOfWork(self.ledger, self.cache)
        outcomes = process(work, self.deliveries(commands), poisoned)
        changed = work.changed
        self.ledger.save(*changed)
        if self.cache is not None:
            self.cache.keep(work.accounts)
        self.live_accounts |= {a.account_id: a for a in changed if isinstance(a, Account)}
        return outcomes
