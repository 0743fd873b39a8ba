"""The customer account aggregate: its subscriptions and invoices, and the rules that guard them."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate

from ledger.account_state import (
    AccountEvent,
    CancellationPolicy,
    Contact,
    Invoice,
    Subscription,
    Terms,
)
from ledger.adjustments import Adjustments
from ledger.bounds import Totals, check_total
from ledger.clock import Clock
from ledger.dunning import DEFAULT_POLICY, Dunning
from ledger.errors import MissingValue, OutOfRange, RuleViolation, TooLong, check_range
from ledger.feedback import CustomerFeedback
from ledger.ids import name_uuid
from ledger.lifecycle import Lifecycle
from ledger.money import CurrencyMismatch, check_amount, check_currency
from ledger.payment_methods import PaymentMethod, PaymentMethods
from ledger.postings import LedgerAccount, Posting, transfer
from ledger.pricing import Pricing
from ledger.proration import Proration, numbered_id
from ledger.receivables import Receivables
from ledger.renegotiation import Renegotiation, RenegotiationPlan

_ACCOUNT_NAMESPACE = uuid5(NAMESPACE_URL, "billing-ledger:account")
MAX_TRIAL_DAYS = 730
MAX_DAYS_UNTIL_DUE = 365


def account_uuid(account_id: str) -> UUID:
    """The event-store id of the account named `account_id` by upstream systems."""
    return name_uuid(_ACCOUNT_NAMESPACE, account_id)


__all__ = [
    "Account",
    "CancellationPolicy",
    "Contact",
    "Invoice",
    "MissingValue",
    "OutOfRange",
    "Subscription",
    "Terms",
    "TooLong",
    "check_range",
]


# Each part that declares events is a direct base: eventsourcing redefines the events of
# direct bases only as Account's own, at their stored topics `ledger.account:Account.<Event>`.
class Account(
    Pricing,
    Dunning,
    Proration,
    Lifecycle,
    Renegotiation,
    Adjustments,
    Clock,
    Receivables,
    PaymentMethods,
    CustomerFeedback,
    Aggregate,
):
    """A customer account in one currency, with its subscriptions and invoices."""

    class Opened(Aggregate.Created):
        """The account was opened."""

        command_id: str
        account_id: str
        currency: str
        customer_reference: str
        contacts: tuple[Contact, ...]

    class Event(AccountEvent):
        """Base of the account's own events after opening."""

    class Subscribed(Event):
        """The account subscribed to a plan on the recorded terms."""

        subscription_id: str
        terms: Terms
        trial_ends_at: datetime | None
        current_period_start: datetime
        current_period_end: datetime

        def apply(self, aggregate: Any) -> None:
            assert isinstance(aggregate, Account)
            aggregate.subscriptions[self.subscription_id] = Subscription(
                self.subscription_id, self.terms, self.timestamp, self.trial_ends_at, 0
            )

    class InvoiceIssued(Event):
        """An invoice for one billing cycle was issued."""

        invoice_id: str
        subscription_id: str
        cycle: int
        amount_minor: int
        currency: str
        period_start: datetime
        period_end: datetime
        due_at: datetime
        postings: tuple[Posting, ...]
        early_payment_discount_minor: int
        early_payment_deadline: datetime | None

        class_version = 2

        @staticmethod
        def upcast_v1_v2(state: dict[str, Any]) -> None:
            """Invoices stored before early-payment incentives had none."""
            state["early_payment_discount_minor"] = 0
            state["early_payment_deadline"] = None

        def apply(self, aggregate: Any) -> None:
            assert isinstance(aggregate, Account)
            aggregate.subscriptions[self.subscription_id].cycles_invoiced = self.cycle + 1
            aggregate.invoices[self.invoice_id] = Invoice(
                self.invoice_id,
                self.subscription_id,
                self.amount_minor,
                self.due_at,
                early_discount_minor=self.early_payment_discount_minor,
                early_deadline=self.early_payment_deadline,
                period_start=self.period_start,
                period_end=self.period_end,
            )
            aggregate.totals.invoiced_minor += self.amount_minor

    def __init__(
        self,
        command_id: str,
        account_id: str,
        currency: str,
        customer_reference: str,
        contacts: tuple[Contact, ...],
    ) -> None:
        self.account_id = account_id
        self.currency = currency
        self.customer_reference = customer_reference
        self.contacts = tuple(contacts)
        self.subscriptions: dict[str, Subscription] = {}
        self.invoices: dict[str, Invoice] = {}
        self.credit_minor = 0
        self.totals = Totals()
        self.payment_ids: set[str] = set()
        self.failed_charges: dict[str, int] = {}
        self.dunning_policy = DEFAULT_POLICY
        self.hardship_until: datetime | None = None
        self.dunning_marks: set[str] = set()
        self.retries: dict[str, datetime] = {}
        self.pending_prices: dict[str, tuple[int, datetime]] = {}
        self.payment_methods: dict[str, PaymentMethod] = {}
        self.default_payment_method_id: str | None = None
        self.feedback_ids: set[str] = set()
        self.renegotiations: dict[str, RenegotiationPlan] = {}
        self.credit_note_ids: set[str] = set()
        self.refund_ids: set[str] = set()

    @classmethod
    def open(
        cls,
        *,
        command_id: str,
        account_id: str,
        issued_at: datetime,
        currency: str,
        customer_reference: str,
        contacts: tuple[Contact, ...] = (),
    ) -> Account:
        """Open an account; raises RuleViolation if the details are invalid."""
        check_account_id(account_id)
        check_currency(currency)
        if not customer_reference.strip():
            raise MissingValue("customer_reference must not be empty", field="customer_reference")
        return cls._create(
            cls.Opened,
            id=account_uuid(account_id),
            timestamp=issued_at,
            command_id=command_id,
            account_id=account_id,
            currency=currency,
            customer_reference=customer_reference,
            contacts=tuple(contacts),
        )

    def subscribe(
        self, *, command_id: str, issued_at: datetime, subscription_id: str, terms: Terms
    ) -> None:
        """Subscribe to a plan; without a trial, the first cycle is invoiced at once."""
        self.check_terms(terms)
        if not subscription_id.strip():
            raise MissingValue("subscription_id must not be empty", field="subscription_id")
        if subscription_id in self.subscriptions:
            raise DuplicateSubscription(
                f"subscription {subscription_id!r} already exists on account {self.account_id!r}",
                field="subscription_id",
            )
        if subscription_id in self.renegotiations:  # their invoice ids would be the same
            raise DuplicateSubscription(
                f"{subscription_id!r} is a renegotiation plan on account {self.account_id!r}",
                field="subscription_id",
            )
        trial_ends_at = issued_at + timedelta(days=terms.trial_days) if terms.trial_days else None
        if trial_ends_at is None:
            self._check_invoicing(terms.price_minor, field="price_minor")
        first_period = Subscription(subscription_id, terms, issued_at, trial_ends_at, 0).period(0)
        self._record(
            self.Subscribed,
            issued_at,
            command_id,
            subscription_id=subscription_id,
            terms=terms,
            trial_ends_at=trial_ends_at,
            current_period_start=issued_at,
            current_period_end=trial_ends_at or first_period[1],
        )
        if trial_ends_at is None:
            self._issue_invoice(command_id, issued_at, self.subscriptions[subscription_id])

    def subscription_terms(self, subscription_id: str) -> Terms:
        """The terms subscription `subscription_id` is on now; UnknownSubscription if none."""
        return self._subscription(subscription_id).terms

    def check_terms(self, terms: Terms) -> None:
        """Raise RuleViolation unless the terms fit this account and make sense."""
        check_currency(terms.currency)
        if terms.currency != self.currency:
            raise CurrencyMismatch(
                f"the plan is priced in {terms.currency} but account {self.account_id!r} "
                f"is in {self.currency}",
                field="currency",
            )
        check_amount(terms.price_minor, field="price_minor")
        if not terms.plan_id.strip():
            raise MissingValue("plan_id must not be empty", field="plan_id")
        check_range("interval_count", terms.interval_count, 1, 1000)
        check_range("trial_days", terms.trial_days, 0, MAX_TRIAL_DAYS)
        check_range("days_until_due", terms.days_until_due, 0, MAX_DAYS_UNTIL_DUE)
        check_range("early_payment_discount_bp", terms.early_payment_discount_bp, 0, 5_000)
        check_range("early_payment_days", terms.early_payment_days, 0, MAX_DAYS_UNTIL_DUE)

    def _check_invoicing(self, amount_minor: int, *, field: str) -> None:
        """Refuse, naming `field`, invoicing that could take the invoiced total past its bound."""
        check_total("invoiced total", self.totals.invoiced_minor, amount_minor, field=field)

    def _record(
        self, event_class: type[AccountEvent], issued_at: datetime, command_id: str, **fields: Any
    ) -> None:
        self.trigger_event(
            event_class,
            timestamp=issued_at,
            command_id=command_id,
            account_id=self.account_id,
            **fields,
        )

    def _issue_invoice(
        self,
        command_id: str,
        issued_at: datetime,
        sub: Subscription,
        proration: tuple[str, int] | None = None,
    ) -> None:
        """Invoice the subscription's next cycle, `<subscription>/<k>` (k = cycle + 1, the
        invoice number); or, given (name, amount), a prorated part of the current cycle from
        now to its end, `<subscription>/<k>/<name>-<n>` after the invoice of that cycle, with
        the first number n not taken. Either is issued at or after its period start."""
        if proration is None:
            cycle = sub.cycles_invoiced
            period_start, period_end = sub.period(cycle)
            self._apply_due_price(command_id, issued_at, sub, period_start)
            invoice_id, amount_minor = f"{sub.subscription_id}/{cycle + 1}", sub.terms.price_minor
        else:
            cycle = sub.cycles_invoiced - 1
            period_start, period_end = issued_at, sub.period(cycle)[1]
            invoice_id = numbered_id(
                f"{sub.subscription_id}/{cycle + 1}/{proration[0]}", self.invoices
            )
            amount_minor = proration[1]
        self._record(
            self.InvoiceIssued,
            issued_at,
            command_id,
            invoice_id=invoice_id,
            subscription_id=sub.subscription_id,
            cycle=cycle,
            amount_minor=amount_minor,
            currency=self.currency,
            period_start=period_start,
            period_end=period_end,
            # Due, and discounted, counted from the issue, which is the period start when the
            # clock is on time: an invoice a late tick issues is never born overdue.
            due_at=issued_at + timedelta(days=sub.terms.days_until_due),
            postings=transfer(LedgerAccount.RECEIVABLE, LedgerAccount.REVENUE, amount_minor),
            early_payment_discount_minor=amount_minor
            * sub.terms.early_payment_discount_bp
            // 10_000,
            early_payment_deadline=(
                issued_at + timedelta(days=sub.terms.early_payment_days)
                if sub.terms.early_payment_discount_bp
                else None
            ),
        )
        self._apply_credit(command_id, issued_at, invoice_id)


MAX_ACCOUNT_ID_LENGTH = 128


def check_account_id(account_id: str) -> str:
    """Answer `account_id` if it is a usable account id."""
    if not account_id.strip():
        raise MissingValue("account_id must not be empty", field="account_id")
    if len(account_id) > MAX_ACCOUNT_ID_LENGTH:
        raise TooLong(
            f"account_id must be at most {MAX_ACCOUNT_ID_LENGTH} characters, got {len(account_id)}",
            field="account_id",
        )
    return account_id


class DuplicateSubscription(RuleViolation):
    """The subscription id is already used on the account."""

    code = "duplicate_subscription"


class UnknownAccount(RuleViolation):
    """The command names an account that was never opened."""

    code = "unknown_account"


class AccountAlreadyOpen(RuleViolation):
    """An account with this id is already open."""

    code = "account_already_open"
