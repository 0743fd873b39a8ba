"""What a customer sees of their account, for the specifications written from their side:
what they were billed, what they owe, what credit they hold, and the events that told them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from commands.messages import AddPaymentMethod, Command, Renegotiate
from ledger.account import Account
from ledger.application import BillingLedger
from ledger.postings import balance_of
from tests.unit.builders import account_events


def on_account(command_type: type[Command], when: datetime, /, **fields: Any) -> Any:
    """A command of `command_type` for acc-1 at `when`, with a fresh command id."""
    return command_type(command_id=str(uuid.uuid4()), account_id="acc-1", issued_at=when, **fields)


def events_named(ledger: BillingLedger, name: str) -> list[Any]:
    """The account's stored events of one type, oldest first."""
    return [e for e in account_events(ledger) if type(e).__name__ == name]


def owed(ledger: BillingLedger) -> int:
    """What the customer owes: the receivable balance of the account's postings."""
    postings = [p for e in account_events(ledger) for p in getattr(e, "postings", ())]
    return balance_of("receivable", postings)


def credit_held(ledger: BillingLedger) -> int:
    """The credit the customer holds, as the account knows it."""
    account = ledger.account("acc-1")
    assert account is not None
    return account.credit_minor


def billed(ledger: BillingLedger) -> list[tuple[str, int]]:
    """Every invoice issued to the customer, with its amount."""
    return [(e.invoice_id, e.amount_minor) for e in events_named(ledger, "InvoiceIssued")]


def the_account(ledger: BillingLedger) -> Account:
    """acc-1 as stored."""
    account = ledger.account("acc-1")
    assert account is not None
    return account


def rejection(outcome: Any) -> tuple[str, str | None] | None:
    """The (code, field) a command was refused with; None if accepted."""
    if outcome.rejection is None:
        return None
    return outcome.rejection.code, outcome.rejection.field


def renegotiation(
    when: datetime, invoice_id: str, *, installments: int = 1, **overrides: Any
) -> Renegotiate:
    """plan-1: `invoice_id` in `installments` monthly parts from `when`, with no interest or
    forgiveness unless `overrides` set them."""
    fields: dict[str, Any] = {
        "plan_id": "plan-1",
        "invoice_ids": (invoice_id,),
        "installments": installments,
        "first_due_at": when,
        "interval_days": 30,
        "interest_minor": 0,
        "forgiven_minor": 0,
    }
    return on_account(Renegotiate, when, **(fields | overrides))


def card_on_file(when: datetime) -> AddPaymentMethod:
    """card-1, a credit card made the default."""
    return on_account(
        AddPaymentMethod,
        when,
        payment_method_id="card-1",
        kind="credit_card",
        label=None,
        expires_on=None,
        make_default=True,
    )
