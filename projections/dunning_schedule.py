"""The next dunning action of an account, from the delinquency read model's dates and its policy.

The ledger decides dunning steps when its clock advances; this tells what the policy has
scheduled next for the open invoices, so reports can show it: a reminder (before or after
the due date), a charge retry, or the final action, whichever falls first. A hardship pause
holds the steps after the due date back until it ends, as the ledger does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class Policy:
    """The account's dunning policy, as the delinquency row keeps it."""

    reminder_days_before_due: tuple[int, ...]
    reminder_days_after_due: tuple[int, ...]
    grace_days: int
    final_action: str  # NONE, SUSPEND or CANCEL
    hardship_until: datetime | None = None


@dataclass(frozen=True)
class OpenInvoice:
    """What the schedule needs of one open invoice (a delinquency_invoices row)."""

    invoice_id: str
    due_at: datetime
    dunning_stage: int
    next_retry_at: datetime | None
    final_action_at: datetime | None


@dataclass(frozen=True)
class Action:
    """A dunning step the policy has scheduled: reminder, retry or final_action."""

    kind: str
    at: datetime
    invoice_id: str


def next_action(policy: Policy, invoices: list[OpenInvoice], as_of: datetime) -> Action | None:
    """The earliest step scheduled after `as_of` (or already due) for the open invoices."""
    steps = [step for invoice in invoices for step in _steps(policy, invoice, as_of)]
    return min(steps, key=lambda a: (a.at, a.invoice_id, a.kind), default=None)


def _steps(policy: Policy, invoice: OpenInvoice, as_of: datetime) -> list[Action]:
    before = [
        invoice.due_at - timedelta(days=d)
        for d in policy.reminder_days_before_due
        if invoice.due_at - timedelta(days=d) > as_of
    ]
    steps = [Action("reminder", at, invoice.invoice_id) for at in before]
    after: list[Action] = []
    stages = policy.reminder_days_after_due
    if invoice.dunning_stage < len(stages):
        at = invoice.due_at + timedelta(days=stages[invoice.dunning_stage])
        after.append(Action("reminder", at, invoice.invoice_id))
    if invoice.next_retry_at is not None:
        after.append(
            Action("retry", max(invoice.next_retry_at, invoice.due_at), invoice.invoice_id)
        )
    if policy.final_action != "NONE" and invoice.final_action_at is None:
        at = invoice.due_at + timedelta(days=policy.grace_days)
        after.append(Action("final_action", at, invoice.invoice_id))
    pause_end = policy.hardship_until
    if pause_end is not None and pause_end > as_of:
        after = [Action(a.kind, max(a.at, pause_end), a.invoice_id) for a in after]
    return steps + after
