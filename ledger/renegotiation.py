"""Debt renegotiation: overdue invoices consolidated into a plan of installments.

`Renegotiation` is a part of the Account aggregate (a mixin); its events are account events.
A plan takes over what is outstanding on the original invoices (they keep a link to the plan),
may forgive part of it (Dr write_off, Cr receivable) and may add interest, which is revenue
(Dr receivable, Cr revenue). The rest is split into installments, each an invoice of its own:
equal parts rounded down to the minor unit, the remainder added to the LAST installment.
An original invoice owes nothing afterwards: a command that needs it open (a payment or a
charge naming it, a failed charge, a write-off, another renegotiation) is refused
`invoice_renegotiated`, naming the plan and its installments; a credit note on it is accepted,
and its credit settles the installments.

A missed installment has one consequence, decided by the clock: once an installment is unpaid
more than INSTALLMENT_GRACE_DAYS after its due date, the plan defaults, once. Every later
installment not yet due becomes due at the time of the default (acceleration; the amounts and
postings stay), and dunning then treats them like any overdue invoice.

A hardship pause (Dunning's ReportHardship) holds the default back as it holds dunning back:
while the pause is on, no installment defaults the plan, and an installment's grace runs from
the later of its due date and the end of the account's pause (`hardship_until`, the last pause
reported). A pause reported before the clock records the default therefore still holds it,
even if the grace after the due date has already run out by then.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from ledger.account_state import AccountEvent, AccountPart, Contact, Invoice
from ledger.bounds import Totals, check_total
from ledger.errors import (
    MissingValue,
    RuleViolation,
    check_distinct,
    check_range,
    check_text,
    check_time_range,
)
from ledger.invoice_rules import INVOICE_RENEGOTIATED
from ledger.money import check_amount
from ledger.postings import LedgerAccount, Posting, check_balanced, transfer

MAX_PLAN_ID_LENGTH = 128
MAX_INSTALLMENTS = 60
MAX_INTERVAL_DAYS = 366
MAX_DAYS_TO_FIRST_DUE = 366
INSTALLMENT_GRACE_DAYS = 7


@dataclass(frozen=True)
class OriginalDebt:
    """What a renegotiation plan took over from one original invoice."""

    invoice_id: str
    amount_minor: int


@dataclass(frozen=True)
class Installment:
    """One installment of a plan: an invoice of its own, due at `due_at`."""

    invoice_id: str
    amount_minor: int
    due_at: datetime


@dataclass
class RenegotiationPlan:
    """The account's view of one plan: its installments, and whether it has defaulted."""

    plan_id: str
    installment_ids: tuple[str, ...]
    defaulted: bool = False


class Renegotiation(AccountPart):
    """Installment plans for overdue debt, and their default when an installment is missed."""

    if TYPE_CHECKING:  # provided by Account
        renegotiations: dict[str, RenegotiationPlan]
        hardship_until: datetime | None
        totals: Totals

        def _open_invoice(self, invoice_id: str, *, field: str = "invoice_id") -> Invoice: ...

    class DebtRenegotiated(AccountEvent):
        """Overdue invoices became a plan of installments, with forgiveness and interest."""

        plan_id: str
        original_debts: tuple[OriginalDebt, ...]
        debt_minor: int
        forgiven_minor: int
        interest_minor: int
        currency: str
        schedule: tuple[Installment, ...]
        postings: tuple[Posting, ...]

        def apply(self, aggregate: Any) -> None:
            forgiven = self.forgiven_minor  # forgiven from the invoices in the order named
            for debt in self.original_debts:
                original = aggregate.invoices[debt.invoice_id]
                original.renegotiated_into = self.plan_id
                original.forgiven_minor = min(forgiven, debt.amount_minor)
                forgiven -= original.forgiven_minor
            aggregate.totals.invoiced_minor += self.interest_minor  # interest is billed revenue
            for line in self.schedule:
                # An installment belongs to the plan, not to a subscription.
                aggregate.invoices[line.invoice_id] = Invoice(
                    line.invoice_id, "", line.amount_minor, line.due_at
                )
            aggregate.renegotiations[self.plan_id] = RenegotiationPlan(
                self.plan_id, tuple(line.invoice_id for line in self.schedule)
            )

    class RenegotiationDefaulted(AccountEvent):
        """An installment stayed unpaid past the grace: the installments not yet due are due now."""

        plan_id: str
        missed_invoice_id: str
        missed_due_at: datetime
        accelerated_invoice_ids: tuple[str, ...]
        accelerated_minor: int
        currency: str
        due_at: datetime
        # What a notification sender needs to tell the customer (absent before 0.3.0).
        template_key: str = "renegotiation.defaulted"
        contacts: tuple[Contact, ...] = ()

        def apply(self, aggregate: Any) -> None:
            aggregate.renegotiations[self.plan_id].defaulted = True
            for invoice_id in self.accelerated_invoice_ids:
                aggregate.invoices[invoice_id].due_at = self.due_at

    def renegotiate(
        self,
        *,
        command_id: str,
        issued_at: datetime,
        plan_id: str,
        invoice_ids: tuple[str, ...],
        installments: int,
        first_due_at: datetime,
        interval_days: int,
        interest_minor: int = 0,
        forgiven_minor: int = 0,
    ) -> None:
        """Consolidate the overdue `invoice_ids` into `installments` invoices, the first due at
        `first_due_at` and each next one `interval_days` later."""
        self._check_plan_id(plan_id)
        debts = self._original_debts(invoice_ids, issued_at)
        debt_minor = sum(debt.amount_minor for debt in debts)
        total_minor = _amount_to_pay(debt_minor, forgiven_minor, interest_minor)
        check_total(
            "invoiced total", self.totals.invoiced_minor, interest_minor, field="interest_minor"
        )
        check_range("installments", installments, 1, min(MAX_INSTALLMENTS, total_minor))
        latest_first_due = issued_at + timedelta(days=MAX_DAYS_TO_FIRST_DUE)
        check_time_range("first_due_at", first_due_at, issued_at, latest_first_due)
        check_range("interval_days", interval_days, 1, MAX_INTERVAL_DAYS)
        schedule = installment_schedule(
            plan_id, total_minor, installments, first_due_at, timedelta(days=interval_days)
        )
        self._check_unused(plan_id, schedule)
        self._record(
            self.DebtRenegotiated,
            issued_at,
            command_id,
            plan_id=plan_id,
            original_debts=debts,
            debt_minor=debt_minor,
            forgiven_minor=forgiven_minor,
            interest_minor=interest_minor,
            currency=self.currency,
            schedule=schedule,
            postings=check_balanced(
                transfer(LedgerAccount.WRITE_OFF, LedgerAccount.RECEIVABLE, forgiven_minor)
                + transfer(LedgerAccount.RECEIVABLE, LedgerAccount.REVENUE, interest_minor)
            ),
        )
        for line in schedule:  # credit the account holds settles installments, like any invoice
            self._apply_credit(command_id, issued_at, line.invoice_id)

    def _renegotiation_tick(self, command_id: str, now: datetime) -> None:
        """Default each plan, once, whose installment is unpaid past the grace by `now`."""
        for plan in self.renegotiations.values():
            if plan.defaulted:
                continue
            installments = [self.invoices[invoice_id] for invoice_id in plan.installment_ids]
            missed = next(
                (i for i in installments if i.outstanding_minor > 0 and self._grace_ends(i) < now),
                None,
            )
            if missed is not None:
                self._default(command_id, now, plan, missed, installments)

    def _grace_ends(self, installment: Invoice) -> datetime:
        """When an unpaid installment defaults its plan: the grace after its due date, or after
        the hardship pause if that ends later (a pause still on never lets it default)."""
        grace_from = max(installment.due_at, self.hardship_until or installment.due_at)
        return grace_from + timedelta(days=INSTALLMENT_GRACE_DAYS)

    def _default(
        self,
        command_id: str,
        now: datetime,
        plan: RenegotiationPlan,
        missed: Invoice,
        installments: list[Invoice],
    ) -> None:
        # Installments already due keep their date: acceleration never postpones a due date.
        accelerated = [i for i in installments if i.outstanding_minor > 0 and i.due_at > now]
        self._record(
            self.RenegotiationDefaulted,
            now,
            command_id,
            plan_id=plan.plan_id,
            missed_invoice_id=missed.invoice_id,
            missed_due_at=missed.due_at,
            accelerated_invoice_ids=tuple(i.invoice_id for i in accelerated),
            accelerated_minor=sum(i.outstanding_minor for i in accelerated),
            currency=self.currency,
            due_at=now,
            template_key="renegotiation.defaulted",
            contacts=self.contacts,
        )

    def _check_not_renegotiated(self, invoice: Invoice, field: str) -> None:
        """Refuse a command that needs `invoice` open when its debt moved into a plan."""
        plan_id = invoice.renegotiated_into
        if plan_id is None:
            return
        installments = self.renegotiations[plan_id].installment_ids
        named = repr(installments[0])
        if len(installments) > 1:
            named += f" to {installments[-1]!r}"
        raise InvoiceRenegotiated(
            f"invoice {invoice.invoice_id!r} was renegotiated into plan {plan_id!r} and owes "
            f"nothing itself: what it owed is owed on the plan's installments {named}; name an "
            "installment instead",
            field=field,
        )

    def _check_plan_id(self, plan_id: str) -> None:
        check_text("plan_id", plan_id, MAX_PLAN_ID_LENGTH)
        # Installments are invoices `<plan_id>/<k>`, like a subscription's `<id>/<cycle>`.
        if plan_id in self.renegotiations or plan_id in self.subscriptions:
            raise DuplicateRenegotiation(
                f"plan_id {plan_id!r} is already used on account {self.account_id!r} by a "
                "renegotiation plan or a subscription",
                field="plan_id",
            )

    def _check_unused(self, plan_id: str, schedule: tuple[Installment, ...]) -> None:
        taken = [line.invoice_id for line in schedule if line.invoice_id in self.invoices]
        if taken:
            raise DuplicateRenegotiation(
                f"plan_id {plan_id!r} would reuse the invoice id {taken[0]!r}", field="plan_id"
            )

    def _original_debts(
        self, invoice_ids: tuple[str, ...], issued_at: datetime
    ) -> tuple[OriginalDebt, ...]:
        if not invoice_ids:
            raise MissingValue("invoice_ids must name at least one invoice", field="invoice_ids")
        check_distinct("invoice_ids", invoice_ids)
        return tuple(self._overdue_debt(invoice_id, issued_at) for invoice_id in invoice_ids)

    def _overdue_debt(self, invoice_id: str, issued_at: datetime) -> OriginalDebt:
        invoice = self._open_invoice(invoice_id, field="invoice_ids")
        if not (invoice.overdue or invoice.due_at < issued_at):
            raise InvoiceNotOverdue(
                f"invoice {invoice_id!r} is due {invoice.due_at.isoformat()}, not overdue at "
                f"{issued_at.isoformat()}; only overdue invoices can be renegotiated",
                field="invoice_ids",
            )
        return OriginalDebt(invoice_id, invoice.outstanding_minor)


def _amount_to_pay(debt_minor: int, forgiven_minor: int, interest_minor: int) -> int:
    """The debt less forgiveness plus interest, once both are checked."""
    check_amount(forgiven_minor, field="forgiven_minor")
    check_range("forgiven_minor", forgiven_minor, 0, debt_minor - 1)
    check_amount(interest_minor, field="interest_minor")
    return debt_minor - forgiven_minor + interest_minor


def installment_schedule(
    plan_id: str, total_minor: int, count: int, first_due_at: datetime, interval: timedelta
) -> tuple[Installment, ...]:
    """`count` installments `<plan_id>/<k>` summing to `total_minor`, one every `interval`.

    Each is `total_minor // count`, rounded down; the remainder is added to the last, so
    every installment but the last is equal and the customer never pays ahead of the share.
    """
    part, remainder = divmod(total_minor, count)
    return tuple(
        Installment(
            f"{plan_id}/{k}",
            part + (remainder if k == count else 0),
            first_due_at + (k - 1) * interval,
        )
        for k in range(1, count + 1)
    )


class DuplicateRenegotiation(RuleViolation):
    """The plan id is already used on the account."""

    code = "duplicate_renegotiation"


class InvoiceNotOverdue(RuleViolation):
    """Only invoices past their due date can be renegotiated."""

    code = "invoice_not_overdue"


class InvoiceRenegotiated(RuleViolation):
    """The invoice's debt moved into a renegotiation plan: its installments owe it now."""

    code = INVOICE_RENEGOTIATED
