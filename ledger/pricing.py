"""Transparent price changes: announced with notice, applied from the first cycle after it.

`Pricing` is a part of the Account aggregate (a mixin). A price change must be announced at
least MIN_NOTICE_DAYS before it applies; the announcement is an event that carries what a
notification sender needs, and the clock applies it to the first billing cycle that starts on
or after the effective date. A plan change before then withdraws it (PriceChangeWithdrawn,
with what a notification sender needs): the announcement was about the terms the customer left.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from ledger.account_state import (
    AccountEvent,
    AccountPart,
    Contact,
    Subscription,
    SubscriptionStatus,
)
from ledger.errors import RuleViolation
from ledger.lifecycle import UnknownSubscription, WrongStatus
from ledger.money import check_amount

MIN_NOTICE_DAYS = 30


class Pricing(AccountPart):
    """Price change announcements and their application by the clock."""

    if TYPE_CHECKING:  # provided by Account
        pending_prices: dict[str, tuple[int, datetime]]

    class PriceChangeAnnounced(AccountEvent):
        """A subscription's price will change from `effective_from`; tell the customer."""

        subscription_id: str
        previous_price_minor: int
        new_price_minor: int
        currency: str
        effective_from: datetime
        template_key: str
        contacts: tuple[Contact, ...]

        def apply(self, aggregate: Any) -> None:
            aggregate.pending_prices[self.subscription_id] = (
                self.new_price_minor,
                self.effective_from,
            )

    class PriceChangeApplied(AccountEvent):
        """The announced price applies from this cycle on."""

        subscription_id: str
        previous_price_minor: int
        price_minor: int

        def apply(self, aggregate: Any) -> None:
            sub = aggregate.subscriptions[self.subscription_id]
            sub.terms = replace(sub.terms, price_minor=self.price_minor)
            aggregate.pending_prices.pop(self.subscription_id, None)

    class PriceChangeWithdrawn(AccountEvent):
        """An announced price change will not apply: the subscription left the terms it was
        announced for (`reason`: `plan_change`) before it took effect; tell the customer."""

        subscription_id: str
        plan_id: str
        withdrawn_price_minor: int
        currency: str
        effective_from: datetime
        reason: str
        template_key: str
        contacts: tuple[Contact, ...]

        def apply(self, aggregate: Any) -> None:
            aggregate.pending_prices.pop(self.subscription_id, None)

    def announce_price_change(
        self,
        *,
        command_id: str,
        issued_at: datetime,
        subscription_id: str,
        new_price_minor: int,
        effective_from: datetime,
    ) -> None:
        """Announce a new price; refused with less than MIN_NOTICE_DAYS of notice."""
        sub = self.subscriptions.get(subscription_id)
        if sub is None:
            raise UnknownSubscription(
                f"subscription {subscription_id!r} does not exist on account {self.account_id!r}",
                field="subscription_id",
            )
        if sub.status is SubscriptionStatus.CANCELLED:
            raise WrongStatus(
                f"subscription {subscription_id!r} is cancelled", field="subscription_id"
            )
        check_amount(new_price_minor, field="new_price_minor")
        earliest = issued_at + timedelta(days=MIN_NOTICE_DAYS)
        if effective_from < earliest:
            raise InsufficientNotice(
                f"a price change needs {MIN_NOTICE_DAYS} days of notice: effective_from must be "
                f"{earliest.isoformat()} or later, got {effective_from.isoformat()}",
                field="effective_from",
            )
        self._record(
            self.PriceChangeAnnounced,
            issued_at,
            command_id,
            subscription_id=subscription_id,
            previous_price_minor=sub.terms.price_minor,
            new_price_minor=new_price_minor,
            currency=self.currency,
            effective_from=effective_from,
            template_key="subscription.price_change",
            contacts=self.contacts,
        )

    def _apply_due_price(
        self, command_id: str, issued_at: datetime, sub: Subscription, period_start: datetime
    ) -> None:
        """Apply an announced price to a cycle starting on or after its effective date."""
        pending = self.pending_prices.get(sub.subscription_id)
        if pending is None or period_start < pending[1]:
            return
        self._record(
            self.PriceChangeApplied,
            issued_at,
            command_id,
            subscription_id=sub.subscription_id,
            previous_price_minor=sub.terms.price_minor,
            price_minor=pending[0],
        )

    def _withdraw_price_change(
        self, command_id: str, issued_at: datetime, sub: Subscription, plan_id: str, reason: str
    ) -> None:
        """Withdraw the price change announced for the subscription on `plan_id`, if one is
        pending."""
        pending = self.pending_prices.get(sub.subscription_id)
        if pending is None:
            return
        self._record(
            self.PriceChangeWithdrawn,
            issued_at,
            command_id,
            subscription_id=sub.subscription_id,
            plan_id=plan_id,
            withdrawn_price_minor=pending[0],
            currency=self.currency,
            effective_from=pending[1],
            reason=reason,
            template_key="subscription.price_change_withdrawn",
            contacts=self.contacts,
        )


class InsufficientNotice(RuleViolation):
    """A price change announced with less notice than the rule requires."""

    code = "insufficient_notice"
