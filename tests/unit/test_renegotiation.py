"""Specification of debt renegotiation: overdue invoices become a plan of installments.

Every scenario sends commands through the Sender, as the consumer would. The account has two
monthly subscriptions from 1 January, paused on 20 January: sub-1/1 (15.00) and sub-2/1
(10.01), both due 15 January and overdue since; 25.01 in all.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from commands.messages import (
    CancelSubscription,
    Charge,
    IssueCreditNote,
    PauseSubscription,
    Renegotiate,
    ReportHardship,
    SetDunningPolicy,
    WriteOff,
)
from commands.table import command_from_record
from ledger.account import Account
from ledger.account_state import CancellationPolicy
from ledger.application import BillingLedger
from ledger.dunning import DunningPolicy
from ledger.postings import LedgerAccount, Posting, Side, balance_of
from ledger.renegotiation import (
    INSTALLMENT_GRACE_DAYS,
    Installment,
    OriginalDebt,
    installment_schedule,
)
from tests.unit.builders import (
    Sender,
    account_events,
    advance_clock,
    fail_charge,
    open_account,
    record_payment,
    subscribe,
)
from wire.codec import AvroCodec
from wire.event_records import ACCOUNT_EVENT_SCHEMAS, account_event_record, outgoing

START = datetime(2024, 1, 1, tzinfo=UTC)
DUE = datetime(2024, 1, 15, tzinfo=UTC)  # sub-1/1 and sub-2/1
RENEGOTIATED_AT = datetime(2024, 1, 20, tzinfo=UTC)
FIRST_DUE = datetime(2024, 2, 1, tzinfo=UTC)
DAY = timedelta(days=1)
GRACE = timedelta(days=INSTALLMENT_GRACE_DAYS)
DEBT = 1500 + 1001


def renegotiate(**overrides: Any) -> Renegotiate:
    """plan-1: both invoices, 3 installments 30 days apart from 1 February, 1.00 interest,
    0.01 forgiven (26.00 to pay: 8.66, 8.66, 8.68)."""
    fields: dict[str, Any] = {
        "command_id": str(uuid.uuid4()),
        "account_id": "acc-1",
        "issued_at": RENEGOTIATED_AT,
        "plan_id": "plan-1",
        "invoice_ids": ("sub-1/1", "sub-2/1"),
        "installments": 3,
        "first_due_at": FIRST_DUE,
        "interval_days": 30,
        "interest_minor": 100,
        "forgiven_minor": 1,
    }
    return Renegotiate(**(fields | overrides))


def pause(subscription_id: str) -> PauseSubscription:
    return PauseSubscription(
        str(uuid.uuid4()), "acc-1", RENEGOTIATED_AT, subscription_id=subscription_id
    )


def events_named(ledger: BillingLedger, name: str) -> list[Any]:
    return [e for e in account_events(ledger) if type(e).__name__ == name]


def the_account(send: Sender) -> Account:
    return send.live_accounts["acc-1"]


@pytest.fixture(name="indebted")
def fixture_indebted(send: Sender) -> Sender:
    """acc-1 owing sub-1/1 (1500) and sub-2/1 (1001), both overdue; nothing more is invoiced."""
    send(
        open_account(issued_at=START),
        subscribe(issued_at=START),
        subscribe(issued_at=START, subscription_id="sub-2", price_minor=1001),
        advance_clock(issued_at=RENEGOTIATED_AT),
        pause("sub-1"),
        pause("sub-2"),
    )
    return send


@pytest.fixture(name="renegotiated")
def fixture_renegotiated(indebted: Sender) -> Sender:
    """The debt is plan-1: 866 due 1 Feb, 866 due 2 Mar, 868 due 1 Apr."""
    (outcome,) = indebted(renegotiate())
    assert outcome.rejection is None
    return indebted


class TestRenegotiate:
    """Overdue invoices become installments, each an invoice of its own."""

    def test_overdue_invoices_become_installments(
        self, ledger: BillingLedger, renegotiated: Sender
    ) -> None:
        """Ids <plan_id>/<k>, due 30 days apart from the first due date."""
        (event,) = events_named(ledger, "DebtRenegotiated")
        assert list(event.schedule) == [
            Installment("plan-1/1", 866, FIRST_DUE),
            Installment("plan-1/2", 866, FIRST_DUE + 30 * DAY),
            Installment("plan-1/3", 868, FIRST_DUE + 60 * DAY),
        ]
        invoices = the_account(renegotiated).invoices
        assert [(invoices[f"plan-1/{k}"].outstanding_minor) for k in (1, 2, 3)] == [866, 866, 868]

    def test_the_event_names_the_debt_it_took_over(
        self, ledger: BillingLedger, renegotiated: Sender
    ) -> None:
        """Each original invoice with its outstanding amount, the total, interest, forgiveness."""
        (event,) = events_named(ledger, "DebtRenegotiated")
        assert list(event.original_debts) == [
            OriginalDebt("sub-1/1", 1500),
            OriginalDebt("sub-2/1", 1001),
        ]
        assert (event.debt_minor, event.interest_minor, event.forgiven_minor) == (DEBT, 100, 1)
        assert (event.plan_id, event.currency) == ("plan-1", "EUR")

    def test_the_rounding_remainder_goes_to_the_last_installment(self, indebted: Sender) -> None:
        """25.01 in 4: three of 6.25 and a last of 6.26."""
        indebted(renegotiate(installments=4, interest_minor=0, forgiven_minor=0))
        invoices = the_account(indebted).invoices
        assert [invoices[f"plan-1/{k}"].amount_minor for k in (1, 2, 3, 4)] == [625, 625, 625, 626]

    def test_one_installment_takes_everything(self, indebted: Sender) -> None:
        """A single installment is the whole amount, due on the first due date."""
        indebted(renegotiate(installments=1))
        installment = the_account(indebted).invoices["plan-1/1"]
        assert (installment.amount_minor, installment.due_at) == (DEBT + 99, FIRST_DUE)

    def test_the_original_invoices_are_settled_by_the_plan(self, renegotiated: Sender) -> None:
        """Nothing is outstanding on them any more, and they link to the plan."""
        invoices = the_account(renegotiated).invoices
        for invoice_id in ("sub-1/1", "sub-2/1"):
            assert invoices[invoice_id].outstanding_minor == 0
            assert invoices[invoice_id].renegotiated_into == "plan-1"

    def test_an_unnamed_invoice_is_left_alone(self, indebted: Sender) -> None:
        """Renegotiating sub-1/1 only leaves sub-2/1 owed as it was."""
        indebted(renegotiate(invoice_ids=("sub-1/1",), interest_minor=0, forgiven_minor=0))
        invoices = the_account(indebted).invoices
        assert (invoices["sub-2/1"].outstanding_minor, invoices["sub-2/1"].renegotiated_into) == (
            1001,
            None,
        )
        assert sum(invoices[f"plan-1/{k}"].amount_minor for k in (1, 2, 3)) == 1500


class TestPostings:
    """Forgiveness is written off, interest is revenue, the principal stays receivable."""

    def test_forgiveness_and_interest_postings(
        self, ledger: BillingLedger, renegotiated: Sender
    ) -> None:
        """Dr write_off Cr receivable 0.01; Dr receivable Cr revenue 1.00."""
        (event,) = events_named(ledger, "DebtRenegotiated")
        assert list(event.postings) == [
            Posting(LedgerAccount.WRITE_OFF, Side.DEBIT, 1),
            Posting(LedgerAccount.RECEIVABLE, Side.CREDIT, 1),
            Posting(LedgerAccount.RECEIVABLE, Side.DEBIT, 100),
            Posting(LedgerAccount.REVENUE, Side.CREDIT, 100),
        ]

    def test_every_entry_balances_and_receivable_is_what_the_plan_owes(
        self, ledger: BillingLedger, renegotiated: Sender
    ) -> None:
        """Receivable afterwards = debt - forgiven + interest = the installments' sum."""
        postings = [p for e in account_events(ledger) for p in getattr(e, "postings", ())]
        assert sum(p.signed_minor for p in postings) == 0
        assert balance_of(LedgerAccount.RECEIVABLE, postings) == DEBT - 1 + 100
        assert balance_of(LedgerAccount.WRITE_OFF, postings) == 1

    def test_without_interest_or_forgiveness_nothing_is_posted(
        self, ledger: BillingLedger, indebted: Sender
    ) -> None:
        """Consolidating the principal moves no money."""
        indebted(renegotiate(interest_minor=0, forgiven_minor=0))
        (event,) = events_named(ledger, "DebtRenegotiated")
        assert list(event.postings) == []


class TestRules:
    """A renegotiation that breaks a rule is rejected with a stable code and changes nothing."""

    @pytest.mark.parametrize(
        ("overrides", "code", "field"),
        [
            ({"plan_id": " "}, "missing_value", "plan_id"),
            ({"plan_id": "p" * 129}, "too_long", "plan_id"),
            ({"plan_id": "sub-1"}, "duplicate_renegotiation", "plan_id"),
            ({"invoice_ids": ()}, "missing_value", "invoice_ids"),
            ({"invoice_ids": ("sub-1/1", "sub-1/1")}, "duplicate_value", "invoice_ids"),
            ({"invoice_ids": ("sub-1/1", "sub-9/1")}, "unknown_invoice", "invoice_ids"),
            ({"installments": 0}, "out_of_range", "installments"),
            ({"installments": 61}, "out_of_range", "installments"),
            ({"first_due_at": RENEGOTIATED_AT - DAY}, "out_of_range", "first_due_at"),
            ({"first_due_at": RENEGOTIATED_AT + 367 * DAY}, "out_of_range", "first_due_at"),
            ({"interval_days": 0}, "out_of_range", "interval_days"),
            ({"interval_days": 367}, "out_of_range", "interval_days"),
            ({"interest_minor": -1}, "negative_amount", "interest_minor"),
            ({"forgiven_minor": -1}, "negative_amount", "forgiven_minor"),
            ({"forgiven_minor": DEBT}, "out_of_range", "forgiven_minor"),
        ],
    )
    def test_rejected_with_code_and_field(
        self,
        ledger: BillingLedger,
        indebted: Sender,
        overrides: dict[str, Any],
        code: str,
        field: str,
    ) -> None:
        """The rejection names the rule and the offending field; no event is stored."""
        before = len(account_events(ledger))
        (outcome,) = indebted(renegotiate(**overrides))
        assert outcome.rejection is not None
        assert (outcome.rejection.code, outcome.rejection.field) == (code, field)
        assert len(account_events(ledger)) == before

    def test_the_first_due_date_may_be_the_command_time(self, indebted: Sender) -> None:
        """first_due_at equal to issued_at is accepted."""
        (outcome,) = indebted(renegotiate(first_due_at=RENEGOTIATED_AT))
        assert outcome.rejection is None

    def test_no_more_installments_than_minor_units(self, indebted: Sender) -> None:
        """0.05 to pay cannot be 6 installments: each must be at least one minor unit."""
        (outcome,) = indebted(
            renegotiate(installments=6, interest_minor=0, forgiven_minor=DEBT - 5)
        )
        assert outcome.rejection is not None
        assert (outcome.rejection.code, outcome.rejection.field) == ("out_of_range", "installments")
        assert outcome.rejection.message == "installments must be 1 to 5, got 6"

    def test_an_invoice_not_yet_due_is_not_renegotiated(self, send: Sender) -> None:
        """sub-1/1 is due 15 January: on 10 January it is not overdue."""
        send(open_account(issued_at=START), subscribe(issued_at=START))
        (outcome,) = send(
            renegotiate(issued_at=START + 9 * DAY, invoice_ids=("sub-1/1",), forgiven_minor=0)
        )
        assert outcome.rejection is not None
        assert (outcome.rejection.code, outcome.rejection.field) == (
            "invoice_not_overdue",
            "invoice_ids",
        )

    def test_a_paid_invoice_is_not_renegotiated(self, indebted: Sender) -> None:
        """sub-1/1 paid in full has nothing to renegotiate."""
        indebted(record_payment(amount_minor=1500, invoice_id="sub-1/1", issued_at=RENEGOTIATED_AT))
        (outcome,) = indebted(renegotiate())
        assert outcome.rejection is not None
        assert (outcome.rejection.code, outcome.rejection.field) == (
            "invoice_already_paid",
            "invoice_ids",
        )

    def test_an_invoice_is_renegotiated_once(self, renegotiated: Sender) -> None:
        """A second plan for sub-1/1 is refused invoice_renegotiated, naming the first plan."""
        (outcome,) = renegotiated(renegotiate(plan_id="plan-2", invoice_ids=("sub-1/1",)))
        assert outcome.rejection is not None
        assert (outcome.rejection.code, outcome.rejection.field) == (
            "invoice_renegotiated",
            "invoice_ids",
        )
        assert "plan-1" in outcome.rejection.message

    def test_a_plan_id_is_used_once(self, renegotiated: Sender) -> None:
        """plan-1 again is refused duplicate_renegotiation."""
        (outcome,) = renegotiated(renegotiate())
        assert outcome.rejection is not None
        assert (outcome.rejection.code, outcome.rejection.field) == (
            "duplicate_renegotiation",
            "plan_id",
        )

    def test_a_subscription_cannot_take_a_plans_id(self, renegotiated: Sender) -> None:
        """Its invoices would be plan-1/1, plan-1/2, ...: refused duplicate_subscription."""
        (outcome,) = renegotiated(subscribe(issued_at=RENEGOTIATED_AT, subscription_id="plan-1"))
        assert outcome.rejection is not None
        assert (outcome.rejection.code, outcome.rejection.field) == (
            "duplicate_subscription",
            "subscription_id",
        )


def on_invoice(kind: type, **fields: Any) -> Any:
    """A command of `kind` about an invoice of acc-1, after the renegotiation."""
    return kind(str(uuid.uuid4()), "acc-1", RENEGOTIATED_AT + DAY, **fields)


class TestARenegotiatedInvoice:
    """An invoice whose debt moved into a plan owes nothing itself: commands that need an open
    invoice are refused invoice_renegotiated, naming the plan whose installments owe it."""

    @pytest.mark.parametrize(
        "command",
        [
            pytest.param(lambda: on_invoice(WriteOff, invoice_id="sub-1/1", reason="x"), id="WO"),
            pytest.param(
                lambda: on_invoice(Charge, invoice_id="sub-1/1", payment_method_id=None),
                id="Charge",
            ),
            pytest.param(lambda: fail_charge(invoice_id="sub-1/1"), id="FailCharge"),
        ],
    )
    def test_commands_on_it_are_refused_with_the_plan_named(
        self, ledger: BillingLedger, renegotiated: Sender, command: Any
    ) -> None:
        """invoice_renegotiated on invoice_id, the message names plan-1 and its installments;
        nothing is stored."""
        before = len(account_events(ledger))
        (outcome,) = renegotiated(command())
        assert outcome.rejection is not None
        assert (outcome.rejection.code, outcome.rejection.field) == (
            "invoice_renegotiated",
            "invoice_id",
        )
        assert "'plan-1'" in outcome.rejection.message
        assert "'plan-1/1'" in outcome.rejection.message
        assert len(account_events(ledger)) == before

    def test_a_paid_invoice_is_still_refused_as_paid(self, indebted: Sender) -> None:
        """Paid in full, never renegotiated: invoice_already_paid, as before."""
        indebted(record_payment(amount_minor=1500, invoice_id="sub-1/1", issued_at=RENEGOTIATED_AT))
        (outcome,) = indebted(on_invoice(WriteOff, invoice_id="sub-1/1", reason="x"))
        assert outcome.rejection is not None
        assert outcome.rejection.code == "invoice_already_paid"

    def test_a_credit_note_on_it_pays_the_installments(
        self, ledger: BillingLedger, renegotiated: Sender
    ) -> None:
        """Revenue given back on sub-1/1 becomes credit, which settles plan-1/1 first."""
        (outcome,) = renegotiated(
            on_invoice(
                IssueCreditNote,
                credit_note_id="cn-1",
                invoice_id="sub-1/1",
                amount_minor=500,
                reason="outage",
            )
        )
        assert outcome.rejection is None
        applied = [(e.invoice_id, e.amount_minor) for e in events_named(ledger, "CreditApplied")]
        assert applied[-1] == ("plan-1/1", 500)
        assert the_account(renegotiated).credit_minor == 0


class TestPayingInstallments:
    """Installments are paid, marked overdue and dunned like any invoice."""

    def test_a_payment_settles_installments_oldest_due_first(
        self, ledger: BillingLedger, renegotiated: Sender
    ) -> None:
        """13.66: plan-1/1 paid (InvoicePaid), 5.00 on plan-1/2."""
        renegotiated(record_payment(amount_minor=1366, issued_at=RENEGOTIATED_AT))
        (payment,) = events_named(ledger, "PaymentReceived")
        assert [(a.invoice_id, a.amount_minor) for a in payment.allocations] == [
            ("plan-1/1", 866),
            ("plan-1/2", 500),
        ]
        assert [e.invoice_id for e in events_named(ledger, "InvoicePaid")] == ["plan-1/1"]
        assert the_account(renegotiated).invoices["plan-1/2"].outstanding_minor == 366

    def test_an_overpayment_becomes_credit(
        self, ledger: BillingLedger, renegotiated: Sender
    ) -> None:
        """30.00 pays the 26.00 of the plan; 4.00 becomes customer credit."""
        renegotiated(record_payment(amount_minor=3000, issued_at=RENEGOTIATED_AT))
        (payment,) = events_named(ledger, "PaymentReceived")
        assert payment.credited_minor == 400
        account = the_account(renegotiated)
        assert account.credit_minor == 400
        assert all(account.invoices[f"plan-1/{k}"].outstanding_minor == 0 for k in (1, 2, 3))

    def test_credit_created_later_settles_the_installments(
        self, ledger: BillingLedger, send: Sender
    ) -> None:
        """12.00 credit from a prorated refund after the plan: 7.50 settles plan-1/1, 4.50 goes
        to plan-1/2, at once."""
        send(
            open_account(issued_at=START),
            subscribe(issued_at=START),
            subscribe(
                issued_at=START,
                subscription_id="sub-2",
                price_minor=3100,
                cancellation_policy=CancellationPolicy.IMMEDIATELY_WITH_PRORATED_REFUND,
            ),
            record_payment(amount_minor=3100, invoice_id="sub-2/1", issued_at=START),
            advance_clock(issued_at=RENEGOTIATED_AT),
            pause("sub-1"),
            renegotiate(
                invoice_ids=("sub-1/1",), installments=2, interest_minor=0, forgiven_minor=0
            ),
        )
        send(
            CancelSubscription(str(uuid.uuid4()), "acc-1", RENEGOTIATED_AT, subscription_id="sub-2")
        )
        applied = [(e.invoice_id, e.amount_minor) for e in events_named(ledger, "CreditApplied")]
        assert applied == [("plan-1/1", 750), ("plan-1/2", 450)]  # 12 of sub-2/1's 31 days
        assert the_account(send).credit_minor == 0

    def test_installments_are_marked_overdue_and_dunned(
        self, ledger: BillingLedger, renegotiated: Sender
    ) -> None:
        """One day after plan-1/1's due date: InvoiceOverdue and the first stage's reminder."""
        renegotiated(SetDunningPolicy(str(uuid.uuid4()), "acc-1", RENEGOTIATED_AT, DunningPolicy()))
        renegotiated(advance_clock(issued_at=FIRST_DUE + DAY))
        overdue = [e.invoice_id for e in events_named(ledger, "InvoiceOverdue")]
        assert overdue[-1] == "plan-1/1"
        reminders = [
            (e.invoice_id, e.stage, e.outstanding_minor)
            for e in events_named(ledger, "PaymentReminderDue")
            if e.invoice_id.startswith("plan-1/")
        ]
        assert ("plan-1/1", "stage_1", 866) in reminders


class TestDefault:
    """An installment unpaid more than the grace after its due date defaults the plan, once."""

    def test_within_the_grace_nothing_happens(
        self, ledger: BillingLedger, renegotiated: Sender
    ) -> None:
        """Exactly 7 days after the due date the plan still stands."""
        renegotiated(advance_clock(issued_at=FIRST_DUE + GRACE))
        assert events_named(ledger, "RenegotiationDefaulted") == []

    def test_past_the_grace_the_rest_is_due_at_once(
        self, ledger: BillingLedger, renegotiated: Sender
    ) -> None:
        """8 days late: plan-1/2 and plan-1/3 become due now; amounts stay, nothing is posted."""
        defaulted_at = FIRST_DUE + GRACE + DAY
        renegotiated(advance_clock(issued_at=defaulted_at))
        (event,) = events_named(ledger, "RenegotiationDefaulted")
        assert (event.plan_id, event.missed_invoice_id, event.missed_due_at) == (
            "plan-1",
            "plan-1/1",
            FIRST_DUE,
        )
        assert list(event.accelerated_invoice_ids) == ["plan-1/2", "plan-1/3"]
        assert event.template_key == "renegotiation.defaulted"
        assert [c.channel for c in event.contacts] == ["email"]
        assert (event.accelerated_minor, event.due_at) == (866 + 868, defaulted_at)
        invoices = the_account(renegotiated).invoices
        assert [invoices[f"plan-1/{k}"].due_at for k in (2, 3)] == [defaulted_at] * 2
        assert [invoices[f"plan-1/{k}"].amount_minor for k in (2, 3)] == [866, 868]
        assert not hasattr(event, "postings")

    def test_a_plan_defaults_once(self, ledger: BillingLedger, renegotiated: Sender) -> None:
        """Later ticks, with more installments late, add no second default."""
        for days in (8, 9, 40, 120):
            renegotiated(advance_clock(issued_at=FIRST_DUE + days * DAY))
        assert len(events_named(ledger, "RenegotiationDefaulted")) == 1

    def test_the_accelerated_installments_are_then_dunned(
        self, ledger: BillingLedger, renegotiated: Sender
    ) -> None:
        """The tick after the default marks them overdue; reminders follow per the policy."""
        renegotiated(SetDunningPolicy(str(uuid.uuid4()), "acc-1", RENEGOTIATED_AT, DunningPolicy()))
        defaulted_at = FIRST_DUE + GRACE + DAY
        renegotiated(advance_clock(issued_at=defaulted_at))
        renegotiated(advance_clock(issued_at=defaulted_at + DAY))
        overdue = {e.invoice_id for e in events_named(ledger, "InvoiceOverdue")}
        assert {"plan-1/1", "plan-1/2", "plan-1/3"} <= overdue
        stage_1 = {
            e.invoice_id for e in events_named(ledger, "PaymentReminderDue") if e.stage == "stage_1"
        }
        assert {"plan-1/2", "plan-1/3"} <= stage_1

    def test_an_installment_already_due_keeps_its_date(
        self, ledger: BillingLedger, renegotiated: Sender
    ) -> None:
        """A first tick on 5 March: plan-1/2 (due 2 March) keeps its date; only plan-1/3 moves."""
        renegotiated(advance_clock(issued_at=datetime(2024, 3, 5, tzinfo=UTC)))
        (event,) = events_named(ledger, "RenegotiationDefaulted")
        assert list(event.accelerated_invoice_ids) == ["plan-1/3"]
        assert the_account(renegotiated).invoices["plan-1/2"].due_at == FIRST_DUE + 30 * DAY

    def test_a_paid_installment_is_not_missed(
        self, ledger: BillingLedger, renegotiated: Sender
    ) -> None:
        """plan-1/1 paid on time: no default 8 days after its due date."""
        renegotiated(record_payment(amount_minor=866, issued_at=FIRST_DUE))
        renegotiated(advance_clock(issued_at=FIRST_DUE + GRACE + DAY))
        assert events_named(ledger, "RenegotiationDefaulted") == []

    def test_a_partly_paid_installment_is_missed(
        self, ledger: BillingLedger, renegotiated: Sender
    ) -> None:
        """Anything left unpaid on an installment past the grace defaults the plan."""
        renegotiated(record_payment(amount_minor=865, issued_at=FIRST_DUE))
        renegotiated(advance_clock(issued_at=FIRST_DUE + GRACE + DAY))
        (event,) = events_named(ledger, "RenegotiationDefaulted")
        assert event.missed_invoice_id == "plan-1/1"


def hardship(issued_at: datetime, days: int) -> ReportHardship:
    """A hardship pause of `days` reported at `issued_at`."""
    return ReportHardship(str(uuid.uuid4()), "acc-1", issued_at, reason="lost job", days=days)


class TestDefaultDuringHardship:
    """A hardship pause holds the default back: the grace runs from the later of the due date
    and the end of the pause."""

    PAUSE_ENDS = RENEGOTIATED_AT + 35 * DAY  # 24 February, after plan-1/1's grace would end

    def test_no_default_while_the_pause_lasts(
        self, ledger: BillingLedger, renegotiated: Sender
    ) -> None:
        """plan-1/1 unpaid 8 and 22 days after its due date, the pause still on: no default."""
        renegotiated(hardship(RENEGOTIATED_AT, days=35))
        renegotiated(advance_clock(issued_at=FIRST_DUE + GRACE + DAY))
        renegotiated(advance_clock(issued_at=self.PAUSE_ENDS - DAY))
        assert events_named(ledger, "RenegotiationDefaulted") == []

    def test_the_grace_runs_from_the_end_of_the_pause(
        self, ledger: BillingLedger, renegotiated: Sender
    ) -> None:
        """7 days after the pause ends the plan stands; the day after, it defaults."""
        renegotiated(hardship(RENEGOTIATED_AT, days=35))
        renegotiated(advance_clock(issued_at=self.PAUSE_ENDS + GRACE))
        assert events_named(ledger, "RenegotiationDefaulted") == []
        defaulted_at = self.PAUSE_ENDS + GRACE + DAY
        renegotiated(advance_clock(issued_at=defaulted_at))
        (event,) = events_named(ledger, "RenegotiationDefaulted")
        assert (event.missed_invoice_id, event.missed_due_at, event.due_at) == (
            "plan-1/1",
            FIRST_DUE,
            defaulted_at,
        )
        assert list(event.accelerated_invoice_ids) == ["plan-1/3"]  # plan-1/2 fell due 2 March

    def test_a_pause_reported_within_the_grace_holds_the_default(
        self, ledger: BillingLedger, renegotiated: Sender
    ) -> None:
        """Reported 4 days after the due date for 10 days: the grace runs to 7 days after that."""
        pause_ends = FIRST_DUE + 14 * DAY
        renegotiated(hardship(FIRST_DUE + 4 * DAY, days=10))
        renegotiated(advance_clock(issued_at=pause_ends + GRACE))
        assert events_named(ledger, "RenegotiationDefaulted") == []
        renegotiated(advance_clock(issued_at=pause_ends + GRACE + DAY))
        assert len(events_named(ledger, "RenegotiationDefaulted")) == 1

    def test_a_pause_over_before_the_due_date_changes_nothing(
        self, ledger: BillingLedger, renegotiated: Sender
    ) -> None:
        """A pause that ended before plan-1/1 fell due: the default comes 8 days late as usual."""
        renegotiated(hardship(RENEGOTIATED_AT, days=5))
        renegotiated(advance_clock(issued_at=FIRST_DUE + GRACE + DAY))
        (event,) = events_named(ledger, "RenegotiationDefaulted")
        assert event.missed_invoice_id == "plan-1/1"

    def test_paid_during_the_pause_no_default(
        self, ledger: BillingLedger, renegotiated: Sender
    ) -> None:
        """plan-1/1 paid late but within the pause: the plan stands after the pause and grace."""
        renegotiated(hardship(RENEGOTIATED_AT, days=35))
        renegotiated(record_payment(amount_minor=866, issued_at=self.PAUSE_ENDS - DAY))
        renegotiated(advance_clock(issued_at=self.PAUSE_ENDS + GRACE + DAY))
        assert events_named(ledger, "RenegotiationDefaulted") == []


class TestReplay:
    """The stored events rebuild the account the commands left."""

    def test_replaying_rebuilds_the_same_state(
        self, ledger: BillingLedger, renegotiated: Sender
    ) -> None:
        """Invoices (with links and accelerated dates), plans and credit are the same."""
        renegotiated(record_payment(amount_minor=500, issued_at=RENEGOTIATED_AT))
        renegotiated(advance_clock(issued_at=FIRST_DUE + GRACE + DAY))
        live = the_account(renegotiated)
        replayed = ledger.account("acc-1")
        assert replayed is not None
        assert replayed.invoices == live.invoices
        assert replayed.renegotiations == live.renegotiations
        assert replayed.renegotiations["plan-1"].defaulted
        assert replayed.credit_minor == live.credit_minor


class TestWire:
    """The command arrives as an Avro record; its events leave as records of their schemas."""

    def test_the_command_decodes_with_its_defaults(self) -> None:
        """No interest, nothing forgiven; the invoice ids as a tuple."""
        codec = AvroCodec()
        record = {
            "command_id": "c",
            "account_id": "acc-1",
            "issued_at": RENEGOTIATED_AT,
            "plan_id": "plan-1",
            "invoice_ids": ["sub-1/1"],
            "installments": 2,
            "first_due_at": FIRST_DUE,
            "interval_days": 30,
        }
        decoded = codec.decode(codec.encode("billing.commands.Renegotiate", record))
        assert command_from_record("Renegotiate", decoded.record) == Renegotiate(
            "c",
            "acc-1",
            RENEGOTIATED_AT,
            plan_id="plan-1",
            invoice_ids=("sub-1/1",),
            installments=2,
            first_due_at=FIRST_DUE,
            interval_days=30,
            interest_minor=0,
            forgiven_minor=0,
        )

    def test_the_events_round_trip_through_their_schemas(
        self, ledger: BillingLedger, renegotiated: Sender
    ) -> None:
        """DebtRenegotiated and RenegotiationDefaulted decode to the records they were."""
        renegotiated(advance_clock(issued_at=FIRST_DUE + GRACE + DAY))
        codec = AvroCodec()
        records = {}
        for notification in ledger.recorder.select_notifications(start=1, limit=1000):
            event = ledger.mapper.to_domain_event(notification)
            if isinstance(event, Account.DebtRenegotiated | Account.RenegotiationDefaulted):
                message = outgoing(event, notification.id, codec)
                decoded = codec.decode(message.value)
                assert decoded.schema_name == ACCOUNT_EVENT_SCHEMAS[type(event)]
                assert decoded.record == account_event_record(event)
                records[type(event).__name__] = decoded.record
        renegotiated_record = records["DebtRenegotiated"]
        assert renegotiated_record["original_debts"] == [
            {"invoice_id": "sub-1/1", "amount_minor": 1500},
            {"invoice_id": "sub-2/1", "amount_minor": 1001},
        ]
        assert renegotiated_record["schedule"][2] == {
            "invoice_id": "plan-1/3",
            "amount_minor": 868,
            "due_at": FIRST_DUE + 60 * DAY,
        }
        assert renegotiated_record["postings"][0] == {
            "ledger_account": "write_off",
            "side": "DEBIT",
            "amount_minor": 1,
        }
        assert records["RenegotiationDefaulted"]["accelerated_invoice_ids"] == [
            "plan-1/2",
            "plan-1/3",
        ]


class TestSchedule:
    """Property: the schedule splits the amount exactly, the remainder on the last."""

    @given(
        total_minor=st.integers(min_value=1, max_value=10**12),
        count=st.integers(min_value=1, max_value=60),
    )
    def test_installments_sum_to_the_total(self, total_minor: int, count: int) -> None:
        """All but the last are equal; the last exceeds them by less than the count."""
        if count > total_minor:
            count = total_minor
        schedule = installment_schedule("p", total_minor, count, FIRST_DUE, DAY)
        amounts = [line.amount_minor for line in schedule]
        assert sum(amounts) == total_minor
        assert len(set(amounts[:-1])) <= 1
        assert 0 <= amounts[-1] - amounts[0] < count
        assert [line.due_at for line in schedule] == [FIRST_DUE + k * DAY for k in range(count)]
