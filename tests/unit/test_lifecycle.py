"""Specification of a subscription's life: plan changes, pauses, cancellations and reactivation."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from commands.messages import (
    CancelSubscription,
    ChangePlan,
    IssueCreditNote,
    PauseSubscription,
    ReactivateSubscription,
    ResumeSubscription,
    WriteOff,
)
from ledger.account import Account
from ledger.account_state import CancellationPolicy, SubscriptionStatus
from ledger.application import BillingLedger
from ledger.postings import balance_of
from ledger.proration import prorated
from tests.unit.builders import (
    Sender,
    account_events,
    advance_clock,
    in_memory_ledger,
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


APRIL = datetime(2024, 4, 1, tzinfo=UTC)  # a 30-day period: 1 April to 1 May
APRIL_SECONDS = 30 * 24 * 3600
HALFWAY = APRIL + 15 * DAY
THREE_QUARTERS = APRIL + 22 * DAY + timedelta(hours=12)


def credit_notes(ledger: BillingLedger) -> list[tuple[str, int]]:
    """(invoice id, amount) of every credit note, oldest first."""
    return [
        (e.invoice_id, e.amount_minor)
        for e in account_events(ledger)
        if isinstance(e, Account.CreditNoteIssued)
    ]


def change_invoice_ids(ledger: BillingLedger) -> list[str]:
    """The proration invoices plan changes issued, oldest first."""
    account = ledger.account("acc-1")
    assert account is not None
    return [invoice_id for invoice_id in account.invoices if "/change-" in invoice_id]


def refund_of_cancellation(ledger: BillingLedger) -> int:
    (cancelled,) = [
        e for e in account_events(ledger) if isinstance(e, Account.SubscriptionCancelled)
    ]
    return int(cancelled.refund_minor)


@pytest.fixture(name="april")
def fixture_april(send: Sender) -> Sender:
    """acc-1 subscribed to 30.00 EUR monthly on 1 April, refunded pro rata on cancelling."""
    send(
        open_account(issued_at=APRIL),
        subscribe(
            issued_at=APRIL,
            price_minor=3000,
            cancellation_policy=CancellationPolicy.IMMEDIATELY_WITH_PRORATED_REFUND,
        ),
    )
    return send


class TestCreditsFollowThePriceInForce:
    """A period's credits are the unused share at the price in force, against the invoice that
    charged it, and never more than an invoice has left to credit."""

    def test_a_prorated_cancellation_after_an_upgrade(
        self, ledger: BillingLedger, april: Sender
    ) -> None:
        """30.00 to 60.00 halfway, cancelled a quarter later: 15.00 back on the change invoice."""
        april(on_subscription(ChangePlan, HALFWAY, plan_id="gold", price_minor=6000))
        april(on_subscription(CancelSubscription, THREE_QUARTERS))
        (change_invoice,) = change_invoice_ids(ledger)
        assert credit_notes(ledger) == [("sub-1/1", 1500), (change_invoice, 1500)]
        assert refund_of_cancellation(ledger) == 1500

    def test_a_second_plan_change_credits_the_first_changes_invoice(
        self, ledger: BillingLedger, april: Sender
    ) -> None:
        """60.00 to 90.00 on day 16: 14/30 of 60.00 back on the invoice that charged 60.00."""
        april(on_subscription(ChangePlan, HALFWAY, plan_id="gold", price_minor=6000))
        april(on_subscription(ChangePlan, APRIL + 16 * DAY, plan_id="platinum", price_minor=9000))
        first_change, second_change = change_invoice_ids(ledger)
        assert credit_notes(ledger) == [("sub-1/1", 1500), (first_change, 2800)]
        account = ledger.account("acc-1")
        assert account is not None
        assert account.invoices["sub-1/1"].credited_minor == 1500  # not 4300 of its 3000
        assert account.invoices[second_change].amount_minor == 4200  # 14/30 of 90.00

    def test_a_written_off_invoice_refunds_nothing(
        self, ledger: BillingLedger, april: Sender
    ) -> None:
        """Nothing was paid nor is owed: cancelling credits nothing."""
        april(
            WriteOff(
                str(uuid.uuid4()), "acc-1", APRIL + DAY, invoice_id="sub-1/1", reason="bankrupt"
            )
        )
        april(on_subscription(CancelSubscription, HALFWAY))
        assert credit_notes(ledger) == []
        assert refund_of_cancellation(ledger) == 0
        assert ledger.account("acc-1").credit_minor == 0  # type: ignore[union-attr]

    def test_earlier_credit_notes_cap_the_refund(
        self, ledger: BillingLedger, april: Sender
    ) -> None:
        """25.00 of 30.00 already credited: cancelling halfway credits 5.00, not 15.00."""
        april(
            IssueCreditNote(
                str(uuid.uuid4()),
                "acc-1",
                APRIL + DAY,
                credit_note_id="cn-1",
                invoice_id="sub-1/1",
                amount_minor=2500,
                reason="outage",
            )
        )
        april(on_subscription(CancelSubscription, HALFWAY))
        assert credit_notes(ledger) == [("sub-1/1", 2500), ("sub-1/1", 500)]
        assert refund_of_cancellation(ledger) == 500

    @settings(max_examples=60, deadline=None)
    @given(
        prices=st.lists(st.integers(min_value=0, max_value=10**7), min_size=1, max_size=4),
        offsets=st.lists(
            st.integers(min_value=1, max_value=APRIL_SECONDS - 1), min_size=5, max_size=5
        ),
    )
    def test_changes_then_a_cancellation_charge_the_exact_shares(
        self, prices: list[int], offsets: list[int]
    ) -> None:
        """Each price for its part of the period, within a minor unit per change; no invoice
        is credited more than it invoiced."""
        times = sorted(offsets)[: len(prices) + 1]  # a time for each change, then the cancel
        send = Sender(in_memory_ledger())
        send(
            open_account(issued_at=APRIL),
            subscribe(
                issued_at=APRIL,
                price_minor=3000,
                cancellation_policy=CancellationPolicy.IMMEDIATELY_WITH_PRORATED_REFUND,
            ),
        )
        for k, price in enumerate(prices):
            when = APRIL + timedelta(seconds=times[k])
            send(on_subscription(ChangePlan, when, plan_id=f"plan-{k}", price_minor=price))
        send(on_subscription(CancelSubscription, APRIL + timedelta(seconds=times[-1])))
        events = account_events(send.ledger)
        net = sum(e.amount_minor for e in events if isinstance(e, Account.InvoiceIssued)) - sum(
            e.amount_minor for e in events if isinstance(e, Account.CreditNoteIssued)
        )
        bounds = [0, *times]
        exact = sum(
            Fraction(price * (bounds[k + 1] - bounds[k]), APRIL_SECONDS)
            for k, price in enumerate([3000, *prices])
        )
        assert abs(net - exact) < len(prices) + 1
        account = send.ledger.account("acc-1")
        assert account is not None
        assert all(i.credited_minor <= i.amount_minor for i in account.invoices.values())


# UUIDv7 command ids sent within the same minute share their first 8 hex characters.
SAME_MINUTE = tuple(f"0190a1b2-c3d4-7e5f-8a6b-00000000000{k}" for k in range(1, 4))


def change_plan(command_id: str, when: datetime, plan_id: str, price_minor: int) -> ChangePlan:
    """A ChangePlan of sub-1 of acc-1 sent as `command_id`."""
    return ChangePlan(
        command_id, "acc-1", when, subscription_id="sub-1", plan_id=plan_id, price_minor=price_minor
    )


def credit_note_ids(ledger: BillingLedger) -> list[str]:
    """The id of every credit note, oldest first."""
    return [
        e.credit_note_id for e in account_events(ledger) if isinstance(e, Account.CreditNoteIssued)
    ]


def three_changes(send: Sender) -> None:
    """30.00 to 60.00 halfway, to 90.00 on day 16, to 120.00 on day 17, all in one minute's ids."""
    send(change_plan(SAME_MINUTE[0], HALFWAY, "gold", 6000))
    send(change_plan(SAME_MINUTE[1], APRIL + 16 * DAY, "platinum", 9000))
    send(change_plan(SAME_MINUTE[2], APRIL + 17 * DAY, "diamond", 12000))


def with_ids_renamed(events: list[Any], renamed: dict[str, str]) -> list[Any]:
    """The events with their invoice and credit note ids renamed as `renamed` says."""
    copies = []
    for event in events:
        changes = {
            name: renamed.get(getattr(event, name), getattr(event, name))
            for name in ("invoice_id", "credit_note_id")
            if hasattr(event, name)
        }
        copies.append(dataclasses.replace(event, **changes))
    return copies


class TestProratedDocumentIds:
    """Each proration invoice and derived credit note has an id of its own: numbered within its
    cycle or invoice, the same for the same commands, never taken from the command id."""

    def test_changes_in_the_same_minute_issue_distinct_invoices(
        self, ledger: BillingLedger, april: Sender
    ) -> None:
        """Two ChangePlan whose command ids share 8 hex characters: both change invoices stay."""
        april(change_plan(SAME_MINUTE[0], HALFWAY, "gold", 6000))
        april(change_plan(SAME_MINUTE[1], APRIL + 16 * DAY, "platinum", 9000))
        account = ledger.account("acc-1")
        assert account is not None
        assert change_invoice_ids(ledger) == ["sub-1/1/change-1", "sub-1/1/change-2"]
        assert [account.invoices[i].amount_minor for i in change_invoice_ids(ledger)] == [
            3000,  # 15/30 of 60.00
            4200,  # 14/30 of 90.00
        ]
        outstanding = sum(i.outstanding_minor for i in account.invoices.values())
        assert receivable(ledger) == outstanding

    def test_their_credit_notes_have_distinct_ids(
        self, ledger: BillingLedger, april: Sender
    ) -> None:
        """Three changes in one minute: each credit note is numbered on the invoice it credits."""
        three_changes(april)
        assert credit_note_ids(ledger) == [
            "sub-1/1/credit-1",
            "sub-1/1/change-1/credit-1",
            "sub-1/1/change-2/credit-1",
        ]
        assert [amount for _, amount in credit_notes(ledger)] == [1500, 2800, 3900]

    def test_the_same_commands_give_the_same_ids(self, april: Sender) -> None:
        """Replaying the commands into another ledger names every document the same."""
        other = Sender(in_memory_ledger())
        other(
            open_account(issued_at=APRIL),
            subscribe(
                issued_at=APRIL,
                price_minor=3000,
                cancellation_policy=CancellationPolicy.IMMEDIATELY_WITH_PRORATED_REFUND,
            ),
        )
        three_changes(april)
        three_changes(other)
        assert change_invoice_ids(other.ledger) == change_invoice_ids(april.ledger)
        assert credit_note_ids(other.ledger) == credit_note_ids(april.ledger)

    def test_an_id_the_sender_chose_is_skipped(self, ledger: BillingLedger, april: Sender) -> None:
        """A credit note the sender named sub-1/1/credit-1: the cancellation's is credit-2."""
        april(
            IssueCreditNote(
                str(uuid.uuid4()),
                "acc-1",
                APRIL + DAY,
                credit_note_id="sub-1/1/credit-1",
                invoice_id="sub-1/1",
                amount_minor=500,
                reason="outage",
            )
        )
        april(on_subscription(CancelSubscription, HALFWAY))
        assert credit_note_ids(ledger) == ["sub-1/1/credit-1", "sub-1/1/credit-2"]

    def test_a_history_stored_with_command_id_prefixes_still_works(
        self, ledger: BillingLedger, april: Sender
    ) -> None:
        """Documents named `change-<8 hex>` before numbering replay; the next change credits
        the stored change invoice and issues change-1, and cancelling credits that one."""
        april(change_plan(SAME_MINUTE[0], HALFWAY, "gold", 6000))
        stored = with_ids_renamed(
            account_events(ledger),
            {
                "sub-1/1/change-1": "sub-1/1/change-0190a1b2",
                "sub-1/1/credit-1": "sub-1/1/credit-0190a1b2",
            },
        )
        old = Sender(in_memory_ledger())
        old.ledger.repository.event_store.put(stored)
        old(change_plan(SAME_MINUTE[1], APRIL + 16 * DAY, "platinum", 9000))
        old(on_subscription(CancelSubscription, THREE_QUARTERS))
        assert change_invoice_ids(old.ledger) == ["sub-1/1/change-0190a1b2", "sub-1/1/change-1"]
        assert credit_notes(old.ledger) == [
            ("sub-1/1", 1500),
            ("sub-1/1/change-0190a1b2", 2800),  # 14/30 of 60.00
            ("sub-1/1/change-1", 2250),  # 7.5/30 of 90.00
        ]
        assert credit_note_ids(old.ledger)[1:] == [
            "sub-1/1/change-0190a1b2/credit-1",
            "sub-1/1/change-1/credit-1",
        ]
