"""A realistic command mix for benchmarks: the commands of many accounts, interleaved.

Each account opens, may set a dunning policy, subscribes, may change plan, has charges that
fail, payments, clock ticks that invoice the next months, cancellations; a few commands break
a rule or are sent again. Catalogue plans are defined first (`plans`).
"""

from __future__ import annotations

import random
from itertools import zip_longest
from typing import Any

from tests.helpers import (
    advance_clock,
    cancel_subscription,
    command_message,
    define_plan,
    fail_charge,
    head,
    open_account,
    record_payment,
    set_dunning_policy,
    subscribe,
)

Command = tuple[str, dict[str, Any]]
TARGET_PLAN = "pro-monthly"  # the catalogue plan accounts change to


def plans() -> list[Command]:
    """The catalogue the mix's plan changes need, to be defined before it."""
    return [("DefinePlan", define_plan(TARGET_PLAN, name="Pro", price_minor=1999))]


def account_commands(account: str, rng: random.Random) -> list[Command]:
    """One account's commands in business-time order."""
    commands: list[Command] = [("OpenAccount", open_account(account))]
    if rng.random() < 0.3:
        commands.append(("SetDunningPolicy", set_dunning_policy(account)))
    commands.append(("Subscribe", subscribe(account, price_minor=rng.randint(100, 9_999))))
    if rng.random() < 0.05:
        commands.append(("Subscribe", subscribe(account, price_minor=-5)))  # rejected
    if rng.random() < 0.15:
        change = head(account, days=10) | {"subscription_id": "sub-1", "plan_id": TARGET_PLAN}
        commands.append(("ChangePlan", change | {"price_minor": None}))
    if rng.random() < 0.2:
        commands.append(("FailCharge", fail_charge(account, "sub-1/1")))
    if rng.random() < 0.6:
        amount = rng.choice((500, 999, 5_000))  # partial, maybe exact, maybe overpaid
        commands.append(("RecordPayment", record_payment(account, amount_minor=amount)))
    commands.append(("AdvanceClock", advance_clock(account, rng.choice((20, 45)))))
    if rng.random() < 0.1:
        commands.append(("CancelSubscription", cancel_subscription(account, days=50)))
    if rng.random() < 0.05:
        commands.append(rng.choice(commands[-3:]))  # the same command sent again
    return commands


def month(account: str, number: int, rng: random.Random) -> list[Command]:
    """A later month of an account: the clock invoices it, the customer pays (mostly)."""
    days = 45 + 30 * number
    commands: list[Command] = [("AdvanceClock", advance_clock(account, days))]
    if rng.random() < 0.8:
        payment = record_payment(account, amount_minor=rng.choice((999, 1999, 5_000)))
        commands.append(
            (
                "RecordPayment",
                payment | {"issued_at": advance_clock(account, days + 2)["issued_at"]},
            )
        )
    return commands


def workload(commands: int, accounts: int, seed: int = 1, prefix: str = "acc") -> list[Command]:
    """`commands` commands of `accounts` accounts, each account's in order, accounts interleaved.

    Accounts get later months until there are enough; the mix is cut at `commands`.
    """
    rng = random.Random(seed)
    names = [f"{prefix}-{number}" for number in range(accounts)]
    scripts = [account_commands(name, rng) for name in names]
    months = 0
    while sum(map(len, scripts)) < commands:
        months += 1
        for name, script in zip(names, scripts, strict=True):
            script.extend(month(name, months, rng))
    interleaved = [c for step in zip_longest(*scripts) for c in step if c is not None]
    return interleaved[:commands]


def encoded(commands: list[Command]) -> list[tuple[bytes, bytes]]:
    """Each command's (key, value) as it travels on billing.commands."""
    return [command_message(kind, record) for kind, record in commands]
