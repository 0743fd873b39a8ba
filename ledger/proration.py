"""Money for unused time: plan changes with proration, and the credit notes the ledger derives.

`Proration` extends the Account's `Lifecycle` part (a mixin): the events it records
(PlanChanged, CreditNoteIssued) are declared there with the subscription's others.
Prorated amounts are `amount * unused / period` in whole seconds, rounded down to the minor
unit: a customer is never refunded, nor charged, more than the exact share.

A plan change or a prorated cancellation credits the unused share of the invoice that charged
the rest of the period (the cycle's own invoice, or after a plan change that change's
proration invoice, which charged from the change to the period's end), at the price actually
charged by it: its amount less its early-payment discount (granted, or still to be had) and
any forgiveness, over the period it charged for. So each day of a period is charged at the
price in force that day and credited back at most once. No credit note gives back more than
its invoice has left to credit (what it charged, less earlier credit notes and write-offs):
the credit is cut to that, down to nothing for a written-off invoice. Every credit note's
credit settles open invoices at once: its own invoice first, then the oldest due.

A plan change withdraws a price change announced for the old terms and not yet applied
(PriceChangeWithdrawn): the customer was told about a price for the plan they leave.

Documents a command derives are numbered, never named after the command id (UUIDv7 ids sent
within a minute share their first characters): a plan change's invoice is
`<subscription>/<k>/change-<n>`, after `<subscription>/<k>`, the invoice of the cycle it
changes (k = cycle + 1, the invoice number), and a derived credit note
`<invoice>/credit-<n>`, n the first number not taken. Older histories keep their `change-<8 hex>` and `credit-<8 hex>` ids;
no rule reads a meaning into an id.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING

from ledger.account_state import Invoice, Subscription
from ledger.bounds import check_total
from ledger.errors import MissingValue
from ledger.lifecycle import Lifecycle
from ledger.money import check_amount
from ledger.postings import LedgerAccount, transfer


class Proration(Lifecycle):
    """Plan changes, crediting the unused share of a period, and the credit notes derived."""

    if TYPE_CHECKING:  # provided by Account

        def _withdraw_price_change(
            self,
            command_id: str,
            issued_at: datetime,
            sub: Subscription,
            plan_id: str,
            reason: str,
        ) -> None: ...

    def change_plan(
        self,
        *,
        command_id: str,
        issued_at: datetime,
        subscription_id: str,
        plan_id: str,
        price_minor: int,
        plan_version: int | None = None,
    ) -> None:
        """Move to another plan now, crediting the unused share and charging the new one.

        `plan_version` is the catalogue plan's version the price came from (None: custom).
        """
        sub = self._active(subscription_id)
        check_amount(price_minor, field="price_minor")
        if not plan_id.strip():
            raise MissingValue("plan_id must not be empty", field="plan_id")
        old = sub.terms
        current = self._invoice_in_force(sub, issued_at)
        self._check_invoicing(price_minor, field="price_minor")
        if current is not None:
            self._check_crediting(current, issued_at, field="price_minor")
        self._record(
            self.PlanChanged,
            issued_at,
            command_id,
            subscription_id=subscription_id,
            terms=replace(old, plan_id=plan_id, price_minor=price_minor, plan_version=plan_version),
            previous_plan_id=old.plan_id,
            previous_price_minor=old.price_minor,
        )
        self._withdraw_price_change(command_id, issued_at, sub, old.plan_id, "plan_change")
        if sub.cycles_invoiced == 0:
            return  # in a trial, or not invoiced yet: the next invoice has the new price
        start, end = sub.period(sub.cycles_invoiced - 1)
        if not start <= issued_at < end:
            return  # the invoiced cycle is over: the next invoice has the new price
        if current is not None:  # none after a change to a free price: nothing left to credit
            self._credit_unused(command_id, issued_at, current, "plan_change")
        charge = prorated(price_minor, start, end, issued_at)
        if charge:
            self._issue_invoice(command_id, issued_at, sub, ("change", charge))

    def _credit_unused(
        self, command_id: str, issued_at: datetime, invoice: Invoice, reason: str
    ) -> int:
        """Credit the unused share of what `invoice` charged for its period; answers what was
        credited."""
        assert invoice.period_start is not None and invoice.period_end is not None
        charged = invoice.charged_at(issued_at)
        unused = prorated(charged, invoice.period_start, invoice.period_end, issued_at)
        return self._credit_note(command_id, issued_at, invoice, reason, unused)

    def _check_crediting(self, invoice: Invoice, issued_at: datetime, *, field: str) -> None:
        """Refuse, naming `field`, a credit note on `invoice` that could take the account's
        credit or credited total past its bound."""
        most = invoice.creditable_at(issued_at)
        check_total("customer credit", self.credit_minor, most, field=field)
        check_total("credited total", self.totals.credited_minor, most, field=field)

    def _credit_note(
        self,
        command_id: str,
        issued_at: datetime,
        invoice: Invoice,
        reason: str,
        amount: int,
        credit_note_id: str | None = None,
    ) -> int:
        """Give `amount` of the invoice's revenue back as credit, which settles the invoice if
        it is open, then the other open invoices, oldest due first; unless the sender chose an
        id, it is the invoice's next `credit-<n>`.

        At most what the invoice has left to credit is given back; answers what was."""
        amount = min(amount, invoice.creditable_at(issued_at))
        if amount <= 0:
            return 0
        self._record(
            self.CreditNoteIssued,
            issued_at,
            command_id,
            credit_note_id=credit_note_id
            or numbered_id(f"{invoice.invoice_id}/credit", self.credit_note_ids),
            invoice_id=invoice.invoice_id,
            amount_minor=amount,
            currency=self.currency,
            reason=reason,
            postings=transfer(LedgerAccount.REVENUE, LedgerAccount.CUSTOMER_CREDIT, amount),
        )
        self._settle_with_credit(command_id, issued_at, first=invoice.invoice_id)
        return amount

    def _invoice_in_force(self, sub: Subscription, now: datetime) -> Invoice | None:
        """The invoice that charged the rest of the period `now` falls in, if that cycle was
        invoiced: the last plan change's proration invoice, else the cycle's own invoice."""
        if sub.cycles_invoiced == 0:
            return None
        start, end = sub.period(sub.cycles_invoiced - 1)
        if not start <= now < end:
            return None
        # Invoices are kept in the order they were issued, on replay too, and the last one of
        # a subscription is of its last cycle invoiced: the cycle's own, or a later proration.
        charged_by = [i for i in self.invoices.values() if i.subscription_id == sub.subscription_id]
        if not charged_by:
            return None
        last = charged_by[-1]
        # A change to a free price issues no invoice: the last one was credited for the rest
        # of the period then, and must not be credited for it again.
        changed_at, charged_from = sub.changed_at, last.period_start
        if changed_at is not None and charged_from is not None and charged_from < changed_at:
            return None
        return last


def prorated(amount_minor: int, start: datetime, end: datetime, now: datetime) -> int:
    """The share of `amount_minor` for the part of [start, end) after `now`, rounded down."""
    total = int((end - start).total_seconds())
    unused = max(0, min(total, int((end - now).total_seconds())))
    return amount_minor * unused // total if total > 0 else 0


def numbered_id(stem: str, taken: Collection[str]) -> str:
    """`<stem>-<n>` with the smallest n from 1 that is not `taken`."""
    number = 1
    while f"{stem}-{number}" in taken:
        number += 1
    return f"{stem}-{number}"
