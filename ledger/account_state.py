"""The account's state objects, and the base of the events recorded on an account."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from eventsourcing.domain import Aggregate

from ledger.calendar import IntervalUnit, period_boundary

if TYPE_CHECKING:
    from ledger.bounds import Totals


class AccountEvent(Aggregate.Event):
    """Base of an account's events after opening: each names its command and account."""

    command_id: str
    account_id: str


class CancellationPolicy(StrEnum):
    """What cancelling does, as accepted by the customer on subscribing."""

    AT_PERIOD_END = "AT_PERIOD_END"
    IMMEDIATELY_WITH_PRORATED_REFUND = "IMMEDIATELY_WITH_PRORATED_REFUND"
    IMMEDIATELY_WITHOUT_REFUND = "IMMEDIATELY_WITHOUT_REFUND"


@dataclass(frozen=True)
class Contact:
    """A channel and address the customer can be notified on."""

    channel: str
    address: str


@dataclass(frozen=True)
class Terms:
    """The terms a customer accepted on subscribing to a plan."""

    plan_id: str
    price_minor: int
    currency: str
    interval_unit: IntervalUnit
    interval_count: int
    trial_days: int
    days_until_due: int
    cancellation_policy: CancellationPolicy
    # An early-payment incentive: this share (in basis points, 1/100 of a percent) of an
    # invoice is forgiven if the rest is paid within this many days of the invoice's period
    # start. 0 basis points: none.
    early_payment_discount_bp: int = 0
    early_payment_days: int = 0
    # The catalogue plan version the price and interval came from; None for a custom plan.
    plan_version: int | None = None


class SubscriptionStatus(StrEnum):
    """Where a subscription is in its life."""

    ACTIVE = "ACTIVE"
    PAUSED = "PAUSED"
    CANCELLED = "CANCELLED"


@dataclass
class Subscription:
    """The account's view of one subscription.

    Cycles are counted from the anchor: the start (or the trial's end), or the last resume or
    reactivation, when `cycle_base` cycles had been invoiced already.
    """

    subscription_id: str
    terms: Terms
    started_at: datetime
    trial_ends_at: datetime | None
    cycles_invoiced: int
    status: SubscriptionStatus = SubscriptionStatus.ACTIVE
    cancel_at: datetime | None = None
    anchor: datetime | None = None
    cycle_base: int = 0
    # When the plan last changed: an invoice that charged from before then no longer charges
    # the rest of its period (the change credited its unused share).
    changed_at: datetime | None = None

    def period(self, cycle: int) -> tuple[datetime, datetime]:
        """Start and end of billing cycle `cycle` (counted over the subscription's life)."""
        anchor = self.anchor or self.trial_ends_at or self.started_at
        unit, count = self.terms.interval_unit, self.terms.interval_count
        steps = cycle - self.cycle_base
        return period_boundary(anchor, unit, count, steps), period_boundary(
            anchor, unit, count, steps + 1
        )

    @property
    def invoices_itself(self) -> bool:
        """Whether the clock invoices its cycles: active and not in a trial."""
        return self.status is SubscriptionStatus.ACTIVE


@dataclass
class Invoice:
    """The account's view of one invoice."""

    invoice_id: str
    subscription_id: str
    amount_minor: int
    due_at: datetime
    paid_minor: int = 0
    overdue: bool = False
    early_discount_minor: int = 0
    early_deadline: datetime | None = None
    # The renegotiation plan that took over what was outstanding, if any.
    renegotiated_into: str | None = None
    # Revenue given back against the invoice by credit notes (as account credit).
    credited_minor: int = 0
    # What was given up on: no longer owed, never paid.
    written_off_minor: int = 0
    # The early-payment discount granted (part of paid_minor, but never paid).
    discounted_minor: int = 0
    # What a renegotiation plan forgave of what it took over from this invoice.
    forgiven_minor: int = 0
    # The period the invoice charged for; None for an installment of a renegotiation plan.
    period_start: datetime | None = None
    period_end: datetime | None = None

    def discount_if_settled_at(self, when: datetime) -> int:
        """The early-payment discount an invoice settled at `when` gets (0 when none)."""
        if self.early_deadline is None or when > self.early_deadline:
            return 0
        return min(self.early_discount_minor, self.outstanding_minor)

    def payable_at(self, when: datetime) -> int:
        """What settles the invoice at `when`: what it has outstanding less the early-payment
        discount it would then get."""
        return self.outstanding_minor - self.discount_if_settled_at(when)

    def charged_at(self, when: datetime) -> int:
        """What the customer is charged for the invoice, as it stands at `when`: its amount
        less the early-payment discount granted (or still to be had at `when`) and what a
        renegotiation forgave."""
        discount = self.discounted_minor + self.discount_if_settled_at(when)
        return self.amount_minor - discount - self.forgiven_minor

    def creditable_at(self, when: datetime) -> int:
        """What credit notes may still give back at `when`: what the customer is charged,
        less earlier credit notes and write-offs (a written-off share was never paid)."""
        return max(0, self.charged_at(when) - self.credited_minor - self.written_off_minor)

    @property
    def outstanding_minor(self) -> int:
        """What is still to be paid; nothing once renegotiated (the plan's installments owe it)."""
        if self.renegotiated_into is not None:
            return 0
        return self.amount_minor - self.paid_minor - self.written_off_minor


class AccountPart:
    """Base of the Account aggregate's parts (mixins): what every part may use of the account.

    The declarations exist for the type checker only; Account provides them at run time.
    """

    if TYPE_CHECKING:
        account_id: str
        currency: str
        contacts: tuple[Contact, ...]
        subscriptions: dict[str, Subscription]
        invoices: dict[str, Invoice]
        credit_minor: int
        totals: Totals

        def _record(
            self,
            event_class: type[AccountEvent],
            issued_at: datetime,
            command_id: str,
            **fields: Any,
        ) -> None: ...

        def _issue_invoice(
            self,
            command_id: str,
            issued_at: datetime,
            sub: Subscription,
            proration: tuple[str, int] | None = None,
        ) -> None: ...

        def _check_invoicing(self, amount_minor: int, *, field: str) -> None: ...

        def _apply_credit(self, command_id: str, issued_at: datetime, invoice_id: str) -> None: ...

        def _settle_with_credit(
            self, command_id: str, issued_at: datetime, first: str | None = None
        ) -> None: ...
