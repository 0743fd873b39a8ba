"""Dunning: reminders before and after the due date, charge retries, hardship pauses, final action.

`Dunning` is a part of the Account aggregate (a mixin). The ledger sends nothing itself: its
events say what is due (a reminder to send, a charge to retry), with what a notification
sender or payment system needs, and the clock (AdvanceClock) decides when.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from ledger.account_state import (
    AccountEvent,
    AccountPart,
    Contact,
    Invoice,
    SubscriptionStatus,
)
from ledger.errors import MissingValue, RuleViolation, check_range

MAX_SCHEDULE_DAYS = 365
MAX_HARDSHIP_DAYS = 180


class FinalAction(StrEnum):
    """What happens to the subscriptions when an invoice stays unpaid past the grace period."""

    NONE = "NONE"
    SUSPEND = "SUSPEND"
    CANCEL = "CANCEL"


@dataclass(frozen=True)
class DunningPolicy:
    """When to remind, when to retry a failed charge, and when to act."""

    reminder_days_before_due: tuple[int, ...] = (3,)
    reminder_days_after_due: tuple[int, ...] = (1, 7, 14)
    retry_days_after_failure: tuple[int, ...] = (1, 3, 7)
    grace_days: int = 21
    final_action: FinalAction = FinalAction.SUSPEND


# Until an account has a policy, the ledger only marks invoices overdue: no reminders, no
# retries, no final action. SetDunningPolicy's defaults are the recommended policy above.
DEFAULT_POLICY = DunningPolicy((), (), (), 0, FinalAction.NONE)


class Dunning(AccountPart):
    """Reminders, dunning stages, retry schedules, hardship pauses and the final action."""

    if TYPE_CHECKING:  # provided by Account
        failed_charges: dict[str, int]
        dunning_policy: DunningPolicy
        hardship_until: datetime | None
        dunning_marks: set[str]
        retries: dict[str, datetime]

    class DunningPolicySet(AccountEvent):
        """The account's dunning policy from now on."""

        policy: DunningPolicy

        def apply(self, aggregate: Any) -> None:
            aggregate.dunning_policy = self.policy

    class PaymentReminderDue(AccountEvent):
        """A reminder about an invoice is to be sent now, on each of the account's channels."""

        invoice_id: str
        stage: str
        template_key: str
        outstanding_minor: int
        currency: str
        due_at: datetime
        contacts: tuple[Contact, ...]

        def apply(self, aggregate: Any) -> None:
            aggregate.dunning_marks.add(f"{self.invoice_id}:{self.stage}")

    class ChargeRetryScheduled(AccountEvent):
        """A failed charge is to be retried at `retry_at`."""

        invoice_id: str
        attempt: int
        retry_at: datetime

        def apply(self, aggregate: Any) -> None:
            aggregate.retries[self.invoice_id] = self.retry_at

    class ChargeRetryDue(AccountEvent):
        """The payment system should charge the invoice again now."""

        invoice_id: str
        attempt: int
        outstanding_minor: int
        currency: str

        def apply(self, aggregate: Any) -> None:
            aggregate.retries.pop(self.invoice_id, None)

    class HardshipPauseStarted(AccountEvent):
        """The customer reported a hardship: dunning, and the default of renegotiation plans,
        pause until `until`."""

        reason: str
        until: datetime
        # What a notification sender needs to confirm the pause (absent before 0.3.0).
        template_key: str = "dunning.hardship_pause"
        contacts: tuple[Contact, ...] = ()

        def apply(self, aggregate: Any) -> None:
            aggregate.hardship_until = self.until

    class DunningFinalAction(AccountEvent):
        """An invoice stayed unpaid past the grace period; the subscriptions are acted on."""

        invoice_id: str
        action: FinalAction
        outstanding_minor: int
        currency: str
        # What a notification sender needs to tell the customer (absent before 0.3.0).
        due_at: datetime | None = None
        template_key: str = ""
        contacts: tuple[Contact, ...] = ()

        def apply(self, aggregate: Any) -> None:
            aggregate.dunning_marks.add(f"{self.invoice_id}:final")
            for sub in aggregate.subscriptions.values():
                if sub.status is SubscriptionStatus.CANCELLED:
                    continue
                sub.status = (
                    SubscriptionStatus.PAUSED
                    if self.action == FinalAction.SUSPEND
                    else SubscriptionStatus.CANCELLED
                )

    def set_dunning_policy(
        self, *, command_id: str, issued_at: datetime, policy: DunningPolicy
    ) -> None:
        """Adopt `policy` for the reminders, retries and final action from now on."""
        _check_schedule("reminder_days_before_due", policy.reminder_days_before_due)
        _check_schedule("reminder_days_after_due", policy.reminder_days_after_due)
        _check_schedule("retry_days_after_failure", policy.retry_days_after_failure)
        last_stage = max(policy.reminder_days_after_due, default=0)
        check_range("grace_days", policy.grace_days, last_stage, MAX_SCHEDULE_DAYS)
        self._record(self.DunningPolicySet, issued_at, command_id, policy=policy)

    def report_hardship(
        self, *, command_id: str, issued_at: datetime, reason: str, days: int
    ) -> None:
        """Pause dunning, and the default of renegotiation plans, for `days` because of a
        hardship the customer reported."""
        if not reason.strip():
            raise MissingValue("reason must not be empty", field="reason")
        check_range("days", days, 1, MAX_HARDSHIP_DAYS)
        until = issued_at + timedelta(days=days)
        self._record(
            self.HardshipPauseStarted,
            issued_at,
            command_id,
            reason=reason,
            until=until,
            template_key="dunning.hardship_pause",
            contacts=self.contacts,
        )

    def _schedule_retry(self, command_id: str, issued_at: datetime, invoice_id: str) -> None:
        attempt = self.failed_charges.get(invoice_id, 0)
        if self.dunning_policy != DEFAULT_POLICY:  # tell the customer the charge failed
            self._remind(
                command_id,
                issued_at,
                self.invoices[invoice_id],
                f"charge_failed_{attempt}",
                "invoice.charge_failed",
            )
        schedule = self.dunning_policy.retry_days_after_failure
        if attempt > len(schedule):
            return  # retries exhausted: the reminders and the final action take over
        retry_at = issued_at + timedelta(days=schedule[attempt - 1])
        self._record(
            self.ChargeRetryScheduled,
            issued_at,
            command_id,
            invoice_id=invoice_id,
            attempt=attempt + 1,
            retry_at=retry_at,
        )

    def _dunning_tick(self, command_id: str, now: datetime) -> None:
        """Emit what has fallen due by `now` for every open invoice, oldest due first."""
        paused = self.hardship_until is not None and now < self.hardship_until
        for invoice in sorted(self.invoices.values(), key=lambda i: (i.due_at, i.invoice_id)):
            if invoice.outstanding_minor <= 0:
                continue
            self._remind_before_due(command_id, now, invoice)
            if paused or now <= invoice.due_at:
                continue
            self._retry_if_due(command_id, now, invoice)
            self._remind_after_due(command_id, now, invoice)
            self._act_if_past_grace(command_id, now, invoice)

    def _remind_before_due(self, command_id: str, now: datetime, invoice: Invoice) -> None:
        due_days = [
            d
            for d in self.dunning_policy.reminder_days_before_due
            if invoice.due_at - timedelta(days=d) <= now < invoice.due_at
        ]
        if due_days:  # one reminder for the closest step reached, not one per missed step
            self._remind(
                command_id, now, invoice, f"before_due_{min(due_days)}", "invoice.reminder"
            )

    def _remind_after_due(self, command_id: str, now: datetime, invoice: Invoice) -> None:
        reached = [
            (number, d)
            for number, d in enumerate(self.dunning_policy.reminder_days_after_due, start=1)
            if invoice.due_at + timedelta(days=d) <= now
        ]
        if reached:
            number, _ = reached[-1]
            self._remind(
                command_id, now, invoice, f"stage_{number}", f"invoice.dunning.stage_{number}"
            )

    def _remind(
        self, command_id: str, now: datetime, invoice: Invoice, stage: str, template_key: str
    ) -> None:
        if f"{invoice.invoice_id}:{stage}" in self.dunning_marks:
            return
        self._record(
            self.PaymentReminderDue,
            now,
            command_id,
            invoice_id=invoice.invoice_id,
            stage=stage,
            template_key=template_key,
            outstanding_minor=invoice.outstanding_minor,
            currency=self.currency,
            due_at=invoice.due_at,
            contacts=self.contacts,
        )

    def _retry_if_due(self, command_id: str, now: datetime, invoice: Invoice) -> None:
        retry_at = self.retries.get(invoice.invoice_id)
        if retry_at is not None and retry_at <= now:
            self._record(
                self.ChargeRetryDue,
                now,
                command_id,
                invoice_id=invoice.invoice_id,
                attempt=self.failed_charges.get(invoice.invoice_id, 0) + 1,
                outstanding_minor=invoice.outstanding_minor,
                currency=self.currency,
            )

    def _act_if_past_grace(self, command_id: str, now: datetime, invoice: Invoice) -> None:
        if self.dunning_policy.final_action is FinalAction.NONE:
            return
        if f"{invoice.invoice_id}:final" in self.dunning_marks:
            return
        if invoice.due_at + timedelta(days=self.dunning_policy.grace_days) > now:
            return
        target = (
            SubscriptionStatus.PAUSED
            if self.dunning_policy.final_action is FinalAction.SUSPEND
            else SubscriptionStatus.CANCELLED
        )
        if all(
            sub.status in (target, SubscriptionStatus.CANCELLED)
            for sub in self.subscriptions.values()
        ):
            return  # already acted on: nothing left to suspend or cancel
        self._record(
            self.DunningFinalAction,
            now,
            command_id,
            invoice_id=invoice.invoice_id,
            action=self.dunning_policy.final_action,
            outstanding_minor=invoice.outstanding_minor,
            currency=self.currency,
            due_at=invoice.due_at,
            template_key=f"dunning.final_action.{self.dunning_policy.final_action.value.lower()}",
            contacts=self.contacts,
        )


def _check_schedule(field: str, days: tuple[int, ...]) -> None:
    if list(days) != sorted(set(days)) or any(not 1 <= d <= MAX_SCHEDULE_DAYS for d in days):
        raise InvalidSchedule(
            f"{field} must be distinct days from 1 to {MAX_SCHEDULE_DAYS} in increasing order, "
            f"got {list(days)}",
            field=field,
        )


class InvalidSchedule(RuleViolation):
    """A schedule of days is not increasing, or has a day out of range."""

    code = "invalid_schedule"
