"""A subscription's life after subscribing: pause and resume, cancel, reactivate.

`Lifecycle` is a part of the Account aggregate (a mixin); its events are account events,
those of plan changes and credit notes too (proration.py, which extends it, records them).
"""

from __future__ import annotations

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
from ledger.errors import RuleViolation
from ledger.postings import Posting


class Lifecycle(AccountPart):
    """Pauses, cancellations per the accepted policy, reactivation; the lifecycle's events."""

    if TYPE_CHECKING:  # provided by Account
        credit_note_ids: set[str]

        def _invoice_in_force(self, sub: Subscription, now: datetime) -> Invoice | None: ...

        def _credit_unused(
            self, command_id: str, issued_at: datetime, invoice: Invoice, reason: str
        ) -> int: ...

        def _check_crediting(
            self, invoice: Invoice, issued_at: datetime, *, field: str
        ) -> None: ...

    class PlanChanged(AccountEvent):
        """The subscription moved to another plan and price from now on."""

        subscription_id: str
        terms: Terms
        previous_plan_id: str
        previous_price_minor: int

        def apply(self, aggregate: Any) -> None:
            subscription = aggregate.subscriptions[self.subscription_id]
            subscription.terms = self.terms
            subscription.changed_at = self.timestamp

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
            aggregate.totals.credited_minor += self.amount_minor
            aggregate.credit_note_ids.add(self.credit_note_id)
            aggregate.invoices[self.invoice_id].credited_minor += self.amount_minor

    class SubscriptionPaused(AccountEvent):
        """The subscription stops being invoiced until resumed."""

        subscription_id: str

        def apply(self, aggregate: Any) -> None:
            aggregate.subscriptions[self.subscription_id].status = SubscriptionStatus.PAUSED

    class SubscriptionResumed(AccountEvent):
        """The subscription is invoiced again, in cycles counted from `anchor` (since 0.4.0 never
        before the end of the period already invoiced)."""

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
        """Invoice the subscription again, in cycles from now, or from the end of the period
        already invoiced (which is not billed twice), or from the trial's end, if later."""
        sub = self._subscription(subscription_id)
        if sub.status is not SubscriptionStatus.PAUSED:
            raise WrongStatus(
                f"subscription {subscription_id!r} is not paused", field="subscription_id"
            )
        invoiced_until = sub.period(sub.cycles_invoiced - 1)[1] if sub.cycles_invoiced else None
        anchor = max(issued_at, sub.trial_ends_at or issued_at, invoiced_until or issued_at)
        if anchor <= issued_at:
            self._check_invoicing(sub.terms.price_minor, field="subscription_id")
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
            self._check_crediting(current, issued_at, field="subscription_id")
            refund = self._credit_unused(command_id, issued_at, current, "prorated_cancellation")
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
            self._check_invoicing(sub.terms.price_minor, field="subscription_id")
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
