"""Specification of dunning: reminders, stages, retries, hardship pauses and the final action."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from commands.messages import ReportHardship, SetDunningPolicy
from ledger.account_state import SubscriptionStatus
from ledger.application import BillingLedger
from ledger.dunning import DunningPolicy, FinalAction
from tests.helpers import CODEC
from tests.unit.builders import (
    Sender,
    account_events,
    advance_clock,
    fail_charge,
    open_account,
    record_payment,
    subscribe,
)
from wire.event_records import outgoing

START = datetime(2024, 1, 1, tzinfo=UTC)
DUE = START + timedelta(days=14)  # sub-1/1 is due 14 days after the start
DAY = timedelta(days=1)
RECOMMENDED = DunningPolicy()


def policy_command(policy: DunningPolicy = RECOMMENDED) -> SetDunningPolicy:
    return SetDunningPolicy(str(uuid.uuid4()), "acc-1", START, policy=policy)


def names_after(ledger: BillingLedger, version: int) -> list[str]:
    return [type(e).__name__ for e in account_events(ledger)[version:]]


def events_named(ledger: BillingLedger, name: str) -> list[Any]:
    return [e for e in account_events(ledger) if type(e).__name__ == name]


@pytest.fixture(name="dunned")
def fixture_dunned(send: Sender) -> Sender:
    """acc-1 with a monthly subscription from 1 January (sub-1/1 due 15 January) and a policy."""
    send(open_account(issued_at=START), subscribe(issued_at=START), policy_command())
    return send


class TestWithoutAPolicy:
    """Until a policy is set, an unpaid invoice is only marked overdue."""

    def test_no_reminders(self, ledger: BillingLedger, send: Sender) -> None:
        """Ticks past the due date give InvoiceOverdue and nothing else."""
        send(open_account(issued_at=START), subscribe(issued_at=START))
        send(advance_clock(issued_at=DUE + 20 * DAY))
        assert events_named(ledger, "PaymentReminderDue") == []
        assert len(events_named(ledger, "InvoiceOverdue")) == 1


class TestReminders:
    """Reminders come before the due date and at each dunning stage after it, once each."""

    def test_a_reminder_three_days_before_due_with_the_contacts(
        self, ledger: BillingLedger, dunned: Sender
    ) -> None:
        """On 12 January: one reminder with the amount, due date and every contact channel."""
        dunned(advance_clock(issued_at=DUE - 3 * DAY))
        dunned(advance_clock(issued_at=DUE - 2 * DAY))
        (reminder,) = events_named(ledger, "PaymentReminderDue")
        assert (reminder.stage, reminder.template_key) == ("before_due_3", "invoice.reminder")
        assert (reminder.outstanding_minor, reminder.due_at) == (1500, DUE)
        assert [c.address for c in reminder.contacts] == ["billing@example.com"]

    def test_stages_after_due_one_per_stage_reached(
        self, ledger: BillingLedger, dunned: Sender
    ) -> None:
        """Ticks on days 1, 2, 8 and 30 after due: stages 1, 2 and 3, each once."""
        for days in (1, 2, 8, 30):
            dunned(advance_clock(issued_at=DUE + days * DAY))
        stages = [
            e.stage for e in events_named(ledger, "PaymentReminderDue") if e.invoice_id == "sub-1/1"
        ]
        assert stages == ["stage_1", "stage_2", "stage_3"]

    def test_a_paid_invoice_gets_no_reminder(self, ledger: BillingLedger, dunned: Sender) -> None:
        """Paid before the reminder day: nothing is sent."""
        dunned(record_payment(amount_minor=1500, issued_at=START + DAY))
        dunned(advance_clock(issued_at=DUE + 8 * DAY))
        assert events_named(ledger, "PaymentReminderDue") == []


class TestRetries:
    """A failed charge is retried on the policy's schedule until it is used up."""

    def test_the_customer_is_told_when_a_charge_fails(
        self, ledger: BillingLedger, dunned: Sender
    ) -> None:
        """Each failure brings a reminder with its own stage and the charge_failed template."""
        dunned(fail_charge(invoice_id="sub-1/1", issued_at=DUE))
        dunned(fail_charge(invoice_id="sub-1/1", issued_at=DUE + DAY))
        reminders = events_named(ledger, "PaymentReminderDue")
        assert [(r.stage, r.template_key) for r in reminders] == [
            ("charge_failed_1", "invoice.charge_failed"),
            ("charge_failed_2", "invoice.charge_failed"),
        ]

    def test_retry_scheduled_then_due(self, ledger: BillingLedger, dunned: Sender) -> None:
        """Failed on the due date: retry one day later, announced by the tick that reaches it."""
        dunned(fail_charge(invoice_id="sub-1/1", issued_at=DUE))
        (scheduled,) = events_named(ledger, "ChargeRetryScheduled")
        assert (scheduled.attempt, scheduled.retry_at) == (2, DUE + DAY)
        dunned(advance_clock(issued_at=DUE + DAY))
        (due,) = events_named(ledger, "ChargeRetryDue")
        assert (due.invoice_id, due.attempt, due.outstanding_minor) == ("sub-1/1", 2, 1500)

    def test_no_retry_after_the_schedule_is_used_up(
        self, ledger: BillingLedger, dunned: Sender
    ) -> None:
        """Three retries (1, 3, 7 days), then failures schedule nothing more."""
        for day in range(4):
            dunned(fail_charge(invoice_id="sub-1/1", issued_at=DUE + day * DAY))
        assert [e.attempt for e in events_named(ledger, "ChargeRetryScheduled")] == [2, 3, 4]


class TestHardship:
    """A hardship pause holds back the dunning steps after the due date."""

    def test_paused_then_resumed(self, ledger: BillingLedger, dunned: Sender) -> None:
        """Within the pause, no stage reminder; after it, the stage reached is sent."""
        dunned(ReportHardship(str(uuid.uuid4()), "acc-1", DUE, reason="lost job", days=30))
        dunned(advance_clock(issued_at=DUE + 10 * DAY))
        assert events_named(ledger, "PaymentReminderDue") == []
        dunned(advance_clock(issued_at=DUE + 31 * DAY))
        assert [e.stage for e in events_named(ledger, "PaymentReminderDue")] == ["stage_3"]

    def test_the_pause_can_be_confirmed_to_the_customer(
        self, ledger: BillingLedger, dunned: Sender
    ) -> None:
        """HardshipPauseStarted carries its template key, the channels and the end date."""
        dunned(ReportHardship(str(uuid.uuid4()), "acc-1", DUE, reason="lost job", days=30))
        (pause,) = events_named(ledger, "HardshipPauseStarted")
        record = CODEC.decode(outgoing(pause, 1, CODEC).value).record
        assert record["template_key"] == "dunning.hardship_pause"
        assert record["contacts"] == [{"channel": "email", "address": "billing@example.com"}]
        assert record["until"] == DUE + 30 * DAY

    @pytest.mark.parametrize(
        ("reason", "days", "code", "field"),
        [
            ("", 10, "missing_value", "reason"),
            ("ill", 0, "out_of_range", "days"),
            ("ill", 181, "out_of_range", "days"),
        ],
    )
    def test_invalid_reports_are_rejected(
        self, dunned: Sender, reason: str, days: int, code: str, field: str
    ) -> None:
        """The rule and the field are named."""
        (outcome,) = dunned(
            ReportHardship(str(uuid.uuid4()), "acc-1", DUE, reason=reason, days=days)
        )
        assert outcome.rejection is not None
        assert (outcome.rejection.code, outcome.rejection.field) == (code, field)


class TestFinalAction:
    """Past the grace period, the policy's final action is taken once."""

    @pytest.mark.parametrize(
        ("action", "status"),
        [
            (FinalAction.SUSPEND, SubscriptionStatus.PAUSED),
            (FinalAction.CANCEL, SubscriptionStatus.CANCELLED),
        ],
    )
    def test_the_subscriptions_are_acted_on(
        self, ledger: BillingLedger, send: Sender, action: FinalAction, status: SubscriptionStatus
    ) -> None:
        """21 days after due the subscription is paused or cancelled; no invoice follows."""
        send(
            open_account(issued_at=START),
            subscribe(issued_at=START),
            policy_command(DunningPolicy(final_action=action)),
        )
        send(advance_clock(issued_at=DUE + 21 * DAY))
        send(advance_clock(issued_at=DUE + 90 * DAY))
        account = ledger.account("acc-1")
        assert account is not None
        assert account.subscriptions["sub-1"].status is status
        (final,) = events_named(ledger, "DunningFinalAction")
        assert final.action is action
        assert [i for i in account.invoices if i > "sub-1/2"] == []

    def test_the_customer_can_be_told(self, ledger: BillingLedger, send: Sender) -> None:
        """The event carries a template key, the channels, the amount and the due date."""
        send(
            open_account(issued_at=START),
            subscribe(issued_at=START),
            policy_command(DunningPolicy(final_action=FinalAction.CANCEL)),
        )
        send(advance_clock(issued_at=DUE + 21 * DAY))
        (final,) = events_named(ledger, "DunningFinalAction")
        assert final.template_key == "dunning.final_action.cancel"
        assert [(c.channel, c.address) for c in final.contacts] == [
            ("email", "billing@example.com")
        ]
        assert (final.outstanding_minor, final.currency, final.due_at) == (1500, "EUR", DUE)
        record = CODEC.decode(outgoing(final, 1, CODEC).value).record
        assert record["template_key"] == "dunning.final_action.cancel"
        assert record["contacts"] == [{"channel": "email", "address": "billing@example.com"}]
        assert record["due_at"] == DUE


class TestPolicyRules:
    """A policy must make sense."""

    @pytest.mark.parametrize(
        ("policy", "code", "field"),
        [
            (
                DunningPolicy(reminder_days_after_due=(7, 1)),
                "invalid_schedule",
                "reminder_days_after_due",
            ),
            (
                DunningPolicy(reminder_days_before_due=(0,)),
                "invalid_schedule",
                "reminder_days_before_due",
            ),
            (
                DunningPolicy(retry_days_after_failure=(400,)),
                "invalid_schedule",
                "retry_days_after_failure",
            ),
            (DunningPolicy(grace_days=10), "out_of_range", "grace_days"),
        ],
    )
    def test_invalid_policies_are_rejected(
        self, ledger: BillingLedger, send: Sender, policy: DunningPolicy, code: str, field: str
    ) -> None:
        """The rule and the field are named; the policy stays as it was."""
        send(open_account(issued_at=START))
        (outcome,) = send(policy_command(policy))
        assert outcome.rejection is not None
        assert (outcome.rejection.code, outcome.rejection.field) == (code, field)
        assert events_named(ledger, "DunningPolicySet") == []

    def test_the_policy_reads_back_the_same(self, ledger: BillingLedger, dunned: Sender) -> None:
        """Replayed from the store, the policy equals the one set (tuples and enum included)."""
        account = ledger.account("acc-1")
        assert account is not None and account.dunning_policy == RECOMMENDED
