"""One customer's life in the book: signing up, the clock's ticks, and reacting to the ledger.

A `Life` sends its customer's commands in business-time order and reads what the (shadow)
ledger answered: an invoice issued sets off a charge, a retry due sets off another, a reminder
may bring a late payer to pay, a final action leads to settling up or to a write-off.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any

from demo import changes, paying
from demo.agenda import Agenda
from demo.catalogue import CURRENCY
from demo.clock import next_month, next_tick
from demo.customers import Customer
from demo.desk import Desk
from demo.records import dunning_policy_record, subscribe_record
from demo.shadow import Answer
from ledger.account import Account
from ledger.account_state import Subscription

EARLY_PAYMENT_DISCOUNT_BP = 200
EARLY_PAYMENT_DAYS = 7


class Life:
    """One customer of the book, and everything they and their payment system send."""

    def __init__(self, customer: Customer, desk: Desk, seed: int) -> None:
        self.customer = customer
        self.desk = desk
        self.rng = random.Random(f"billing-ledger-demo:{seed}:{customer.account_id}")
        self.agenda = Agenda()
        self.now: datetime | None = None
        self.last_tick: datetime | None = None
        # Numbers of the ids this customer's upstream system chooses: payments, feedback, ...
        self.numbers: Counter[str] = Counter()
        self.method_kind = customer.method.kind
        self.method_id = "pm-1"
        self.card_expires_on: date | None = None
        self.subscription_id = "sub-1"
        # A struggling customer back on track after a renegotiation pays like a prompt one.
        self.recovered = False
        self.last_hardship_at: datetime | None = None
        self.price_rise_notified_at: datetime | None = None

    @property
    def account_id(self) -> str:
        """The customer's account id."""
        return self.customer.account_id

    @property
    def account(self) -> Account:
        """The customer's account as the ledger holds it."""
        account = self.desk.shadow.account(self.account_id)
        assert account is not None, f"{self.account_id} was never opened"
        return account

    @property
    def subscription(self) -> Subscription:
        """The customer's subscription as the ledger holds it."""
        return self.account.subscriptions[self.subscription_id]

    def new_id(self, stem: str) -> str:
        """The next id `<stem>-<n>` of this customer's upstream system."""
        self.numbers[stem] += 1
        return f"{stem}-{self.numbers[stem]}"

    def send(self, command_type: str, at: datetime, **fields: Any) -> Answer:
        """Send one of the customer's commands (never before their last) and react to it."""
        at = max(at, self.now) if self.now is not None else at
        self.now = at
        answer = self.desk.send(command_type, at, account_id=self.account_id, **fields)
        for event in answer.events:
            self._react(type(event).__name__, event, at)
        return answer

    def plan(self, at: datetime, action: Callable[[Life, datetime], None]) -> None:
        """Have `action` run for this customer at `at`."""
        self.agenda.plan(at, lambda when: action(self, when))

    def next_time(self) -> datetime | None:
        """When this customer next does something, or the clock next has work for them."""
        times = [self.agenda.next_time(), next_tick(self.account, self.last_tick)]
        return min((t for t in times if t is not None), default=None)

    def run_until(self, end: datetime) -> None:
        """Do everything due before `end`, in time order, the clock first at equal times."""
        while (at := self.next_time()) is not None and at < end:
            if at == next_tick(self.account, self.last_tick):
                self.last_tick = max(at, self.now or at)
                self.send("AdvanceClock", at)
            else:
                when, action = self.agenda.pop()
                action(when)

    def sign_up(self, at: datetime, plan_id: str) -> None:
        """Open the account, put a payment method on file, set the dunning policy, subscribe."""
        number = self.customer.number
        contacts = [{"channel": "email", "address": f"billing+{number:05d}@example.com"}]
        if self.rng.random() < 0.3:
            contacts.append({"channel": "sms", "address": f"+3161{number:07d}"})
        self.send(
            "OpenAccount",
            at,
            currency=CURRENCY,
            customer_reference=f"crm-{number:05d}",
            contacts=contacts,
        )
        paying.add_method(self, at, self.method_id, self.method_kind, make_default=False)
        final_action = self.customer.final_action
        grace_days = 30 if final_action == "CANCEL" else 21
        self.send("SetDunningPolicy", at, **dunning_policy_record(final_action, grace_days))
        offer = self.customer.early_payment_offer
        self.send(
            "Subscribe",
            at,
            **subscribe_record(
                subscription_id=self.subscription_id,
                plan_id=plan_id,
                cancellation_policy=self.customer.cancellation_policy,
                early_payment_discount_bp=EARLY_PAYMENT_DISCOUNT_BP if offer else 0,
                early_payment_days=EARLY_PAYMENT_DAYS if offer else 0,
            ),
        )
        self.plan(next_month(at), changes.review)
        trial_ends_at = self.subscription.trial_ends_at
        if trial_ends_at is not None:
            self.plan(trial_ends_at - timedelta(days=3), changes.trial_decision)

    def _react(self, event_name: str, event: Any, at: datetime) -> None:
        reaction = REACTIONS.get(event_name)
        if reaction is not None:
            reaction(self, event, at)


REACTIONS: dict[str, Callable[[Life, Any, datetime], None]] = {
    "InvoiceIssued": paying.on_invoice_issued,
    "ChargeRetryDue": paying.on_retry_due,
    "PaymentReminderDue": paying.on_reminder,
    "DunningFinalAction": paying.on_final_action,
    "DebtRenegotiated": paying.on_renegotiated,
    "RenegotiationDefaulted": paying.on_renegotiation_defaulted,
    "SubscriptionCancelled": changes.on_cancelled,
    "CancellationScheduled": changes.on_cancellation_scheduled,
}
