"""Specification, from the customer's side, of prices, due dates, resumes and credit caps.

An announced price stays with the plan it was announced for; no invoice is born overdue; a
resume never bills paid days twice; credit is capped at what was really charged; interest is
invoiced; plan-change invoices are named after the cycle's invoice (issue 11, defect 3 and
rules 5, 6, 7, 8 and 10).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from commands.messages import (
    AnnouncePriceChange,
    CancelSubscription,
    ChangePlan,
    IssueCreditNote,
    PauseSubscription,
    ResumeSubscription,
)
from ledger.account_state import CancellationPolicy
from ledger.application import BillingLedger
from projections.balances import invoiced_of
from tests.unit.builders import Sender, advance_clock, open_account, record_payment, subscribe
from tests.unit.customer_view import (
    billed,
    credit_held,
    events_named,
    on_account,
    rejection,
    renegotiation,
)
from tests.unit.customer_view import the_account as account_of

DAY = timedelta(days=1)


def at(month: int, day: int) -> datetime:
    return datetime(2024, month, day, tzinfo=UTC)


class TestAnAnnouncedPriceStaysWithItsPlan:
    """A plan change withdraws a price change announced for the old terms, and says so."""

    def test_the_new_plan_is_billed_at_its_own_price(
        self, ledger: BillingLedger, send: Sender
    ) -> None:
        """Basic 10.00 -> 12.00 from 1 Mar; moved to Pro at 30.00 on 15 Feb: March is 30.00."""
        send(
            open_account(issued_at=at(1, 1)),
            subscribe(issued_at=at(1, 1), plan_id="basic", price_minor=1000),
            on_account(
                AnnouncePriceChange,
                at(1, 10),
                subscription_id="sub-1",
                new_price_minor=1200,
                effective_from=at(3, 1),
            ),
            on_account(
                ChangePlan, at(2, 15), subscription_id="sub-1", plan_id="pro", price_minor=3000
            ),
            advance_clock(issued_at=at(3, 1)),
        )
        assert billed(ledger)[-1] == ("sub-1/3", 3000)
        assert events_named(ledger, "PriceChangeApplied") == []
        (withdrawn,) = events_named(ledger, "PriceChangeWithdrawn")
        assert (
            withdrawn.plan_id,
            withdrawn.withdrawn_price_minor,
            withdrawn.effective_from,
            withdrawn.reason,
            withdrawn.template_key,
        ) == ("basic", 1200, at(3, 1), "plan_change", "subscription.price_change_withdrawn")
        assert tuple(withdrawn.contacts) == account_of(ledger).contacts

    def test_without_an_announcement_a_change_withdraws_nothing(
        self, ledger: BillingLedger, send: Sender
    ) -> None:
        """No PriceChangeWithdrawn when nothing was announced."""
        send(
            open_account(issued_at=at(1, 1)),
            subscribe(issued_at=at(1, 1)),
            on_account(
                ChangePlan, at(1, 15), subscription_id="sub-1", plan_id="pro", price_minor=3000
            ),
        )
        assert events_named(ledger, "PriceChangeWithdrawn") == []


class TestNoInvoiceIsBornOverdue:
    """An invoice is due days_until_due after its issue; a late tick issues it late."""

    def test_a_cycle_begun_on_11_april_issued_on_1_may_is_due_15_may(
        self, ledger: BillingLedger, send: Sender
    ) -> None:
        """Monthly from 11 Mar, ticks on the 1st: sub-1/2 issued 1 May, due 15 May, not overdue."""
        send(
            open_account(issued_at=at(3, 11)),
            subscribe(issued_at=at(3, 11)),
            record_payment(amount_minor=1500, issued_at=at(3, 11)),
            advance_clock(issued_at=at(4, 1)),
            advance_clock(issued_at=at(5, 1)),
        )
        issued = events_named(ledger, "InvoiceIssued")[-1]
        assert (issued.invoice_id, issued.period_start, issued.due_at) == (
            "sub-1/2",
            at(4, 11),
            at(5, 15),
        )
        assert events_named(ledger, "InvoiceOverdue") == []

    def test_its_early_payment_window_runs_from_the_issue_too(
        self, ledger: BillingLedger, send: Sender
    ) -> None:
        """With 10 days of incentive, the late sub-1/2 can be paid early until 11 May."""
        send(
            open_account(issued_at=at(3, 11)),
            subscribe(issued_at=at(3, 11), early_payment_discount_bp=200, early_payment_days=10),
            advance_clock(issued_at=at(5, 1)),
        )
        issued = events_named(ledger, "InvoiceIssued")[-1]
        assert issued.early_payment_deadline == at(5, 11)


class TestAResumeNeverBillsPaidDaysTwice:
    """Resumed inside the period already invoiced, the subscription runs on to its end."""

    def test_resumed_within_the_paid_period_the_next_invoice_comes_at_its_end(
        self, ledger: BillingLedger, send: Sender
    ) -> None:
        """Paid to 1 May, paused 5 Apr, resumed 20 Apr: nothing billed until 1 May."""
        send(
            open_account(issued_at=at(4, 1)),
            subscribe(issued_at=at(4, 1)),
            record_payment(amount_minor=1500, issued_at=at(4, 1)),
            on_account(PauseSubscription, at(4, 5), subscription_id="sub-1"),
            on_account(ResumeSubscription, at(4, 20), subscription_id="sub-1"),
        )
        assert billed(ledger) == [("sub-1/1", 1500)]
        assert events_named(ledger, "SubscriptionResumed")[-1].anchor == at(5, 1)
        send(advance_clock(issued_at=at(5, 1)))
        last = events_named(ledger, "InvoiceIssued")[-1]
        assert (last.invoice_id, last.period_start, last.period_end) == (
            "sub-1/2",
            at(5, 1),
            at(6, 1),
        )

    def test_resumed_after_the_paid_period_a_new_cycle_starts_now(
        self, ledger: BillingLedger, send: Sender
    ) -> None:
        """Paused 5 Apr, resumed 10 May: sub-1/2 covers 10 May to 10 Jun, billed at once."""
        send(
            open_account(issued_at=at(4, 1)),
            subscribe(issued_at=at(4, 1)),
            on_account(PauseSubscription, at(4, 5), subscription_id="sub-1"),
            on_account(ResumeSubscription, at(5, 10), subscription_id="sub-1"),
        )
        last = events_named(ledger, "InvoiceIssued")[-1]
        assert (last.invoice_id, last.period_start, last.period_end) == (
            "sub-1/2",
            at(5, 10),
            at(6, 10),
        )


def credit_note(when: datetime, amount_minor: int, credit_note_id: str = "cn-1") -> IssueCreditNote:
    return on_account(
        IssueCreditNote,
        when,
        credit_note_id=credit_note_id,
        invoice_id="sub-1/1",
        amount_minor=amount_minor,
        reason="goodwill",
    )


class TestCreditIsCappedAtWhatWasCharged:
    """Credit notes and prorated refunds give back at most what the customer was charged, net
    of discounts and forgiveness."""

    def test_an_invoice_paid_after_a_discount_credits_at_most_what_was_paid(
        self, send: Sender
    ) -> None:
        """10.00 paid 9.80 after a 0.20 discount: 10.00 back is refused, 9.80 accepted."""
        send(
            open_account(issued_at=at(1, 1)),
            subscribe(
                issued_at=at(1, 1),
                price_minor=1000,
                early_payment_discount_bp=200,
                early_payment_days=10,
            ),
            record_payment(amount_minor=980, issued_at=at(1, 2)),
        )
        assert rejection(send(credit_note(at(1, 3), 1000))[0]) == (
            "exceeds_invoice",
            "amount_minor",
        )
        assert rejection(send(credit_note(at(1, 3), 980, "cn-2"))[0]) is None

    def test_a_prorated_refund_uses_the_price_actually_paid(
        self, ledger: BillingLedger, send: Sender
    ) -> None:
        """31.00 a month paid 30.38 (2% off), cancelled with 21 of 31 days unused: 20.58 back."""
        send(
            open_account(issued_at=at(1, 1)),
            subscribe(
                issued_at=at(1, 1),
                price_minor=3100,
                early_payment_discount_bp=200,
                early_payment_days=10,
                cancellation_policy=CancellationPolicy.IMMEDIATELY_WITH_PRORATED_REFUND,
            ),
            record_payment(amount_minor=3038, issued_at=at(1, 2)),
            on_account(CancelSubscription, at(1, 11), subscription_id="sub-1"),
        )
        (refund,) = events_named(ledger, "CreditNoteIssued")
        assert refund.amount_minor == 3038 * 21 // 31
        assert credit_held(ledger) == 3038 * 21 // 31

    def test_forgiveness_lowers_what_can_be_credited(self, send: Sender) -> None:
        """15.00 renegotiated with 2.00 forgiven: at most 13.00 can be credited on it."""
        overdue = at(2, 20)
        send(
            open_account(issued_at=at(1, 1)),
            subscribe(issued_at=at(1, 1)),
            advance_clock(issued_at=overdue),
            on_account(PauseSubscription, overdue, subscription_id="sub-1"),
            renegotiation(overdue, "sub-1/1", forgiven_minor=200),
        )
        assert rejection(send(credit_note(overdue, 1301))[0]) == ("exceeds_invoice", "amount_minor")
        assert rejection(send(credit_note(overdue, 1300, "cn-2"))[0]) is None


class TestInterestIsInvoiced:
    """Renegotiation interest is billed revenue: it counts in what the account was invoiced."""

    def test_the_account_and_the_balances_read_model_count_it(
        self, ledger: BillingLedger, send: Sender
    ) -> None:
        """15.00 invoiced, then 1.00 interest: 16.00 invoiced."""
        overdue = at(1, 20)
        send(
            open_account(issued_at=at(1, 1)),
            subscribe(issued_at=at(1, 1)),
            on_account(PauseSubscription, overdue, subscription_id="sub-1"),
            advance_clock(issued_at=at(2, 20)),
            renegotiation(at(2, 20), "sub-1/1", installments=2, interest_minor=100),
        )
        assert account_of(ledger).totals.invoiced_minor == 1600
        assert invoiced_of("DebtRenegotiated", {"interest_minor": 100}) == 100
        assert invoiced_of("InvoiceIssued", {"amount_minor": 1500}) == 1500
        assert invoiced_of("PaymentReceived", {"amount_minor": 1500}) == 0


class TestPlanChangeInvoiceIds:
    """A plan change's invoice is `<the cycle's invoice>/change-<n>`, n the first free."""

    def test_named_after_the_invoice_of_the_cycle_it_changes(
        self, ledger: BillingLedger, send: Sender
    ) -> None:
        """In sub-1/1's period: sub-1/1/change-1, then change-2; in sub-1/2's: sub-1/2/change-1."""
        send(
            open_account(issued_at=at(1, 1)),
            subscribe(issued_at=at(1, 1)),
            on_account(
                ChangePlan, at(1, 10), subscription_id="sub-1", plan_id="b", price_minor=2000
            ),
            on_account(
                ChangePlan, at(1, 20), subscription_id="sub-1", plan_id="c", price_minor=3000
            ),
            advance_clock(issued_at=at(2, 1)),
            on_account(
                ChangePlan, at(2, 10), subscription_id="sub-1", plan_id="d", price_minor=4000
            ),
        )
        assert [invoice_id for invoice_id, _ in billed(ledger)] == [
            "sub-1/1",
            "sub-1/1/change-1",
            "sub-1/1/change-2",
            "sub-1/2",
            "sub-1/2/change-1",
        ]
