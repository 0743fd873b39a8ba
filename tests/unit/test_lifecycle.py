"""Specification of a subscription's life: plan changes, pauses, cancellations and reactivation."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from commands.messages import (
    CancelSubscription,
    ChangePlan,
    PauseSubscription,
    ReactivateSubscription,
    ResumeSubscription,
)
from ledger.account_state import CancellationPolicy, SubscriptionStatus
from ledger.application import BillingLedger
from ledger.lifecycle import prorated
from ledger.postings import balance_of
from tests.unit.builders import (
    Sender,
    account_events,
    advance_clock,
    open_account,
    record_payment,
    subscribe,
)

START = datetime(2024, 1, 1, tzinfo=UTC)  # January: a 31-day first period
DAY = timedelta(days=1)


def on_subscription(kind: type, when: datetime, **fields: object) -> object:
    """A lifecycle command for sub-1 of acc-1."""
    return kind(str(uuid.uuid4()), "acc-1", when, subscription_id="sub-1", **fields)


def event_names(ledger: BillingLedger) -> list[str]:
    return [type(e).__name__ for e in account_events(ledger)]


def receivable(ledger: BillingLedger) -> int:
    postings = [p for e in account_events(ledger) for p in getattr(e, "postings", ())]
    return balance_of("receivable", postings)


@pytest.fixture(name="subscribed")
def fixture_subscribed(send: Sender) -> Sender:
    """acc-1 subscribed to 31.00 EUR monthly on 1 January, refunded pro rata on cancelling."""
    send(
        open_account(issued_at=START),
        subscribe(
            issued_at=START,
            price_minor=3100,
            cancellation_policy=CancellationPolicy.IMMEDIATELY_WITH_PRORATED_REFUND,
        ),
    )
    return send


class TestProration:
    """Prorated amounts are the exact share, rounded down."""

    def test_the_unused_share_rounds_down(self) -> None:
        """10 of 31 days of 10.00 is 3.2258...: 322."""
        assert prorated(1000, START, START + 31 * DAY, START + 21 * DAY) == 322

    def test_nothing_before_or_after_the_period(self) -> None:
        """All of it at the start, nothing at the end or later."""
        assert prorated(1000, START, START + 31 * DAY, START) == 1000
        assert prorated(1000, START, START + 31 * DAY, START + 40 * DAY) == 0


class TestChangePlan:
    """Changing plan credits the unused share at the old price and charges it at the new one."""

    def test_upgrade_mid_period(self, ledger: BillingLedger, subscribed: Sender) -> None:
        """On day 10 of 31: credit 21/31 of 31.00, charge 21/31 of 62.00, later cycles at 62.00."""
        (outcome,) = subscribed(
            on_subscription(ChangePlan, START + 10 * DAY, plan_id="gold", price_minor=6200)
        )
        assert outcome.rejection is None
        account = ledger.account("acc-1")
        assert account is not None
        proration = [i for i in account.invoices.values() if "/change-" in i.invoice_id]
        assert [i.amount_minor for i in proration] == [4200]  # 6200 * 21 / 31
        assert account.credit_minor == 0  # the 2100 credit settled the open invoices
        assert receivable(ledger) == 3100 + 4200 - 2100
        subscribed(advance_clock(issued_at=START + 31 * DAY))
        later = ledger.account("acc-1")
        assert later is not None and later.invoices["sub-1/2"].amount_minor == 6200

    def test_a_paused_subscription_cannot_change_plan(self, subscribed: Sender) -> None:
        """subscription_status on subscription_id."""
        subscribed(on_subscription(PauseSubscription, START + DAY))
        (outcome,) = subscribed(
            on_subscription(ChangePlan, START + 2 * DAY, plan_id="gold", price_minor=6200)
        )
        assert outcome.rejection is not None
        assert (outcome.rejection.code, outcome.rejection.field) == (
            "subscription_status",
            "subscription_id",
        )


class TestPauseAndResume:
    """A paused subscription is not invoiced; resuming starts a new cycle at once."""

    def test_no_invoice_while_paused_and_a_new_cycle_on_resume(
        self, ledger: BillingLedger, subscribed: Sender
    ) -> None:
        """Paused from day 5 to day 70: no February invoice; one on resume, anchored there."""
        subscribed(on_subscription(PauseSubscription, START + 5 * DAY))
        subscribed(advance_clock(issued_at=START + 60 * DAY))
        account = ledger.account("acc-1")
        assert account is not None and set(account.invoices) == {"sub-1/1"}
        subscribed(on_subscription(ResumeSubscription, START + 70 * DAY))
        account = ledger.account("acc-1")
        assert account is not None
        assert account.invoices["sub-1/2"].due_at == START + 70 * DAY + 14 * DAY
        assert account.subscriptions["sub-1"].period(1)[0] == START + 70 * DAY

    def test_resuming_an_active_subscription_is_rejected(self, subscribed: Sender) -> None:
        """subscription_status: it is not paused."""
        (outcome,) = subscribed(on_subscription(ResumeSubscription, START + DAY))
        assert outcome.rejection is not None and outcome.rejection.code == "subscription_status"


class TestCancel:
    """Cancelling follows the policy the customer accepted."""

    def test_prorated_refund_becomes_credit_on_the_open_invoice(
        self, ledger: BillingLedger, subscribed: Sender
    ) -> None:
        """Cancelled on day 10 of 31: 21/31 of 31.00 credited, settling part of the invoice."""
        subscribed(on_subscription(CancelSubscription, START + 10 * DAY))
        account = ledger.account("acc-1")
        assert account is not None
        assert account.subscriptions["sub-1"].status is SubscriptionStatus.CANCELLED
        assert account.invoices["sub-1/1"].outstanding_minor == 3100 - 2100
        assert receivable(ledger) == 1000
        subscribed(advance_clock(issued_at=START + 90 * DAY))
        assert set(ledger.account("acc-1").invoices) == {"sub-1/1"}  # type: ignore[union-attr]

    def test_at_period_end_is_scheduled_and_completed_by_the_clock(
        self, ledger: BillingLedger, send: Sender
    ) -> None:
        """No refund; the clock cancels at the period's end and issues no further invoice."""
        send(open_account(issued_at=START), subscribe(issued_at=START, price_minor=3100))
        send(on_subscription(CancelSubscription, START + 10 * DAY))
        assert "CancellationScheduled" in event_names(ledger)
        send(advance_clock(issued_at=START + 45 * DAY))
        account = ledger.account("acc-1")
        assert account is not None
        assert set(account.invoices) == {"sub-1/1"}
        (cancelled,) = [
            e for e in account_events(ledger) if type(e).__name__ == "SubscriptionCancelled"
        ]
        assert cancelled.effective_at == START + 31 * DAY
        assert cancelled.refund_minor == 0

    def test_immediately_without_refund(self, ledger: BillingLedger, send: Sender) -> None:
        """Cancelled now, the invoice stays due in full."""
        send(
            open_account(issued_at=START),
            subscribe(
                issued_at=START,
                price_minor=3100,
                cancellation_policy=CancellationPolicy.IMMEDIATELY_WITHOUT_REFUND,
            ),
        )
        send(on_subscription(CancelSubscription, START + 10 * DAY))
        assert receivable(ledger) == 3100
        assert "CreditNoteIssued" not in event_names(ledger)

    def test_cancelling_twice_is_rejected(self, subscribed: Sender) -> None:
        """subscription_status the second time."""
        subscribed(on_subscription(CancelSubscription, START + DAY))
        (outcome,) = subscribed(on_subscription(CancelSubscription, START + 2 * DAY))
        assert outcome.rejection is not None and outcome.rejection.code == "subscription_status"

    def test_an_unknown_subscription_is_rejected(self, send: Sender) -> None:
        """unknown_subscription on subscription_id."""
        send(open_account(issued_at=START))
        (outcome,) = send(on_subscription(CancelSubscription, START))
        assert outcome.rejection is not None
        assert (outcome.rejection.code, outcome.rejection.field) == (
            "unknown_subscription",
            "subscription_id",
        )


class TestReactivate:
    """Reactivation withdraws a scheduled cancellation or restarts a cancelled subscription."""

    def test_withdrawing_a_scheduled_cancellation(
        self, ledger: BillingLedger, send: Sender
    ) -> None:
        """The clock then goes on invoicing as before."""
        send(open_account(issued_at=START), subscribe(issued_at=START, price_minor=3100))
        send(on_subscription(CancelSubscription, START + 10 * DAY))
        send(on_subscription(ReactivateSubscription, START + 11 * DAY))
        send(advance_clock(issued_at=START + 31 * DAY))
        assert "sub-1/2" in ledger.account("acc-1").invoices  # type: ignore[union-attr]

    def test_restarting_a_cancelled_subscription_invoices_a_new_cycle(
        self, ledger: BillingLedger, subscribed: Sender
    ) -> None:
        """A new cycle starts at the reactivation and is invoiced at once."""
        subscribed(on_subscription(CancelSubscription, START + 10 * DAY))
        subscribed(on_subscription(ReactivateSubscription, START + 50 * DAY))
        account = ledger.account("acc-1")
        assert account is not None
        assert account.subscriptions["sub-1"].status is SubscriptionStatus.ACTIVE
        assert account.invoices["sub-1/2"].amount_minor == 3100

    def test_reactivating_an_active_subscription_is_rejected(self, subscribed: Sender) -> None:
        """subscription_status: nothing to reactivate."""
        (outcome,) = subscribed(on_subscription(ReactivateSubscription, START + DAY))
        assert outcome.rejection is not None and outcome.rejection.code == "subscription_status"


class TestMoneyStaysBalanced:
    """Every lifecycle step keeps receivable equal to what invoices still owe."""

    def test_receivable_equals_outstanding_after_a_busy_month(
        self, ledger: BillingLedger, subscribed: Sender
    ) -> None:
        """Change plan, pay, cancel with refund: receivable matches outstanding invoices."""
        subscribed(on_subscription(ChangePlan, START + 5 * DAY, plan_id="gold", price_minor=6200))
        subscribed(record_payment(amount_minor=2000, issued_at=START + 6 * DAY))
        subscribed(on_subscription(CancelSubscription, START + 20 * DAY))
        account = ledger.account("acc-1")
        assert account is not None
        outstanding = sum(i.outstanding_minor for i in account.invoices.values())
        assert receivable(ledger) == outstanding
        credit = -balance_of(
            "customer_credit",
            [p for e in account_events(ledger) for p in getattr(e, "postings", ())],
        )
        assert credit == account.credit_minor
