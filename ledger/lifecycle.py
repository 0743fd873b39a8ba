"""A subscription's life after subscribing: change plan, pause and resume, cancel, reactivate.

`Lifecycle` is a part of the Account aggregate (a mixin); its events are account events.
Prorated amounts are `amount * unused / period` in whole seconds, rounded down to the minor
unit: a customer is never refunded, nor charged, more than the exact share.

A plan change or a prorated cancellation credits the unused share of the current period at
the price in force (before a change, the old price), against the invoice that charged the
rest of the period: the cycle's own invoice, or after a plan change that change's proration
invoice (which charged from the change to the period's end). So each day of a period is
charged at the price in force that day and credited back at most once. No credit note gives
back more than its invoice has left to credit (its amount less earlier credit notes and
write-offs): the credit is cut to that, down to nothing for a written-off invoice.

Documents a command derives are numbered, never named after the command id (UUIDv7 ids sent
within a minute share their first characters): a plan change's invoice is
`<subscription>/<cycle>/change-<n>` and a derived credit note `<invoice>/credit-<n>`, n the
first number not taken. Older histories keep their `change-<8 hex>` and `credit-<8 hex>` ids;
no rule reads a meaning into an id.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ledger.account_state import (
    AccountEvent,
    AccountPart,
    CancellationPolicy,
    Invoice,
    Subscription,
    SubscriptionStatus,
    Terms,
)
from ledger.errors import MissingValue, RuleViolation
from ledger.money import check_amount
from ledger.postings import LedgerAccount, Posting, transfer


class Lifecycle(AccountPart):
    """Plan changes with proration, pauses, cancellations per the accepted policy, reactivation."""

    if TYPE_CHECKING:  # provided by Account
        credit_note_ids: set[str]

    class PlanChanged(AccountEvent):
        """The subscription moved to another plan and price from now on."""

        subscription_id: str
        terms: Terms
        previous_plan_id: str
        previous_price_minor: int

        def apply(self, aggregate: Any) -> None:
            aggregate.subscriptions[self.subscription_id].terms = self.terms

    class CreditNoteIssued(AccountEvent):
        """Revenue given back to the customer as account credit."""

        credit_note_id: str
        invoice_id: str
        amount_minor: int
        currency: str
        reason: str
        postings: tuple[Posting, ...]

        def apply(self, aggregate: Any) -> None:
            aggregate.credit_minor += self.amount_minor
            aggregate.credit_note_ids.add(self.credit_note_id)
            aggregate.invoices[self.invoice_id].credited_minor += self.amount_minor

    class SubscriptionPaused(AccountEvent):
        """The subscription stops being invoiced until resumed."""

        subscription_id: str

        def apply(self, aggregate: Any) -> None:
            aggregate.subscriptions[self.subscription_id].status = SubscriptionStatus.PAUSED

    class SubscriptionResumed(AccountEvent):
        """The subscription is invoiced again, in cycles counted from `anchor`."""

        subscription_id: str
        anchor: datetime

        def apply(self, aggregate: Any) -> None:
            _restart(aggregate.subscriptions[self.subscription_id], self.anchor)

    class CancellationScheduled(AccountEvent):
        """The subscription ends at `cancel_at`, the end of the period paid for."""

        subscription_id: str
        cancel_at: datetime

        def apply(self, aggregate: Any) -> None:
            aggregate.subscriptions[self.subscription_id].cancel_at = self.cancel_at

    class SubscriptionCancelled(AccountEvent):
        """The subscription ended; `refund_minor` of its last period went back as credit."""

        subscription_id: str
        effective_at: datetime
        refund_minor: int

        def apply(self, aggregate: Any) -> None:
            sub = aggregate.subscriptions[self.subscription_id]
            sub.status = SubscriptionStatus.CANCELLED
            sub.cancel_at = None

    class SubscriptionReactivated(AccountEvent):
        """A cancellation was withdrawn, or a cancelled subscription started again at `anchor`."""

        subscription_id: str
        anchor: datetime | None

        def apply(self, aggregate: Any) -> None:
            sub = aggregate.subscriptions[self.subscription_id]
            sub.cancel_at = None
            if self.anchor is not None:
                _restart(sub, self.anchor)

    def change_plan(
        self,
        *,
        command_id: str,
        issued_at: datetime,
        subscription_id: str,
        plan_id: str,
        price_minor: int,
        plan_version: int | None = None,
    ) -> None:
        """Move to another plan now, crediting the unused share and charging the new one.

        `plan_version` is the catalogue plan's version the price came from (None: custom).
        """
        sub = self._active(subscription_id)
        check_amount(price_minor, field="price_minor")
        if not plan_id.strip():
            raise MissingValue("plan_id must not be empty", field="plan_id")
        old = sub.terms
        current = self._invoice_in_force(sub, issued_at)
        self._record(
            self.PlanChanged,
            issued_at,
            command_id,
            subscription_id=subscription_id,
            terms=replace(old, plan_id=plan_id, price_minor=price_minor, plan_version=plan_version),
            previous_plan_id=old.plan_id,
            previous_price_minor=old.price_minor,
        )
        if current is None:
            return  # in a trial, or not invoiced yet: the next invoice has the new price
        start, end = sub.period(sub.cycles_invoiced - 1)
        self._credit_note(
            command_id,
            issued_at,
            current,
            "plan_change",
            prorated(old.price_minor, start, end, issued_at),
        )
        charge = prorated(price_minor, start, end, issued_at)
        if charge:
            self._issue_invoice(command_id, issued_at, sub, ("change", charge))

    def pause_subscription(
        self, *, command_id: str, issued_at: datetime, subscription_id: str
    ) -> None:
        """Stop invoicing the subscription; invoices already issued stay due."""
        self._active(subscription_id)
        self._record(
            self.SubscriptionPaused, issued_at, command_id, subscription_id=subscription_id
        )

    def resume_subscription(
        self, *, command_id: str, issued_at: datetime, subscription_id: str
    ) -> None:
        """Invoice the subscription again, a new cycle starting now (or when its trial ends)."""
        sub = self._subscription(subscription_id)
        if sub.status is not SubscriptionStatus.PAUSED:
            raise WrongStatus(
                f"subscription {subscription_id!r} is not paused", field="subscription_id"
            )
        anchor = max(issued_at, sub.trial_ends_at or issued_at)
        self._record(
            self.SubscriptionResumed,
            issued_at,
            command_id,
            subscription_id=subscription_id,
            anchor=anchor,
        )
        if anchor <= issued_at:
            self._issue_invoice(command_id, issued_at, sub)

    def cancel_subscription(
        self, *, command_id: str, issued_at: datetime, subscription_id: str
    ) -> None:
        """Cancel as the customer accepted: at period end, or now with or without a refund."""
        sub = self._subscription(subscription_id)
        if sub.status is SubscriptionStatus.CANCELLED:
            raise WrongStatus(
                f"subscription {subscription_id!r} is already cancelled", field="subscription_id"
            )
        if sub.cancel_at is not None:
            raise WrongStatus(
                f"subscription {subscription_id!r} is already cancelled as of "
                f"{sub.cancel_at.isoformat()}",
                field="subscription_id",
            )
        policy = sub.terms.cancellation_policy
        current = self._invoice_in_force(sub, issued_at)
        if policy is CancellationPolicy.AT_PERIOD_END and sub.status is SubscriptionStatus.ACTIVE:
            end = sub.period(sub.cycles_invoiced - 1)[1] if current else None
            cancel_at = max(issued_at, end or sub.trial_ends_at or issued_at)
            if cancel_at > issued_at:
                self._record(
                    self.CancellationScheduled,
                    issued_at,
                    command_id,
                    subscription_id=subscription_id,
                    cancel_at=cancel_at,
                )
                return
        refund = 0
        if policy is CancellationPolicy.IMMEDIATELY_WITH_PRORATED_REFUND and current is not None:
            start, end = sub.period(sub.cycles_invoiced - 1)
            refund = self._credit_note(
                command_id,
                issued_at,
                current,
                "prorated_cancellation",
                prorated(sub.terms.price_minor, start, end, issued_at),
            )
        self._record(
            self.SubscriptionCancelled,
            issued_at,
            command_id,
            subscription_id=subscription_id,
            effective_at=issued_at,
            refund_minor=refund,
        )

    def reactivate_subscription(
        self, *, command_id: str, issued_at: datetime, subscription_id: str
    ) -> None:
        """Withdraw a scheduled cancellation, or start a cancelled subscription again now."""
        sub = self._subscription(subscription_id)
        if sub.status is SubscriptionStatus.CANCELLED:
            self._record(
                self.SubscriptionReactivated,
                issued_at,
                command_id,
                subscription_id=subscription_id,
                anchor=issued_at,
            )
            self._issue_invoice(command_id, issued_at, sub)
        elif sub.cancel_at is not None:
            self._record(
                self.SubscriptionReactivated,
                issued_at,
                command_id,
                subscription_id=subscription_id,
                anchor=None,
            )
        else:
            raise WrongStatus(
                f"subscription {subscription_id!r} is not cancelled", field="subscription_id"
            )

    def _complete_cancellations(self, command_id: str, issued_at: datetime) -> None:
        for sub in self.subscriptions.values():
            if sub.cancel_at is not None and sub.cancel_at <= issued_at:
                self._record(
                    self.SubscriptionCancelled,
                    issued_at,
                    command_id,
                    subscription_id=sub.subscription_id,
                    effective_at=sub.cancel_at,
                    refund_minor=0,
                )

    def _credit_note(
        self,
        command_id: str,
        issued_at: datetime,
        invoice: Invoice,
        reason: str,
        amount: int,
        credit_note_id: str | None = None,
    ) -> int:
        """Give `amount` of the invoice's revenue back as credit, which settles the invoice if
        it is open; unless the sender chose an id, it is the invoice's next `credit-<n>`.

        At most what the invoice has left to credit is given back; answers what was."""
        amount = min(amount, creditable_minor(invoice))
        if amount <= 0:
            return 0
        self._record(
            self.CreditNoteIssued,
            issued_at,
            command_id,
            credit_note_id=credit_note_id
            or numbered_id(f"{invoice.invoice_id}/credit", self.credit_note_ids),
            invoice_id=invoice.invoice_id,
            amount_minor=amount,
            currency=self.currency,
            reason=reason,
            postings=transfer(LedgerAccount.REVENUE, LedgerAccount.CUSTOMER_CREDIT, amount),
        )
        self._apply_credit(command_id, issued_at, invoice.invoice_id)
        return amount

    def _invoice_in_force(self, sub: Subscription, now: datetime) -> Invoice | None:
        """The invoice that charged the rest of the period `now` falls in, if that cycle was
        invoiced: the last plan change's proration invoice, else the cycle's own invoice."""
        if sub.cycles_invoiced == 0:
            return None
        start, end = sub.period(sub.cycles_invoiced - 1)
        if not start <= now < end:
            return None
        # Invoices are kept in the order they were issued, on replay too, and the last one of
        # a subscription is of its last cycle invoiced: the cycle's own, or a later proration.
        charged_by = [i for i in self.invoices.values() if i.subscription_id == sub.subscription_id]
        return charged_by[-1] if charged_by else None

    def _active(self, subscription_id: str) -> Subscription:
        sub = self._subscription(subscription_id)
        if sub.status is not SubscriptionStatus.ACTIVE:
            raise WrongStatus(
                f"subscription {subscription_id!r} is {sub.status.value.lower()}",
                field="subscription_id",
            )
        return sub

    def _subscription(self, subscription_id: str) -> Subscription:
        sub = self.subscriptions.get(subscription_id)
        if sub is None:
            raise UnknownSubscription(
                f"subscription {subscription_id!r} does not exist on account {self.account_id!r}",
                field="subscription_id",
            )
        return sub


def prorated(amount_minor: int, start: datetime, end: datetime, now: datetime) -> int:
    """The share of `amount_minor` for the part of [start, end) after `now`, rounded down."""
    total = int((end - start).total_seconds())
    unused = max(0, min(total, int((end - now).total_seconds())))
    return amount_minor * unused // total if total > 0 else 0


def numbered_id(stem: str, taken: Collection[str]) -> str:
    """`<stem>-<n>` with the smallest n from 1 that is not `taken`."""
    number = 1
    while f"{stem}-{number}" in taken:
        number += 1
    return f"{stem}-{number}"


def creditable_minor(invoice: Invoice) -> int:
    """What credit notes may still give back of an invoice: its amount less earlier credit
    notes and write-offs (a written-off share was never paid)."""
    return max(0, invoice.amount_minor - invoice.credited_minor - invoice.written_off_minor)


def _restart(sub: Subscription, anchor: datetime) -> None:
    sub.status = SubscriptionStatus.ACTIVE
    sub.anchor = anchor
    sub.cycle_base = sub.cycles_invoiced


class UnknownSubscription(RuleViolation):
    """The command names a subscription the account does not have."""

    code = "unknown_subscription"


class WrongStatus(RuleViolation):
    """The subscription is not in a state where the command applies."""

    code = "subscription_status"
