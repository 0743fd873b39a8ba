"""Specification of the account aggregate: opening, subscribing, first invoices and their rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ledger.account import (
    MAX_ACCOUNT_ID_LENGTH,
    Account,
    Contact,
    Invoice,
    Terms,
    account_uuid,
)
from ledger.calendar import IntervalUnit
from ledger.errors import RuleViolation
from ledger.postings import Posting, Side
from tests.unit.builders import ISSUED_AT, terms

OPEN_COMMAND_ID = "8d1b1c0e-3f4e-4a53-9a39-0e1f6a5b7c01"
SUBSCRIBE_COMMAND_ID = "8d1b1c0e-3f4e-4a53-9a39-0e1f6a5b7c02"
LATER = ISSUED_AT + timedelta(hours=1)


def opened(**overrides: Any) -> Account:
    """An EUR account opened at ISSUED_AT, with `overrides` of the open() arguments."""
    details: dict[str, Any] = {
        "command_id": OPEN_COMMAND_ID,
        "account_id": "acc-1",
        "issued_at": ISSUED_AT,
        "currency": "EUR",
        "customer_reference": "customer-1",
        "contacts": (Contact("email", "billing@example.com"),),
    }
    return Account.open(**(details | overrides))


def subscribe(account: Account, plan: Terms, *, subscription_id: str = "sub-1") -> None:
    """Subscribe `account` to `plan` one hour after it was opened."""
    account.subscribe(
        command_id=SUBSCRIBE_COMMAND_ID,
        issued_at=LATER,
        subscription_id=subscription_id,
        terms=plan,
    )


def spelled(value: object) -> str:
    """A readable test id: `trial_days=731` for a dict of overrides."""
    if isinstance(value, dict):
        return ",".join(f"{name}={setting!r}" for name, setting in value.items())
    return str(value)


@pytest.fixture(name="account")
def fixture_account() -> Account:
    """A freshly opened EUR account, its Opened event still pending."""
    return opened()


class TestOpen:
    """Opening an account records its details in one Opened event."""

    def test_the_event_store_id_is_derived_from_the_account_id(self, account: Account) -> None:
        """The same account id always maps to the same UUID, another id to another UUID."""
        assert account.id == account_uuid("acc-1") == account_uuid("acc-1")
        assert account_uuid("acc-2") != account.id
        assert opened(command_id="another").id == account.id

    def test_the_details_are_recorded(self, account: Account) -> None:
        """Currency, customer and contacts are kept; there is nothing subscribed or invoiced."""
        assert account.account_id == "acc-1"
        assert account.currency == "EUR"
        assert account.customer_reference == "customer-1"
        assert account.contacts == (Contact("email", "billing@example.com"),)
        assert account.subscriptions == {}
        assert account.invoices == {}

    def test_one_opened_event_is_stamped_with_the_commands_issued_at(
        self, account: Account
    ) -> None:
        """The event's time is business time from the command, never the clock."""
        (event,) = account.pending_events
        assert isinstance(event, Account.Opened)
        assert event.timestamp == ISSUED_AT
        assert event.command_id == OPEN_COMMAND_ID
        assert event.account_id == "acc-1"
        assert account.version == 1
        assert account.created_on == ISSUED_AT

    def test_an_account_id_of_the_maximum_length_is_accepted(self) -> None:
        """128 characters is long enough."""
        assert opened(account_id="a" * MAX_ACCOUNT_ID_LENGTH).account_id == "a" * 128

    @pytest.mark.parametrize(
        ("overrides", "code", "field"),
        [
            ({"currency": "XXX"}, "unsupported_currency", "currency"),
            ({"currency": "eur"}, "unsupported_currency", "currency"),
            ({"customer_reference": ""}, "missing_value", "customer_reference"),
            ({"customer_reference": "   "}, "missing_value", "customer_reference"),
            ({"account_id": ""}, "missing_value", "account_id"),
            ({"account_id": " \t"}, "missing_value", "account_id"),
            ({"account_id": "a" * (MAX_ACCOUNT_ID_LENGTH + 1)}, "too_long", "account_id"),
        ],
        ids=[
            "unsupported-currency",
            "lower-case-currency",
            "empty-customer-reference",
            "blank-customer-reference",
            "empty-account-id",
            "blank-account-id",
            "too-long-account-id",
        ],
    )
    def test_invalid_details_are_rejected_naming_the_rule_and_field(
        self, overrides: dict[str, Any], code: str, field: str
    ) -> None:
        """Each broken rule has a stable code and names the offending field."""
        with pytest.raises(RuleViolation) as raised:
            opened(**overrides)
        assert (raised.value.code, raised.value.field) == (code, field)


class TestSubscribeWithoutTrial:
    """Subscribing without a trial starts the subscription and invoices its first cycle at once."""

    def test_subscribed_then_invoice_issued_are_recorded(self, account: Account) -> None:
        """Two events follow the Opened event, in this order."""
        subscribe(account, terms())
        assert [type(event) for event in account.pending_events] == [
            Account.Opened,
            Account.Subscribed,
            Account.InvoiceIssued,
        ]
        assert account.version == 3

    def test_the_subscription_runs_from_issue_to_the_end_of_the_first_interval(
        self, account: Account
    ) -> None:
        """Subscribed on 31 January 2024, a monthly period ends on 29 February."""
        subscribe(account, terms())
        subscribed = account.pending_events[1]
        assert isinstance(subscribed, Account.Subscribed)
        assert subscribed.subscription_id == "sub-1"
        assert subscribed.terms == terms()
        assert subscribed.trial_ends_at is None
        assert subscribed.current_period_start == LATER
        assert subscribed.current_period_end == datetime(2024, 2, 29, 10, 30, tzinfo=UTC)

    def test_the_first_invoice_bills_the_price_for_cycle_zero(self, account: Account) -> None:
        """Invoice sub-1/1 covers the first period and is due days_until_due after issue."""
        subscribe(account, terms(price_minor=1500, days_until_due=14))
        invoice = account.pending_events[2]
        assert isinstance(invoice, Account.InvoiceIssued)
        assert invoice.invoice_id == "sub-1/1"
        assert invoice.subscription_id == "sub-1"
        assert invoice.cycle == 0
        assert (invoice.amount_minor, invoice.currency) == (1500, "EUR")
        assert invoice.period_start == LATER
        assert invoice.period_end == datetime(2024, 2, 29, 10, 30, tzinfo=UTC)
        assert invoice.due_at == LATER + timedelta(days=14)

    def test_the_invoice_debits_receivable_and_credits_revenue(self, account: Account) -> None:
        """The price moves into receivable: a balanced two-leg entry."""
        subscribe(account, terms(price_minor=1500))
        invoice = account.pending_events[2]
        assert isinstance(invoice, Account.InvoiceIssued)
        assert invoice.postings == (
            Posting("receivable", Side.DEBIT, 1500),
            Posting("revenue", Side.CREDIT, 1500),
        )

    def test_the_account_holds_the_subscription_and_its_invoice(self, account: Account) -> None:
        """The first cycle counts as invoiced, and the invoice can be looked up by id."""
        subscribe(account, terms(days_until_due=0))
        subscription = account.subscriptions["sub-1"]
        assert subscription.started_at == LATER
        assert subscription.trial_ends_at is None
        assert subscription.cycles_invoiced == 1
        assert account.invoices == {
            "sub-1/1": Invoice(
                "sub-1/1",
                "sub-1",
                1500,
                LATER,
                period_start=LATER,
                period_end=account.subscriptions["sub-1"].period(0)[1],
            )
        }

    def test_a_free_plan_is_invoiced_without_postings(self, account: Account) -> None:
        """A zero price still issues an invoice, but nothing moves in the ledger."""
        subscribe(account, terms(price_minor=0))
        invoice = account.pending_events[2]
        assert isinstance(invoice, Account.InvoiceIssued)
        assert invoice.amount_minor == 0
        assert invoice.postings == ()

    def test_every_event_carries_the_commands_time_id_and_account(self, account: Account) -> None:
        """Both events are stamped with the Subscribe command's issued_at and command_id."""
        subscribe(account, terms())
        for event in account.pending_events[1:]:
            assert isinstance(event, Account.Event)
            assert event.timestamp == LATER
            assert event.command_id == SUBSCRIBE_COMMAND_ID
            assert event.account_id == "acc-1"

    def test_a_second_subscription_is_invoiced_separately(self, account: Account) -> None:
        """Two plans on one account give two invoices, each numbered from 1."""
        subscribe(account, terms(price_minor=1500))
        subscribe(account, terms(price_minor=300, plan_id="extra-seat"), subscription_id="sub-2")
        assert sorted(account.invoices) == ["sub-1/1", "sub-2/1"]
        assert account.invoices["sub-2/1"].amount_minor == 300


class TestSubscribeWithTrial:
    """Subscribing with a trial starts the subscription but invoices nothing yet."""

    def test_no_invoice_is_issued(self, account: Account) -> None:
        """Only Subscribed is recorded; no cycle is invoiced."""
        subscribe(account, terms(trial_days=30))
        assert [type(event) for event in account.pending_events] == [
            Account.Opened,
            Account.Subscribed,
        ]
        assert account.invoices == {}
        assert account.subscriptions["sub-1"].cycles_invoiced == 0

    def test_the_current_period_is_the_trial(self, account: Account) -> None:
        """The trial ends trial_days after issue, and the current period ends with it."""
        subscribe(account, terms(trial_days=30))
        subscribed = account.pending_events[1]
        assert isinstance(subscribed, Account.Subscribed)
        assert subscribed.trial_ends_at == LATER + timedelta(days=30)
        assert subscribed.current_period_start == LATER
        assert subscribed.current_period_end == subscribed.trial_ends_at
        assert account.subscriptions["sub-1"].trial_ends_at == LATER + timedelta(days=30)

    def test_billing_cycles_are_anchored_on_the_end_of_the_trial(self, account: Account) -> None:
        """A 30-day trial from 31 January ends on 1 March; cycle 0 runs to 1 April."""
        subscribe(account, terms(trial_days=30))
        trial_end = datetime(2024, 3, 1, 10, 30, tzinfo=UTC)
        assert account.subscriptions["sub-1"].period(0) == (
            trial_end,
            datetime(2024, 4, 1, 10, 30, tzinfo=UTC),
        )


class TestSubscribeRejections:
    """A subscription that breaks a rule is rejected with its code and field, and records nothing."""

    @pytest.mark.parametrize(
        ("overrides", "code", "field"),
        [
            ({"currency": "USD"}, "currency_mismatch", "currency"),
            ({"currency": "XXX"}, "unsupported_currency", "currency"),
            ({"price_minor": -1}, "negative_amount", "price_minor"),
            ({"plan_id": ""}, "missing_value", "plan_id"),
            ({"plan_id": "  "}, "missing_value", "plan_id"),
            ({"interval_count": 0}, "out_of_range", "interval_count"),
            ({"interval_count": 1001}, "out_of_range", "interval_count"),
            ({"trial_days": -1}, "out_of_range", "trial_days"),
            ({"trial_days": 731}, "out_of_range", "trial_days"),
            ({"days_until_due": -1}, "out_of_range", "days_until_due"),
            ({"days_until_due": 366}, "out_of_range", "days_until_due"),
        ],
        ids=spelled,
    )
    def test_broken_terms_are_rejected_naming_the_rule_and_field(
        self, account: Account, overrides: dict[str, Any], code: str, field: str
    ) -> None:
        """Each broken rule has a stable code and names the offending field."""
        with pytest.raises(RuleViolation) as raised:
            subscribe(account, terms(**overrides))
        assert (raised.value.code, raised.value.field) == (code, field)

    def test_the_currency_mismatch_names_both_currencies_and_the_account(
        self, account: Account
    ) -> None:
        """The message says what to change."""
        with pytest.raises(RuleViolation) as raised:
            subscribe(account, terms(currency="USD"))
        assert "USD" in raised.value.message
        assert "EUR" in raised.value.message
        assert "'acc-1'" in raised.value.message

    @pytest.mark.parametrize("subscription_id", ["", "   "])
    def test_an_empty_subscription_id_is_rejected(
        self, account: Account, subscription_id: str
    ) -> None:
        """subscription_id must name the subscription."""
        with pytest.raises(RuleViolation) as raised:
            subscribe(account, terms(), subscription_id=subscription_id)
        assert (raised.value.code, raised.value.field) == ("missing_value", "subscription_id")

    def test_a_subscription_id_in_use_is_a_duplicate(self, account: Account) -> None:
        """The same subscription id cannot be subscribed twice on one account."""
        subscribe(account, terms())
        with pytest.raises(RuleViolation) as raised:
            subscribe(account, terms(plan_id="other-plan"))
        assert (raised.value.code, raised.value.field) == (
            "duplicate_subscription",
            "subscription_id",
        )
        assert account.subscriptions["sub-1"].terms.plan_id == "gold-monthly"

    @pytest.mark.parametrize(
        "overrides",
        [
            {"currency": "USD"},
            {"price_minor": -1},
            {"plan_id": ""},
            {"interval_count": 0},
            {"trial_days": 731},
            {"days_until_due": 366},
        ],
        ids=spelled,
    )
    def test_a_rejected_subscription_triggers_no_event(
        self, account: Account, overrides: dict[str, Any]
    ) -> None:
        """Nothing is pending, subscribed or invoiced after a rejection."""
        pending_before = list(account.pending_events)
        with pytest.raises(RuleViolation):
            subscribe(account, terms(**overrides))
        assert account.pending_events == pending_before
        assert account.version == 1
        assert account.subscriptions == {}
        assert account.invoices == {}

    def test_a_rejected_duplicate_triggers_no_event(self, account: Account) -> None:
        """The duplicate leaves the three events of the first subscription, nothing more."""
        subscribe(account, terms())
        pending_before = list(account.pending_events)
        with pytest.raises(RuleViolation):
            subscribe(account, terms())
        assert account.pending_events == pending_before

    @pytest.mark.parametrize(
        "overrides",
        [
            {"interval_count": 1},
            {"interval_count": 1000},
            {"trial_days": 730},
            {"days_until_due": 0},
            {"days_until_due": 365},
            {"interval_unit": IntervalUnit.YEAR, "interval_count": 1000},
        ],
        ids=spelled,
    )
    def test_the_limits_themselves_are_accepted(
        self, account: Account, overrides: dict[str, Any]
    ) -> None:
        """Every range is inclusive of its ends."""
        subscribe(account, terms(**overrides))
        assert "sub-1" in account.subscriptions
