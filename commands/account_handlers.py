"""The handlers of account commands that do more than hand their fields to the account.

Every other account command is passed on by the command table (table.py).
"""

from __future__ import annotations

from commands.messages import ChangePlan, OpenAccount, Subscribe
from commands.unit_of_work import UnitOfWork
from ledger.account import Account, AccountAlreadyOpen
from ledger.plan_terms import price_for_change, terms_for


def open_account(command: OpenAccount, work: UnitOfWork) -> None:
    """Open the account, unless one with this id is open already."""
    if work.account(command.account_id) is not None:
        raise AccountAlreadyOpen(
            f"account {command.account_id!r} is already open", field="account_id"
        )
    work.add_account(
        Account.open(
            command_id=command.command_id,
            account_id=command.account_id,
            issued_at=command.issued_at,
            currency=command.currency,
            customer_reference=command.customer_reference,
            contacts=command.contacts,
        )
    )


def subscribe(command: Subscribe, work: UnitOfWork) -> None:
    """Subscribe the account to a plan: the catalogue's, with what the command sets, or custom."""
    account = work.require_account(command.account_id)
    account.subscribe(
        command_id=command.command_id,
        issued_at=command.issued_at,
        subscription_id=command.subscription_id,
        terms=terms_for(command.terms, work.plan(command.terms.plan_id)),
    )


def change_plan(command: ChangePlan, work: UnitOfWork) -> None:
    """Move a subscription to another plan, prorated, at the catalogue's price unless set."""
    account = work.require_account(command.account_id)
    current = account.subscription_terms(command.subscription_id)
    price_minor, plan_version = price_for_change(
        work.plan(command.plan_id), command.plan_id, command.price_minor, current
    )
    account.change_plan(
        command_id=command.command_id,
        issued_at=command.issued_at,
        subscription_id=command.subscription_id,
        plan_id=command.plan_id,
        price_minor=price_minor,
        plan_version=plan_version,
    )
