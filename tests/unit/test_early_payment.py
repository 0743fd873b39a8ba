"""Specification of the early-payment incentive: a share forgiven when an invoice is paid early."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from eventsourcing.persistence import StoredEvent

from ledger.account import Account
from ledger.application import BillingLedger
from ledger.postings import balance_of
from tests.unit.builders import Sender, account_events, open_account, record_payment, subscribe

START = datetime(2024, 1, 1, tzinfo=UTC)
DAY = timedelta(days=1)


def named(ledger: BillingLedger, name: str) -> list[Any]:
    return [e for e in account_events(ledger) if type(e).__name__ == name]


def balance(ledger: BillingLedger, ledger_account: str) -> int:
    postings = [p for e in account_events(ledger) for p in getattr(e, "postings", ())]
    return balance_of(ledger_account, postings)


def subscribed_with_incentive(send: Sender) -> None:
    """15.00 a month, 2% off when paid within 10 days of the period's start."""
    send(
        open_account(issued_at=START),
        subscribe(
            issued_at=START, price_minor=1500, early_payment_discount_bp=200, early_payment_days=10
        ),
    )


class TestEarlyPayment:
    """Paying the rest within the window settles the invoice with the discount."""

    def test_the_invoice_states_the_incentive(self, ledger: BillingLedger, send: Sender) -> None:
        """The invoice says how much is forgiven and until when."""
        subscribed_with_incentive(send)
        (invoice,) = named(ledger, "InvoiceIssued")
        assert (invoice.early_payment_discount_minor, invoice.early_payment_deadline) == (
            30,
            START + 10 * DAY,
        )

    def test_paid_within_the_window(self, ledger: BillingLedger, send: Sender) -> None:
        """14.70 on day 5: 0.30 forgiven (Dr discounts, Cr receivable), the invoice paid."""
        subscribed_with_incentive(send)
        send(record_payment(amount_minor=1470, issued_at=START + 5 * DAY))
        (granted,) = named(ledger, "EarlyPaymentDiscountGranted")
        assert granted.amount_minor == 30
        assert balance(ledger, "discounts") == 30
        assert balance(ledger, "receivable") == 0
        assert [e.invoice_id for e in named(ledger, "InvoicePaid")] == ["sub-1/1"]

    def test_paid_in_two_parts_within_the_window(self, ledger: BillingLedger, send: Sender) -> None:
        """The discount comes with the payment that settles the rest."""
        subscribed_with_incentive(send)
        send(record_payment(amount_minor=1000, issued_at=START + 2 * DAY))
        assert named(ledger, "EarlyPaymentDiscountGranted") == []
        send(record_payment(amount_minor=470, issued_at=START + 9 * DAY))
        assert [e.amount_minor for e in named(ledger, "EarlyPaymentDiscountGranted")] == [30]

    def test_too_late_no_discount(self, ledger: BillingLedger, send: Sender) -> None:
        """14.70 on day 11: no discount, 0.30 still owed."""
        subscribed_with_incentive(send)
        send(record_payment(amount_minor=1470, issued_at=START + 11 * DAY))
        assert named(ledger, "EarlyPaymentDiscountGranted") == []
        assert balance(ledger, "receivable") == 30

    def test_the_full_price_paid_early_leaves_the_discount_as_credit(
        self, ledger: BillingLedger, send: Sender
    ) -> None:
        """15.00 on day 1: 14.70 settles the invoice with the discount, 0.30 becomes credit."""
        subscribed_with_incentive(send)
        send(record_payment(amount_minor=1500, issued_at=START + DAY))
        account = ledger.account("acc-1")
        assert account is not None and account.credit_minor == 30

    def test_a_discount_over_half_is_rejected(self, send: Sender) -> None:
        """out_of_range on early_payment_discount_bp."""
        send(open_account(issued_at=START))
        (outcome,) = send(subscribe(issued_at=START, early_payment_discount_bp=5001))
        assert outcome.rejection is not None
        assert (outcome.rejection.code, outcome.rejection.field) == (
            "out_of_range",
            "early_payment_discount_bp",
        )


class TestUpcasting:
    """Invoices stored before the incentive existed read back with none."""

    def test_a_version_1_invoice_reads_back_without_a_discount(
        self, ledger: BillingLedger, send: Sender
    ) -> None:
        """The stored state without the new fields is upcast: 0 forgiven, no deadline."""
        send(open_account(issued_at=START), subscribe(issued_at=START))
        (stored,) = [
            n
            for n in ledger.recorder.select_notifications(start=1, limit=100)
            if n.topic.endswith("InvoiceIssued")
        ]
        state = json.loads(stored.state)
        for new_field in (
            "early_payment_discount_minor",
            "early_payment_deadline",
            "class_version",
        ):
            state.pop(new_field, None)
        old = replace(
            StoredEvent(
                stored.originator_id, stored.originator_version, stored.topic, stored.state
            ),
            state=json.dumps(state).encode(),
        )
        event = ledger.mapper.to_domain_event(old)
        assert isinstance(event, Account.InvoiceIssued)
        assert (event.early_payment_discount_minor, event.early_payment_deadline) == (0, None)
