"""Specification of receivables: the clock's invoices and overdue marks, payments, credit, failures.

Every scenario sends commands through the Sender, as the consumer would, and reads the answer
from the stored events its outcome names.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from commands.handlers import Outcome
from ledger.account import Account
from ledger.application import BillingLedger, event_id
from ledger.calendar import IntervalUnit
from ledger.clock import MAX_CYCLES_PER_ADVANCE
from ledger.postings import LedgerAccount, Posting, Side, balance_of
from ledger.receivables import Allocation, ChargeFailureReason
from tests.unit.builders import (
    ISSUED_AT,
    Sender,
    account_events,
    advance_clock,
    fail_charge,
    open_account,
    record_payment,
    subscribe,
)

ONE_MILLISECOND = timedelta(milliseconds=1)
# The events this specification is about. A tick or a failed charge may also cause dunning
# and lifecycle events (reminders, retries, suspensions): those are specified elsewhere.
RECEIVABLES_EVENTS = (
    Account.InvoiceIssued,
    Account.InvoiceOverdue,
    Account.PaymentReceived,
    Account.CreditApplied,
    Account.InvoicePaid,
    Account.ChargeFailed,
)


def at(year: int, month: int, day: int, hour: int = 9, minute: int = 30) -> datetime:
    """A UTC time; by default the time of day ISSUED_AT (2024-01-31 09:30) has."""
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def all_answered(ledger: BillingLedger, outcome: Outcome) -> list[Any]:
    """The stored events the outcome names, in its order."""
    stored = {
        event_id(event.originator_id, event.originator_version): event
        for event in account_events(ledger, outcome.delivery.command.account_id)
    }
    return [stored[identity] for identity in outcome.event_ids]


def answered(ledger: BillingLedger, outcome: Outcome) -> list[Any]:
    """The receivables events among those the outcome names, in its order."""
    return [e for e in all_answered(ledger, outcome) if isinstance(e, RECEIVABLES_EVENTS)]


def types_of(events: list[Any]) -> list[type]:
    """The class of each event."""
    return [type(event) for event in events]


def of_type(events: list[Any], event_type: type) -> list[Any]:
    """The events of one class."""
    return [event for event in events if isinstance(event, event_type)]


def rejection_of(outcome: Outcome) -> tuple[str, str | None]:
    """The code and field of a rejected outcome."""
    assert outcome.rejection is not None, outcome
    assert outcome.event_ids == ()
    return outcome.rejection.code, outcome.rejection.field


def the_account(ledger: BillingLedger, account_id: str = "acc-1") -> Account:
    """The stored account, read back from its events."""
    account = ledger.account(account_id)
    assert account is not None
    return account


def postings_of(ledger: BillingLedger, account_id: str = "acc-1") -> list[Posting]:
    """Every posting of every stored event of the account."""
    return [p for e in account_events(ledger, account_id) for p in getattr(e, "postings", ())]


def receivable_of(ledger: BillingLedger, account_id: str = "acc-1") -> int:
    """What the customer owes by the postings: the debit balance of `receivable`."""
    return balance_of(LedgerAccount.RECEIVABLE, postings_of(ledger, account_id))


def customer_credit_of(ledger: BillingLedger, account_id: str = "acc-1") -> int:
    """What the ledger owes the customer by the postings: `customer_credit`'s credit balance."""
    return -balance_of(LedgerAccount.CUSTOMER_CREDIT, postings_of(ledger, account_id))


def outstanding(ledger: BillingLedger, account_id: str = "acc-1") -> dict[str, int]:
    """What is still to be paid of each invoice."""
    return {
        i.invoice_id: i.outstanding_minor for i in the_account(ledger, account_id).invoices.values()
    }


def assert_balances_agree(ledger: BillingLedger, account_id: str = "acc-1") -> None:
    """Receivable is what the invoices leave outstanding; customer credit is the account's."""
    assert receivable_of(ledger, account_id) == sum(outstanding(ledger, account_id).values())
    assert customer_credit_of(ledger, account_id) == the_account(ledger, account_id).credit_minor


def assert_nothing_happened(ledger: BillingLedger, outcome: Outcome, version: int) -> None:
    """The command was accepted without events, and the account is still at `version`."""
    assert (outcome.rejection, outcome.event_ids) == (None, ())
    assert the_account(ledger).version == version


@pytest.fixture(name="monthly_account")
def fixture_monthly_account(send: Sender) -> None:
    """acc-1 subscribed at ISSUED_AT to 15.00 EUR monthly, due in 14 days: sub-1/1 is issued."""
    send(open_account(), subscribe())


@pytest.mark.usefixtures("monthly_account")
class TestAdvanceClockInvoicing:
    """The clock invoices every billing cycle begun by its time, one invoice per cycle."""

    def test_each_monthly_cycle_begun_is_invoiced_with_its_period_and_due_date(
        self, ledger: BillingLedger, send: Sender
    ) -> None:
        """Cycles begun on 29 Feb, 31 Mar and 30 Apr (the tick itself) are sub-1/2, /3 and /4,
        each due 14 days after its issue by this tick."""
        (outcome,) = send(advance_clock(issued_at=at(2024, 4, 30)))
        issued = of_type(answered(ledger, outcome), Account.InvoiceIssued)
        assert [
            (i.invoice_id, i.cycle, i.period_start, i.period_end, i.due_at) for i in issued
        ] == [
            ("sub-1/2", 1, at(2024, 2, 29), at(2024, 3, 31), at(2024, 5, 14)),
            ("sub-1/3", 2, at(2024, 3, 31), at(2024, 4, 30), at(2024, 5, 14)),
            ("sub-1/4", 3, at(2024, 4, 30), at(2024, 5, 31), at(2024, 5, 14)),
        ]

    def test_each_invoice_bills_the_price_to_receivable_and_revenue(
        self, ledger: BillingLedger, send: Sender
    ) -> None:
        """Receivable is debited and revenue credited with the price, per invoice, in EUR."""
        (outcome,) = send(advance_clock(issued_at=at(2024, 3, 31)))
        for invoice in of_type(answered(ledger, outcome), Account.InvoiceIssued):
            assert (invoice.amount_minor, invoice.currency) == (1500, "EUR")
            assert list(invoice.postings) == [
                Posting("receivable", Side.DEBIT, 1500),
                Posting("revenue", Side.CREDIT, 1500),
            ]

    def test_a_cycle_begins_at_its_start_to_the_millisecond(
        self, ledger: BillingLedger, send: Sender
    ) -> None:
        """One millisecond before 29 Feb 09:30 nothing is due; at 09:30 sub-1/2 is issued."""
        (early,) = send(advance_clock(issued_at=at(2024, 2, 29) - ONE_MILLISECOND))
        (on_time,) = send(advance_clock(issued_at=at(2024, 2, 29)))
        assert of_type(answered(ledger, early), Account.InvoiceIssued) == []
        assert [
            i.invoice_id for i in of_type(answered(ledger, on_time), Account.InvoiceIssued)
        ] == ["sub-1/2"]

    def test_the_invoices_are_held_by_the_account_unpaid(
        self, ledger: BillingLedger, send: Sender
    ) -> None:
        """The account lists each invoice with its amount, due date and nothing paid."""
        send(advance_clock(issued_at=at(2024, 2, 29)))
        invoice = the_account(ledger).invoices["sub-1/2"]
        assert (invoice.amount_minor, invoice.due_at, invoice.paid_minor) == (
            1500,
            at(2024, 3, 14),
            0,
        )
        assert the_account(ledger).subscriptions["sub-1"].cycles_invoiced == 2

    def test_each_subscription_is_invoiced_on_its_own_cycle(
        self, ledger: BillingLedger, send: Sender
    ) -> None:
        """A 10-day plan next to the monthly one: invoice ids count per subscription."""
        send(subscribe(subscription_id="sub-2", interval_unit=IntervalUnit.DAY, interval_count=10))
        (outcome,) = send(advance_clock(issued_at=at(2024, 3, 1)))
        issued = of_type(answered(ledger, outcome), Account.InvoiceIssued)
        assert [(i.invoice_id, i.period_start) for i in issued] == [
            ("sub-1/2", at(2024, 2, 29)),
            ("sub-2/2", at(2024, 2, 10)),
            ("sub-2/3", at(2024, 2, 20)),
            ("sub-2/4", at(2024, 3, 1)),
        ]

    def test_the_outcome_names_exactly_the_events_stored(
        self, ledger: BillingLedger, send: Sender
    ) -> None:
        """The receipt of an AdvanceClock lists the ids of the events it caused, in order."""
        version_before = the_account(ledger).version
        (outcome,) = send(advance_clock(issued_at=at(2024, 3, 31)))
        stored = account_events(ledger)[version_before:]
        assert outcome.rejection is None
        assert outcome.event_ids == tuple(
            event_id(e.originator_id, e.originator_version) for e in stored
        )
        receipt = ledger.receipt(outcome.delivery.command.command_id)
        assert receipt is not None
        assert (receipt.command_type, receipt.event_ids) == ("AdvanceClock", outcome.event_ids)


class TestBillingIntervals:
    """Cycles start on the anchor's calendar day, every N units, and end where the next begins."""

    @pytest.mark.parametrize(
        ("unit", "count", "ticks_at", "expected_starts"),
        [
            (
                IntervalUnit.MONTH,
                3,
                at(2024, 10, 31),
                [at(2024, 4, 30), at(2024, 7, 31), at(2024, 10, 31)],
            ),
            (IntervalUnit.YEAR, 1, at(2026, 1, 31), [at(2025, 1, 31), at(2026, 1, 31)]),
            (
                IntervalUnit.DAY,
                10,
                at(2024, 3, 11),
                [at(2024, 2, 10), at(2024, 2, 20), at(2024, 3, 1), at(2024, 3, 11)],
            ),
        ],
        ids=["every-3-months", "yearly", "every-10-days"],
    )
    def test_every_cycle_begun_is_invoiced(
        self,
        ledger: BillingLedger,
        send: Sender,
        unit: IntervalUnit,
        count: int,
        ticks_at: datetime,
        expected_starts: list[datetime],
    ) -> None:
        """Invoices sub-1/2 on cover the cycles begun after the first, back to back, each due
        14 days after the tick that issues it."""
        send(open_account(), subscribe(interval_unit=unit, interval_count=count))
        (outcome,) = send(advance_clock(issued_at=ticks_at))
        issued = of_type(answered(ledger, outcome), Account.InvoiceIssued)
        assert [i.invoice_id for i in issued] == [f"sub-1/{n + 2}" for n in range(len(issued))]
        assert [i.period_start for i in issued] == expected_starts
        assert [i.period_end for i in issued[:-1]] == expected_starts[1:]
        assert [i.due_at for i in issued] == [ticks_at + timedelta(days=14)] * len(issued)

    def test_a_yearly_plan_from_29_february_renews_on_28_february_until_a_leap_year(
        self, ledger: BillingLedger, send: Sender
    ) -> None:
        """2025, 2026 and 2027 renew on 28 February, 2028 on the 29th again."""
        send(open_account(), subscribe(issued_at=at(2024, 2, 29), interval_unit=IntervalUnit.YEAR))
        (outcome,) = send(advance_clock(issued_at=at(2028, 2, 29)))
        issued = of_type(answered(ledger, outcome), Account.InvoiceIssued)
        assert [(i.invoice_id, i.period_start) for i in issued] == [
            ("sub-1/2", at(2025, 2, 28)),
            ("sub-1/3", at(2026, 2, 28)),
            ("sub-1/4", at(2027, 2, 28)),
            ("sub-1/5", at(2028, 2, 29)),
        ]

    def test_due_dates_count_days_until_due_from_the_period_start(
        self, ledger: BillingLedger, send: Sender
    ) -> None:
        """With 0 days until due an invoice is due when its period starts; with 30, 30 days on."""
        send(
            open_account(),
            subscribe(days_until_due=0),
            subscribe(subscription_id="sub-2", days_until_due=30),
        )
        send(advance_clock(issued_at=at(2024, 2, 29)))
        invoices = the_account(ledger).invoices
        assert invoices["sub-1/2"].due_at == at(2024, 2, 29)
        assert invoices["sub-2/2"].due_at == at(2024, 3, 30)


class TestTrial:
    """A trial delays the first invoice to its end, and anchors the cycles there."""

    def test_the_first_invoice_is_issued_when_the_trial_ends(
        self, ledger: BillingLedger, send: Sender
    ) -> None:
        """14 days from 31 Jan 09:30: nothing a millisecond before, sub-1/1 at 14 Feb 09:30."""
        send(open_account(), subscribe(trial_days=14))
        (during,) = send(advance_clock(issued_at=at(2024, 2, 14) - ONE_MILLISECOND))
        (at_the_end,) = send(advance_clock(issued_at=at(2024, 2, 14)))
        assert answered(ledger, during) == []
        (invoice,) = answered(ledger, at_the_end)
        assert isinstance(invoice, Account.InvoiceIssued)
        assert (invoice.invoice_id, invoice.cycle) == ("sub-1/1", 0)
        assert (invoice.period_start, invoice.period_end, invoice.due_at) == (
            at(2024, 2, 14),
            at(2024, 3, 14),
            at(2024, 2, 28),
        )

    def test_later_cycles_are_anchored_on_the_end_of_the_trial(
        self, ledger: BillingLedger, send: Sender
    ) -> None:
        """After a trial ending 14 Feb, cycles begin on the 14th of each month."""
        send(open_account(), subscribe(trial_days=14))
        (outcome,) = send(advance_clock(issued_at=at(2024, 4, 14)))
        issued = of_type(answered(ledger, outcome), Account.InvoiceIssued)
        assert [(i.invoice_id, i.period_start) for i in issued] == [
            ("sub-1/1", at(2024, 2, 14)),
            ("sub-1/2", at(2024, 3, 14)),
            ("sub-1/3", at(2024, 4, 14)),
        ]


class TestNothingDue:
    """A tick that finds nothing due is accepted and records nothing."""

    @pytest.mark.usefixtures("monthly_account")
    def test_a_time_before_the_next_cycle_starts(self, ledger: BillingLedger, send: Sender) -> None:
        """A day after subscribing, the second cycle has not begun and nothing is due."""
        (outcome,) = send(advance_clock(issued_at=ISSUED_AT + timedelta(days=1)))
        assert_nothing_happened(ledger, outcome, version=3)

    @pytest.mark.usefixtures("monthly_account")
    def test_a_time_before_the_subscription(self, ledger: BillingLedger, send: Sender) -> None:
        """A clock earlier than any cycle start finds nothing."""
        (outcome,) = send(advance_clock(issued_at=ISSUED_AT - timedelta(days=30)))
        assert_nothing_happened(ledger, outcome, version=3)

    def test_an_account_without_subscriptions(self, ledger: BillingLedger, send: Sender) -> None:
        """No subscription, no invoice."""
        send(open_account())
        (outcome,) = send(advance_clock(issued_at=at(2030, 1, 1)))
        assert_nothing_happened(ledger, outcome, version=1)

    @pytest.mark.usefixtures("monthly_account")
    def test_a_time_earlier_than_a_previous_tick(self, ledger: BillingLedger, send: Sender) -> None:
        """After a tick on 30 Apr, ticks on 1 Mar and on 30 Apr again change nothing."""
        send(advance_clock(issued_at=at(2024, 4, 30)))
        version = the_account(ledger).version
        earlier, same_time = send(
            advance_clock(issued_at=at(2024, 3, 1)), advance_clock(issued_at=at(2024, 4, 30))
        )
        assert_nothing_happened(ledger, earlier, version)
        assert_nothing_happened(ledger, same_time, version)

    def test_a_back_dated_subscription_is_caught_up_by_the_next_tick_whatever_its_time(
        self, ledger: BillingLedger, send: Sender
    ) -> None:
        """Tick 31 Jan 2025, subscribe as of 31 Jan 2024, tick 10 May 2024: Feb-Apr invoiced.

        The ledger keeps no clock of its own: a tick does what has fallen due by its time and
        was not done yet.
        """
        send(open_account(), advance_clock(issued_at=at(2025, 1, 31)), subscribe())
        (earlier,) = send(advance_clock(issued_at=at(2024, 5, 10)))
        assert [
            i.invoice_id for i in of_type(answered(ledger, earlier), Account.InvoiceIssued)
        ] == ["sub-1/2", "sub-1/3", "sub-1/4"]


@pytest.mark.usefixtures("monthly_account")
class TestOverdue:
    """An invoice past its due date and not fully paid is marked overdue, once."""

    def test_an_unpaid_invoice_past_due_is_marked_overdue(
        self, ledger: BillingLedger, send: Sender
    ) -> None:
        """sub-1/1, due 14 Feb, is overdue on 20 Feb with all of it outstanding."""
        (outcome,) = send(advance_clock(issued_at=at(2024, 2, 20)))
        (overdue,) = answered(ledger, outcome)
        assert isinstance(overdue, Account.InvoiceOverdue)
        assert (overdue.invoice_id, overdue.outstanding_minor, overdue.currency) == (
            "sub-1/1",
            1500,
            "EUR",
        )
        assert (overdue.due_at, overdue.timestamp) == (at(2024, 2, 14), at(2024, 2, 20))
        assert the_account(ledger).invoices["sub-1/1"].overdue is True

    def test_an_invoice_is_marked_overdue_only_once(
        self, ledger: BillingLedger, send: Sender
    ) -> None:
        """A later tick does not mark sub-1/1 again."""
        send(advance_clock(issued_at=at(2024, 2, 20)))
        (later,) = send(advance_clock(issued_at=at(2024, 2, 25)))
        assert answered(ledger, later) == []

    def test_at_its_due_time_an_invoice_is_not_yet_overdue(
        self, ledger: BillingLedger, send: Sender
    ) -> None:
        """Due at 14 Feb 09:30: not overdue then, overdue a millisecond later."""
        (on_time,) = send(advance_clock(issued_at=at(2024, 2, 14)))
        (late,) = send(advance_clock(issued_at=at(2024, 2, 14) + ONE_MILLISECOND))
        assert answered(ledger, on_time) == []
        assert types_of(answered(ledger, late)) == [Account.InvoiceOverdue]

    def test_a_paid_invoice_is_never_overdue(self, ledger: BillingLedger, send: Sender) -> None:
        """Paid in full before its due date, sub-1/1 is not marked on any later tick."""
        send(record_payment(amount_minor=1500))
        (outcome,) = send(advance_clock(issued_at=at(2024, 2, 20)))
        assert answered(ledger, outcome) == []
        assert the_account(ledger).invoices["sub-1/1"].overdue is False

    def test_a_partly_paid_invoice_is_overdue_with_what_remains(
        self, ledger: BillingLedger, send: Sender
    ) -> None:
        """5.00 of 15.00 paid: overdue with 10.00 outstanding."""
        send(record_payment(amount_minor=500))
        (outcome,) = send(advance_clock(issued_at=at(2024, 2, 20)))
        (overdue,) = answered(ledger, outcome)
        assert (overdue.invoice_id, overdue.outstanding_minor) == ("sub-1/1", 1000)

    def test_invoices_issued_late_are_not_born_overdue(
        self, ledger: BillingLedger, send: Sender
    ) -> None:
        """On 30 Apr: three invoices issued late, due 14 May; only sub-1/1 is marked overdue."""
        (outcome,) = send(advance_clock(issued_at=at(2024, 4, 30)))
        events = answered(ledger, outcome)
        assert types_of(events) == [Account.InvoiceIssued] * 3 + [Account.InvoiceOverdue]
        assert [e.invoice_id for e in of_type(events, Account.InvoiceOverdue)] == ["sub-1/1"]
        issued = of_type(events, Account.InvoiceIssued)
        assert {i.due_at for i in issued} == {at(2024, 5, 14)}

    def test_marking_overdue_moves_no_money(self, ledger: BillingLedger, send: Sender) -> None:
        """The mark has no postings; receivable stays what is outstanding."""
        (outcome,) = send(advance_clock(issued_at=at(2024, 2, 20)))
        assert all(not getattr(e, "postings", ()) for e in all_answered(ledger, outcome))
        assert receivable_of(ledger) == 1500


class TestTooManyCycles:
    """One tick issues at most 400 invoices: a larger step is rejected and changes nothing."""

    def test_more_than_400_cycles_at_once_are_rejected_on_issued_at(
        self, ledger: BillingLedger, send: Sender
    ) -> None:
        """A daily plan ticked 401 days on: too_many_cycles, nothing issued."""
        send(open_account(), subscribe(interval_unit=IntervalUnit.DAY))
        (outcome,) = send(advance_clock(issued_at=ISSUED_AT + timedelta(days=401)))
        assert rejection_of(outcome) == ("too_many_cycles", "issued_at")
        assert outcome.rejection is not None
        assert "401" in outcome.rejection.message
        assert "smaller steps" in outcome.rejection.message
        assert the_account(ledger).version == 3
        assert list(the_account(ledger).invoices) == ["sub-1/1"]

    def test_400_cycles_at_once_are_accepted(self, ledger: BillingLedger, send: Sender) -> None:
        """Exactly the limit: sub-1/2 to sub-1/401 are issued."""
        send(open_account(), subscribe(interval_unit=IntervalUnit.DAY))
        (outcome,) = send(advance_clock(issued_at=ISSUED_AT + timedelta(days=400)))
        issued = of_type(answered(ledger, outcome), Account.InvoiceIssued)
        assert len(issued) == MAX_CYCLES_PER_ADVANCE == 400
        assert (issued[0].invoice_id, issued[-1].invoice_id) == ("sub-1/2", "sub-1/401")

    def test_the_limit_counts_the_cycles_of_every_subscription_together(
        self, ledger: BillingLedger, send: Sender
    ) -> None:
        """Two daily plans of 201 cycles each make 402: rejected; 200 each make 400: accepted."""
        send(
            open_account(),
            subscribe(interval_unit=IntervalUnit.DAY),
            subscribe(subscription_id="sub-2", interval_unit=IntervalUnit.DAY),
        )
        (too_far,) = send(advance_clock(issued_at=ISSUED_AT + timedelta(days=201)))
        (far_enough,) = send(advance_clock(issued_at=ISSUED_AT + timedelta(days=200)))
        assert rejection_of(too_far) == ("too_many_cycles", "issued_at")
        assert far_enough.rejection is None
        assert len(the_account(ledger).invoices) == 2 + 400

    def test_smaller_steps_get_there(self, ledger: BillingLedger, send: Sender) -> None:
        """Rejected at 401 days, the same time is reached by way of 200 days.

        Credit paid in advance settles every invoice, so that none stays unpaid.
        """
        send(
            open_account(),
            record_payment(amount_minor=402 * 1500),
            subscribe(interval_unit=IntervalUnit.DAY),
        )
        send(advance_clock(issued_at=ISSUED_AT + timedelta(days=401)))
        first, second = send(
            advance_clock(issued_at=ISSUED_AT + timedelta(days=200)),
            advance_clock(issued_at=ISSUED_AT + timedelta(days=401)),
        )
        assert (first.rejection, second.rejection) == (None, None)
        assert outstanding(ledger) == {f"sub-1/{n}": 0 for n in range(1, 403)}
        assert the_account(ledger).credit_minor == 0


@pytest.mark.usefixtures("monthly_account")
class TestPaymentSettlesInvoices:
    """A payment settles the named invoice first, then open invoices oldest due first."""

    def test_an_exact_payment_settles_the_invoice(
        self, ledger: BillingLedger, send: Sender
    ) -> None:
        """PaymentReceived allocates 15.00 to sub-1/1, then InvoicePaid follows."""
        (outcome,) = send(record_payment(amount_minor=1500, payment_id="pay-1"))
        received, paid = answered(ledger, outcome)
        assert isinstance(received, Account.PaymentReceived)
        assert (received.payment_id, received.amount_minor, received.currency) == (
            "pay-1",
            1500,
            "EUR",
        )
        assert list(received.allocations) == [Allocation("sub-1/1", 1500)]
        assert received.credited_minor == 0
        assert isinstance(paid, Account.InvoicePaid)
        assert (paid.invoice_id, paid.amount_minor, paid.currency) == ("sub-1/1", 1500, "EUR")
        assert outstanding(ledger) == {"sub-1/1": 0}

    def test_cash_is_debited_and_receivable_credited(
        self, ledger: BillingLedger, send: Sender
    ) -> None:
        """The cash account is the payment method's: cash:bank_transfer."""
        (outcome,) = send(record_payment(amount_minor=1500, payment_method_kind="bank_transfer"))
        received = answered(ledger, outcome)[0]
        assert list(received.postings) == [
            Posting("cash:bank_transfer", Side.DEBIT, 1500),
            Posting("receivable", Side.CREDIT, 1500),
        ]
        assert receivable_of(ledger) == 0

    def test_a_partial_payment_leaves_the_rest_outstanding(
        self, ledger: BillingLedger, send: Sender
    ) -> None:
        """5.00 of 15.00: 10.00 outstanding, no InvoicePaid."""
        (outcome,) = send(record_payment(amount_minor=500))
        assert types_of(answered(ledger, outcome)) == [Account.PaymentReceived]
        assert outstanding(ledger) == {"sub-1/1": 1000}
        assert the_account(ledger).invoices["sub-1/1"].paid_minor == 500

    def test_payments_add_up_until_the_invoice_is_paid(
        self, ledger: BillingLedger, send: Sender
    ) -> None:
        """5.00 then 10.00: the second payment settles sub-1/1."""
        send(record_payment(amount_minor=500))
        (outcome,) = send(record_payment(amount_minor=1000))
        assert types_of(answered(ledger, outcome)) == [Account.PaymentReceived, Account.InvoicePaid]
        assert outstanding(ledger) == {"sub-1/1": 0}

    def test_without_an_invoice_named_the_oldest_due_is_settled_first(
        self, ledger: BillingLedger, send: Sender
    ) -> None:
        """20.00 over sub-1/1, /2, /3: 15.00 to sub-1/1, 5.00 to sub-1/2."""
        send(advance_clock(issued_at=at(2024, 3, 31)))
        (outcome,) = send(record_payment(amount_minor=2000))
        received, paid = answered(ledger, outcome)
        assert list(received.allocations) == [
            Allocation("sub-1/1", 1500),
            Allocation("sub-1/2", 500),
        ]
        assert paid.invoice_id == "sub-1/1"
        assert outstanding(ledger) == {"sub-1/1": 0, "sub-1/2": 1000, "sub-1/3": 1500}

    def test_the_named_invoice_is_settled_first_then_the_oldest_due(
        self, ledger: BillingLedger, send: Sender
    ) -> None:
        """20.00 naming sub-1/3: 15.00 to sub-1/3, then 5.00 to sub-1/1."""
        send(advance_clock(issued_at=at(2024, 3, 31)))
        (outcome,) = send(record_payment(amount_minor=2000, invoice_id="sub-1/3"))
        received = answered(ledger, outcome)[0]
        assert list(received.allocations) == [
            Allocation("sub-1/3", 1500),
            Allocation("sub-1/1", 500),
        ]
        assert outstanding(ledger) == {"sub-1/1": 1000, "sub-1/2": 1500, "sub-1/3": 0}

    def test_oldest_due_means_due_date_not_issue_order(
        self, ledger: BillingLedger, send: Sender
    ) -> None:
        """sub-2/1, issued a day later but due at once, is settled before sub-1/1."""
        send(subscribe(subscription_id="sub-2", issued_at=at(2024, 2, 1), days_until_due=0))
        (outcome,) = send(record_payment(amount_minor=1500))
        assert list(answered(ledger, outcome)[0].allocations) == [Allocation("sub-2/1", 1500)]


class TestOverpaymentAndCredit:
    """What a payment does not settle becomes customer credit, applied to the next invoices."""

    @pytest.mark.usefixtures("monthly_account")
    def test_an_overpayment_becomes_customer_credit(
        self, ledger: BillingLedger, send: Sender
    ) -> None:
        """20.00 on a 15.00 invoice: 5.00 credited, and the entry balances."""
        (outcome,) = send(record_payment(amount_minor=2000))
        received, paid = answered(ledger, outcome)
        assert received.credited_minor == 500
        assert list(received.postings) == [
            Posting("cash:credit_card", Side.DEBIT, 2000),
            Posting("receivable", Side.CREDIT, 1500),
            Posting("customer_credit", Side.CREDIT, 500),
        ]
        assert sum(p.signed_minor for p in received.postings) == 0
        assert isinstance(paid, Account.InvoicePaid)
        assert the_account(ledger).credit_minor == 500
        assert customer_credit_of(ledger) == 500

    def test_a_payment_with_no_open_invoice_becomes_credit_entirely(
        self, ledger: BillingLedger, send: Sender
    ) -> None:
        """No allocations; cash debited, customer credit credited with all of it."""
        send(open_account())
        (outcome,) = send(record_payment(amount_minor=700))
        (received,) = answered(ledger, outcome)
        assert (list(received.allocations), received.credited_minor) == ([], 700)
        assert list(received.postings) == [
            Posting("cash:credit_card", Side.DEBIT, 700),
            Posting("customer_credit", Side.CREDIT, 700),
        ]
        assert the_account(ledger).credit_minor == 700

    @pytest.mark.usefixtures("monthly_account")
    def test_credit_is_applied_to_the_next_invoice_the_clock_issues(
        self, ledger: BillingLedger, send: Sender
    ) -> None:
        """5.00 credit settles part of sub-1/2: 10.00 outstanding, no credit left, not paid."""
        send(record_payment(amount_minor=2000))
        (outcome,) = send(advance_clock(issued_at=at(2024, 2, 29)))
        issued, applied = answered(ledger, outcome)
        assert (type(issued), type(applied)) == (Account.InvoiceIssued, Account.CreditApplied)
        assert (applied.invoice_id, applied.amount_minor, applied.currency) == (
            "sub-1/2",
            500,
            "EUR",
        )
        assert list(applied.postings) == [
            Posting("customer_credit", Side.DEBIT, 500),
            Posting("receivable", Side.CREDIT, 500),
        ]
        assert outstanding(ledger)["sub-1/2"] == 1000
        assert the_account(ledger).credit_minor == 0

    @pytest.mark.usefixtures("monthly_account")
    def test_credit_that_covers_an_invoice_pays_it(
        self, ledger: BillingLedger, send: Sender
    ) -> None:
        """20.00 credit: sub-1/2 is paid from it (InvoicePaid), 5.00 is left for sub-1/3."""
        send(record_payment(amount_minor=1500 + 2000))
        (outcome,) = send(advance_clock(issued_at=at(2024, 2, 29)))
        events = answered(ledger, outcome)
        assert types_of(events) == [
            Account.InvoiceIssued,
            Account.CreditApplied,
            Account.InvoicePaid,
        ]
        _issued, applied, paid = events
        assert applied.amount_minor == 1500
        assert (paid.invoice_id, paid.amount_minor) == ("sub-1/2", 1500)
        assert the_account(ledger).credit_minor == 500
        send(advance_clock(issued_at=at(2024, 3, 31)))
        assert outstanding(ledger) == {"sub-1/1": 0, "sub-1/2": 0, "sub-1/3": 1000}

    def test_credit_is_applied_to_the_invoice_issued_on_subscribing(
        self, ledger: BillingLedger, send: Sender
    ) -> None:
        """Credit paid in before subscribing settles the first invoice at once."""
        send(open_account(), record_payment(amount_minor=2000))
        (outcome,) = send(subscribe())
        assert types_of(answered(ledger, outcome)) == [
            Account.InvoiceIssued,
            Account.CreditApplied,
            Account.InvoicePaid,
        ]
        assert (outstanding(ledger), the_account(ledger).credit_minor) == ({"sub-1/1": 0}, 500)

    @pytest.mark.usefixtures("monthly_account")
    def test_an_invoice_settled_by_credit_is_never_overdue(
        self, ledger: BillingLedger, send: Sender
    ) -> None:
        """sub-1/2, paid from credit, is not marked when its due date passes."""
        send(record_payment(amount_minor=3000))
        send(advance_clock(issued_at=at(2024, 2, 29)))
        (outcome,) = send(advance_clock(issued_at=at(2024, 3, 20)))
        assert answered(ledger, outcome) == []


@pytest.mark.usefixtures("monthly_account")
class TestPaymentRejections:
    """A payment that breaks a rule is rejected naming the rule and field, and moves nothing."""

    @pytest.mark.parametrize(
        ("details", "code", "field"),
        [
            ({"amount_minor": 0}, "non_positive_amount", "amount_minor"),
            ({"amount_minor": -1500}, "non_positive_amount", "amount_minor"),
            ({"currency": "USD"}, "currency_mismatch", "currency"),
            ({"currency": "XXX"}, "unsupported_currency", "currency"),
            ({"currency": "eur"}, "unsupported_currency", "currency"),
            ({"payment_method_kind": "Credit Card"}, "invalid_payment", "payment_method_kind"),
            ({"payment_method_kind": "credit card"}, "invalid_payment", "payment_method_kind"),
            ({"payment_method_kind": ""}, "invalid_payment", "payment_method_kind"),
            ({"payment_method_kind": "a" * 41}, "invalid_payment", "payment_method_kind"),
            ({"invoice_id": "sub-1/9"}, "unknown_invoice", "invoice_id"),
            ({"payment_id": " "}, "invalid_payment", "payment_id"),
        ],
        ids=[
            "zero-amount",
            "negative-amount",
            "other-currency",
            "unsupported-currency",
            "lower-case-currency",
            "method-with-capitals",
            "method-with-space",
            "empty-method",
            "too-long-method",
            "unknown-invoice",
            "blank-payment-id",
        ],
    )
    def test_a_broken_rule_is_rejected_and_changes_nothing(
        self,
        ledger: BillingLedger,
        send: Sender,
        details: dict[str, Any],
        code: str,
        field: str,
    ) -> None:
        """The rejection has the rule's code and the offending field; the account is as it was."""
        command = record_payment(**({"amount_minor": 1500} | details))
        (outcome,) = send(command)
        assert rejection_of(outcome) == (code, field)
        assert the_account(ledger).version == 3
        assert outstanding(ledger) == {"sub-1/1": 1500}
        receipt = ledger.receipt(command.command_id)
        assert receipt is not None
        assert receipt.rejection == outcome.rejection

    def test_a_payment_id_already_recorded_is_a_duplicate(
        self, ledger: BillingLedger, send: Sender
    ) -> None:
        """The same payment_id under a new command_id: duplicate_payment, paid once only."""
        send(record_payment(amount_minor=500, payment_id="pay-1"))
        (outcome,) = send(record_payment(amount_minor=500, payment_id="pay-1"))
        assert rejection_of(outcome) == ("duplicate_payment", "payment_id")
        assert outcome.rejection is not None
        assert "'pay-1'" in outcome.rejection.message
        assert outstanding(ledger) == {"sub-1/1": 1000}
        assert the_account(ledger).payment_ids == {"pay-1"}

    def test_a_duplicate_in_the_same_batch_is_rejected_too(
        self, ledger: BillingLedger, send: Sender
    ) -> None:
        """The second payment sees the first one recorded earlier in the batch."""
        first, second = send(
            record_payment(amount_minor=500, payment_id="pay-1"),
            record_payment(amount_minor=500, payment_id="pay-1"),
        )
        assert first.rejection is None
        assert rejection_of(second) == ("duplicate_payment", "payment_id")

    def test_naming_a_paid_invoice_is_recorded_as_credit(
        self, ledger: BillingLedger, send: Sender
    ) -> None:
        """The money arrived: nothing else is open, so the 15.00 becomes credit."""
        send(record_payment(amount_minor=1500))
        (outcome,) = send(record_payment(amount_minor=1500, invoice_id="sub-1/1"))
        assert outcome.rejection is None
        assert the_account(ledger).credit_minor == 1500

    def test_a_payment_for_an_unknown_account_is_rejected(
        self, ledger: BillingLedger, send: Sender
    ) -> None:
        """unknown_account on account_id; no account comes into being."""
        (outcome,) = send(record_payment("acc-404", amount_minor=1500))
        assert rejection_of(outcome) == ("unknown_account", "account_id")
        assert ledger.account("acc-404") is None

    def test_redelivering_a_payment_does_not_pay_twice(
        self, ledger: BillingLedger, send: Sender
    ) -> None:
        """The same command again is a redelivery answered with the first events."""
        payment = record_payment(amount_minor=500)
        (first,) = send(payment)
        (again,) = send(payment)
        assert again.redelivery
        assert (again.event_ids, again.rejection) == (first.event_ids, None)
        assert outstanding(ledger) == {"sub-1/1": 1000}


@pytest.mark.usefixtures("monthly_account")
class TestFailCharge:
    """A failed charge is counted per invoice with its reason, and moves no money."""

    def test_attempts_are_counted_per_invoice(self, ledger: BillingLedger, send: Sender) -> None:
        """sub-1/1 fails twice (attempts 1, 2), then sub-1/2 once (attempt 1)."""
        send(advance_clock(issued_at=at(2024, 2, 29)))
        outcomes = send(
            fail_charge(invoice_id="sub-1/1"),
            fail_charge(invoice_id="sub-1/1"),
            fail_charge(invoice_id="sub-1/2"),
        )
        failures = [event for outcome in outcomes for event in answered(ledger, outcome)]
        assert types_of(failures) == [Account.ChargeFailed] * 3
        assert [(f.invoice_id, f.attempt) for f in failures] == [
            ("sub-1/1", 1),
            ("sub-1/1", 2),
            ("sub-1/2", 1),
        ]
        assert the_account(ledger).failed_charges == {"sub-1/1": 2, "sub-1/2": 1}

    def test_the_reason_and_payment_method_are_recorded(
        self, ledger: BillingLedger, send: Sender
    ) -> None:
        """An expired debit card is recorded as such."""
        (outcome,) = send(
            fail_charge(
                invoice_id="sub-1/1",
                reason=ChargeFailureReason.CARD_EXPIRED,
                payment_method_kind="debit_card",
            )
        )
        (failed,) = answered(ledger, outcome)
        assert (failed.reason, failed.payment_method_kind) == ("card_expired", "debit_card")

    def test_a_failed_charge_moves_no_money(self, ledger: BillingLedger, send: Sender) -> None:
        """No postings; receivable, credit and the invoice are as they were."""
        send(record_payment(amount_minor=500))
        (outcome,) = send(fail_charge(invoice_id="sub-1/1"))
        assert all(not getattr(e, "postings", ()) for e in all_answered(ledger, outcome))
        assert (receivable_of(ledger), customer_credit_of(ledger)) == (1000, 0)
        assert outstanding(ledger) == {"sub-1/1": 1000}

    @pytest.mark.parametrize(
        ("details", "code", "field"),
        [
            ({"invoice_id": "sub-1/9"}, "unknown_invoice", "invoice_id"),
            ({"payment_method_kind": "Credit Card"}, "invalid_payment", "payment_method_kind"),
            ({"account_id": "acc-404"}, "unknown_account", "account_id"),
        ],
        ids=["unknown-invoice", "bad-method", "unknown-account"],
    )
    def test_a_broken_rule_is_rejected(
        self,
        ledger: BillingLedger,
        send: Sender,
        details: dict[str, Any],
        code: str,
        field: str,
    ) -> None:
        """Each rule has its code and names the offending field; nothing is counted."""
        (outcome,) = send(fail_charge(**({"invoice_id": "sub-1/1"} | details)))
        assert rejection_of(outcome) == (code, field)
        assert the_account(ledger).failed_charges == {}

    def test_a_charge_of_a_paid_invoice_cannot_fail(
        self, ledger: BillingLedger, send: Sender
    ) -> None:
        """invoice_already_paid on invoice_id."""
        send(record_payment(amount_minor=1500))
        (outcome,) = send(fail_charge(invoice_id="sub-1/1"))
        assert rejection_of(outcome) == ("invoice_already_paid", "invoice_id")

    def test_the_reason_reads_back_as_a_charge_failure_reason(
        self, ledger: BillingLedger, send: Sender
    ) -> None:
        """Replayed from the store, the reason is the enum it was recorded as."""
        (outcome,) = send(fail_charge(invoice_id="sub-1/1"))
        (failed,) = answered(ledger, outcome)
        assert type(failed.reason) is ChargeFailureReason


class TestBalancesAgree:
    """Receivable is what invoices leave outstanding; customer credit is the account's credit."""

    def test_after_every_step_of_a_mixed_history(self, ledger: BillingLedger, send: Sender) -> None:
        """Invoices, overdue marks, partial and over-payments, credit and failures all agree."""
        steps = [
            (open_account(), subscribe(), subscribe(subscription_id="sub-2", price_minor=999)),
            (advance_clock(issued_at=at(2024, 3, 31)),),
            (record_payment(amount_minor=700, invoice_id="sub-2/2"),),
            (fail_charge(invoice_id="sub-1/2"), record_payment(amount_minor=10_000)),
            (advance_clock(issued_at=at(2024, 6, 30)),),
            (record_payment(amount_minor=0), advance_clock(issued_at=at(2025, 6, 30))),
        ]
        for batch in steps:
            send(*batch)
            assert_balances_agree(ledger)
        history = account_events(ledger)
        assert of_type(history, Account.CreditApplied)
        assert of_type(history, Account.InvoiceOverdue)

    def test_the_read_back_account_is_the_one_the_commands_left(
        self, ledger: BillingLedger, send: Sender
    ) -> None:
        """Invoices with paid amounts and overdue marks, credit, payment ids and failures."""
        send(open_account(), subscribe())
        send(advance_clock(issued_at=at(2024, 3, 31)), record_payment(amount_minor=2000))
        send(fail_charge(invoice_id="sub-1/2"), record_payment(amount_minor=9000))
        send(advance_clock(issued_at=at(2024, 4, 30)))
        live, rebuilt = send.live_accounts["acc-1"], the_account(ledger)
        assert rebuilt.invoices == live.invoices
        assert rebuilt.invoices["sub-1/1"].overdue is True
        assert (rebuilt.credit_minor, rebuilt.payment_ids, rebuilt.failed_charges) == (
            live.credit_minor,
            live.payment_ids,
            live.failed_charges,
        )
        assert rebuilt.credit_minor > 0
