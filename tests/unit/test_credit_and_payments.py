"""Specification, from the customer's side, of how credit and money received settle invoices.

Credit held in advance earns the early-payment discount; every credit the ledger creates
settles open invoices at once; money received is always recorded; a charge asks for what
settles the invoice (issue 11, defects 1, 2 and 4 and rule 9).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from eventsourcing.persistence import StoredEvent

from commands.messages import (
    CancelSubscription,
    ChangePlan,
    Charge,
    IssueCreditNote,
    WriteOff,
)
from ledger.account import Account
from ledger.account_state import CancellationPolicy
from ledger.application import BillingLedger
from tests.unit.builders import Sender, advance_clock, open_account, record_payment, subscribe
from tests.unit.customer_view import (
    card_on_file,
    credit_held,
    events_named,
    on_account,
    owed,
    rejection,
    renegotiation,
    the_account,
)

JAN_1 = datetime(2024, 1, 1, tzinfo=UTC)
DAY = timedelta(days=1)


@pytest.fixture(name="with_incentive")
def fixture_with_incentive(send: Sender) -> Sender:
    """acc-1 on 10.00 a month from 1 Jan, 5% off when paid within 10 days."""
    send(
        open_account(issued_at=JAN_1),
        subscribe(
            issued_at=JAN_1, price_minor=1000, early_payment_discount_bp=500, early_payment_days=10
        ),
    )
    return send


class TestCreditHeldInAdvanceEarnsTheDiscount:
    """An invoice settled by credit within its early-payment window gets its discount."""

    def test_the_next_invoice_settled_by_credit_at_issue_is_discounted(
        self, ledger: BillingLedger, with_incentive: Sender
    ) -> None:
        """20.00 paid on 2 Jan: January 9.50 (0.50 off), February settled by credit at 9.50."""
        with_incentive(record_payment(amount_minor=2000, issued_at=JAN_1 + DAY))
        assert credit_held(ledger) == 1050
        with_incentive(advance_clock(issued_at=datetime(2024, 2, 1, tzinfo=UTC)))
        granted = [
            (e.invoice_id, e.amount_minor)
            for e in events_named(ledger, "EarlyPaymentDiscountGranted")
        ]
        assert granted == [("sub-1/1", 50), ("sub-1/2", 50)]
        assert (owed(ledger), credit_held(ledger)) == (0, 100)

    def test_credit_short_of_the_discounted_amount_earns_nothing_yet(
        self, ledger: BillingLedger, with_incentive: Sender
    ) -> None:
        """3.00 credit on a 10.00 invoice: 3.00 applied, 7.00 owed, no discount yet."""
        with_incentive(record_payment(amount_minor=1250, issued_at=JAN_1 + DAY))
        with_incentive(advance_clock(issued_at=datetime(2024, 2, 1, tzinfo=UTC)))
        assert [e.invoice_id for e in events_named(ledger, "EarlyPaymentDiscountGranted")] == [
            "sub-1/1"
        ]
        assert (owed(ledger), credit_held(ledger)) == (700, 0)


@pytest.fixture(name="two_subscriptions")
def fixture_two_subscriptions(send: Sender) -> Sender:
    """sub-1 at 10.00 unpaid; sub-2 at 31.00, refunded pro rata on cancelling, paid."""
    send(
        open_account(issued_at=JAN_1),
        subscribe(issued_at=JAN_1, price_minor=1000),
        subscribe(
            issued_at=JAN_1,
            subscription_id="sub-2",
            price_minor=3100,
            cancellation_policy=CancellationPolicy.IMMEDIATELY_WITH_PRORATED_REFUND,
        ),
        record_payment(amount_minor=3100, invoice_id="sub-2/1", issued_at=JAN_1),
    )
    return send


class TestEveryCreditSettlesOpenInvoices:
    """Credit from a cancellation, a plan change or a credit note settles open invoices at
    once, oldest due first: no account both holds credit and has an invoice open."""

    def test_a_prorated_cancellation_pays_the_other_invoice(
        self, ledger: BillingLedger, two_subscriptions: Sender
    ) -> None:
        """Cancelled 11 Jan: 21.00 back, 10.00 settles sub-1/1, 11.00 kept; never overdue."""
        two_subscriptions(
            on_account(CancelSubscription, JAN_1 + 10 * DAY, subscription_id="sub-2"),
            advance_clock(issued_at=JAN_1 + 20 * DAY),
        )
        assert (owed(ledger), credit_held(ledger)) == (0, 1100)
        assert events_named(ledger, "InvoiceOverdue") == []

    def test_a_downgrade_pays_the_other_invoice_and_its_own(
        self, ledger: BillingLedger, two_subscriptions: Sender
    ) -> None:
        """sub-2 to 10.00 on 11 Jan: 21.00 back pays sub-1/1 (10.00), the change (6.77)."""
        two_subscriptions(
            on_account(
                ChangePlan,
                JAN_1 + 10 * DAY,
                subscription_id="sub-2",
                plan_id="lite",
                price_minor=1000,
            )
        )
        assert (owed(ledger), credit_held(ledger)) == (0, 2100 - 1000 - 677)

    def test_a_credit_note_pays_the_oldest_due_after_its_own(
        self, ledger: BillingLedger, two_subscriptions: Sender
    ) -> None:
        """5.00 goodwill on the paid sub-2/1 settles 5.00 of sub-1/1."""
        two_subscriptions(
            on_account(
                IssueCreditNote,
                JAN_1 + DAY,
                credit_note_id="cn-1",
                invoice_id="sub-2/1",
                amount_minor=500,
                reason="goodwill",
            )
        )
        assert (owed(ledger), credit_held(ledger)) == (500, 0)


@pytest.fixture(name="two_invoices")
def fixture_two_invoices(send: Sender) -> Sender:
    """sub-1/1 at 10.00 paid, sub-2/1 at 20.00 open."""
    send(
        open_account(issued_at=JAN_1),
        subscribe(issued_at=JAN_1, price_minor=1000),
        subscribe(issued_at=JAN_1, subscription_id="sub-2", price_minor=2000),
        record_payment(amount_minor=1000, invoice_id="sub-1/1", issued_at=JAN_1),
    )
    return send


class TestMoneyReceivedIsAlwaysRecorded:
    """A payment naming an invoice that cannot take it goes to the oldest open invoice or
    becomes credit; the event names the invoice and says why it went elsewhere."""

    def test_naming_a_paid_invoice_pays_the_open_one(
        self, ledger: BillingLedger, two_invoices: Sender
    ) -> None:
        """10.00 naming paid sub-1/1 settles 10.00 of sub-2/1: invoice_already_paid."""
        (outcome,) = two_invoices(record_payment(amount_minor=1000, invoice_id="sub-1/1"))
        assert rejection(outcome) is None
        payment = events_named(ledger, "PaymentReceived")[-1]
        assert (payment.invoice_id, payment.redirect_reason) == ("sub-1/1", "invoice_already_paid")
        assert [(a.invoice_id, a.amount_minor) for a in payment.allocations] == [("sub-2/1", 1000)]
        assert owed(ledger) == 1000

    def test_naming_a_written_off_invoice_becomes_credit_when_nothing_is_open(
        self, ledger: BillingLedger, two_invoices: Sender
    ) -> None:
        """sub-2/1 written off, then 20.00 naming it: kept as credit, invoice_written_off."""
        two_invoices(on_account(WriteOff, JAN_1 + DAY, invoice_id="sub-2/1", reason="bad debt"))
        (outcome,) = two_invoices(record_payment(amount_minor=2000, invoice_id="sub-2/1"))
        assert rejection(outcome) is None
        payment = events_named(ledger, "PaymentReceived")[-1]
        assert payment.redirect_reason == "invoice_written_off"
        assert credit_held(ledger) == 2000

    def test_naming_a_renegotiated_invoice_pays_its_installments(
        self, ledger: BillingLedger, two_invoices: Sender
    ) -> None:
        """sub-2/1 into plan-1 of 2: 10.00 naming sub-2/1 settles plan-1/1."""
        overdue = JAN_1 + 20 * DAY
        two_invoices(
            advance_clock(issued_at=overdue),
            renegotiation(overdue, "sub-2/1", installments=2),
        )
        two_invoices(record_payment(amount_minor=1000, invoice_id="sub-2/1", issued_at=overdue))
        payment = events_named(ledger, "PaymentReceived")[-1]
        assert payment.redirect_reason == "invoice_renegotiated"
        assert [(a.invoice_id, a.amount_minor) for a in payment.allocations] == [("plan-1/1", 1000)]

    def test_naming_the_open_invoice_says_nothing_went_elsewhere(
        self, ledger: BillingLedger, two_invoices: Sender
    ) -> None:
        """20.00 naming sub-2/1 settles it; no reason given."""
        two_invoices(record_payment(amount_minor=2000, invoice_id="sub-2/1"))
        payment = events_named(ledger, "PaymentReceived")[-1]
        assert (payment.invoice_id, payment.redirect_reason) == ("sub-2/1", None)

    def test_naming_an_unknown_invoice_is_still_refused(self, two_invoices: Sender) -> None:
        """unknown_invoice on invoice_id: the money may be another account's."""
        (outcome,) = two_invoices(record_payment(amount_minor=1000, invoice_id="sub-9/1"))
        assert rejection(outcome) == ("unknown_invoice", "invoice_id")


class TestAChargeAsksForTheDiscountedAmount:
    """Inside its early-payment window a charge asks for what settles the invoice then."""

    def test_inside_the_window_the_discounted_amount(
        self, ledger: BillingLedger, with_incentive: Sender
    ) -> None:
        """On 5 Jan: 9.50 of the 10.00 invoice; the payment of 9.50 settles it."""
        with_incentive(
            card_on_file(JAN_1),
            on_account(Charge, JAN_1 + 4 * DAY, invoice_id="sub-1/1", payment_method_id=None),
        )
        (requested,) = events_named(ledger, "ChargeRequested")
        assert requested.amount_minor == 950
        with_incentive(record_payment(amount_minor=950, issued_at=JAN_1 + 4 * DAY))
        assert (owed(ledger), credit_held(ledger)) == (0, 0)

    def test_after_the_window_the_full_amount(
        self, ledger: BillingLedger, with_incentive: Sender
    ) -> None:
        """On 12 Jan: all 10.00."""
        with_incentive(
            card_on_file(JAN_1),
            on_account(Charge, JAN_1 + 11 * DAY, invoice_id="sub-1/1", payment_method_id=None),
        )
        (requested,) = events_named(ledger, "ChargeRequested")
        assert requested.amount_minor == 1000
        assert the_account(ledger).invoices["sub-1/1"].outstanding_minor == 1000


class TestPaymentsStoredBefore040:
    """Payments stored before the named invoice was recorded read back with none."""

    def test_a_version_1_payment_reads_back_naming_no_invoice(
        self, ledger: BillingLedger, two_invoices: Sender
    ) -> None:
        """The stored state without the new fields is upcast: no invoice, no reason."""
        (stored,) = [
            n
            for n in ledger.recorder.select_notifications(start=1, limit=100)
            if n.topic.endswith("PaymentReceived")
        ]
        state = json.loads(stored.state)
        for new_field in ("invoice_id", "redirect_reason", "class_version"):
            state.pop(new_field, None)
        old = StoredEvent(
            stored.originator_id,
            stored.originator_version,
            stored.topic,
            json.dumps(state).encode(),
        )
        event = ledger.mapper.to_domain_event(old)
        assert isinstance(event, Account.PaymentReceived)
        assert (event.invoice_id, event.redirect_reason, event.amount_minor) == (None, None, 1000)
