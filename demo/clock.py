"""When the book's clock ticks for an account: only at the times the ledger has work to do.

A real billing system would advance every account daily; the book sends AdvanceClock only at
the times that matter (a billing cycle begins, a cancellation is due, an invoice reaches a
reminder or dunning stage, a charge retry is due, an installment's grace or a hardship pause
ends), so a year of 1,000 customers stays a few tens of thousands of commands. A time that
turns out to hold nothing is harmless: repeating or skipping ahead adds nothing the ledger
would not do on a later tick anyway.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

from ledger.account import Account
from ledger.account_state import SubscriptionStatus
from ledger.calendar import IntervalUnit, period_boundary
from ledger.renegotiation import INSTALLMENT_GRACE_DAYS

# A moment after a boundary the ledger checks with "strictly after" (due dates, graces).
JUST_AFTER = timedelta(minutes=1)


def next_tick(account: Account, after: datetime | None) -> datetime | None:
    """The first time after `after` at which the clock has something to do for `account`."""
    times = [t for t in _tick_times(account) if after is None or t > after]
    return min(times, default=None)


def _tick_times(account: Account) -> Iterator[datetime]:
    for sub in account.subscriptions.values():
        if sub.status is SubscriptionStatus.ACTIVE:
            start = sub.period(sub.cycles_invoiced)[0]
            if sub.cancel_at is None or start < sub.cancel_at:
                yield start
        if sub.cancel_at is not None:
            yield sub.cancel_at
    yield from _dunning_times(account)
    yield from account.retries.values()
    if account.hardship_until is not None:
        yield account.hardship_until + JUST_AFTER


def _dunning_times(account: Account) -> Iterator[datetime]:
    policy = account.dunning_policy
    installments = {i for plan in account.renegotiations.values() for i in plan.installment_ids}
    for invoice in account.invoices.values():
        if invoice.outstanding_minor <= 0:
            continue
        due = invoice.due_at
        yield from (due - timedelta(days=d) for d in policy.reminder_days_before_due)
        yield from (due + timedelta(days=d) for d in policy.reminder_days_after_due)
        if policy.grace_days:
            yield due + timedelta(days=policy.grace_days)
        if invoice.invoice_id in installments:  # the grace runs from a hardship pause's end too
            grace_from = max(due, account.hardship_until or due)
            yield grace_from + timedelta(days=INSTALLMENT_GRACE_DAYS) + JUST_AFTER


def next_month(at: datetime) -> datetime:
    """The same time a month later (a month-end day clamped)."""
    return period_boundary(at, IntervalUnit.MONTH, 1, 1)
