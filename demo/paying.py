"""How the book's customers pay: charges and their outcomes, reminders, falling behind.

Each function is a customer's (or their payment system's) reaction to what the ledger said,
or an action planned on their agenda. Every action looks at the ledger's account first, so it
never names an invoice the ledger has not issued or one that owes nothing.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

from demo.catalogue import CURRENCY
from demo.customers import Habit, failure_reason, method_kind
from ledger.account_state import Invoice, SubscriptionStatus

if TYPE_CHECKING:
    from demo.life import Life

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
# Once in a while an upstream system sends a payment twice (a new command id, the same
# payment id): the ledger refuses the second `duplicate_payment`, as it should.
DUPLICATE_PAYMENT_RATE = 0.004
HARDSHIP_REASONS = ("reduced working hours", "medical leave", "business slowdown", "job loss")


def open_invoice(life: Life, invoice_id: str) -> Invoice | None:
    """The invoice if it still owes something (not paid, renegotiated or written off)."""
    invoice = life.account.invoices.get(invoice_id)
    return invoice if invoice is not None and invoice.outstanding_minor > 0 else None


def open_invoices(life: Life) -> list[Invoice]:
    """Every invoice of the customer that owes something, oldest due first."""
    owing = [i for i in life.account.invoices.values() if i.outstanding_minor > 0]
    return sorted(owing, key=lambda i: (i.due_at, i.invoice_id))


def add_method(life: Life, at: datetime, method_id: str, kind: str, *, make_default: bool) -> None:
    """Put a payment method on file; a card gets an expiry date one to three years ahead."""
    expires_on: date | None = None
    label = "SEPA transfer"
    if kind != "bank_transfer":
        months = life.rng.randint(8, 36)
        year, month = divmod(at.month - 1 + months, 12)
        expires_on = date(at.year + year, month + 1, 1) - timedelta(days=1)
        label = (
            f"{'Visa' if kind == 'credit_card' else 'Maestro'} **** {life.rng.randint(1000, 9999)}"
        )
    life.send(
        "AddPaymentMethod",
        at,
        payment_method_id=method_id,
        kind=kind,
        label=label,
        expires_on=expires_on,
        make_default=make_default,
    )
    life.method_id, life.method_kind, life.card_expires_on = method_id, kind, expires_on


def on_invoice_issued(life: Life, event: Any, at: datetime) -> None:
    """A new invoice: the payment system charges it a few minutes later."""
    life.plan(at + timedelta(minutes=10), partial(charge, invoice_id=event.invoice_id))


def on_retry_due(life: Life, event: Any, at: datetime) -> None:
    """The dunning policy says to retry a failed charge: the payment system does."""
    life.plan(at + timedelta(minutes=5), partial(charge, invoice_id=event.invoice_id, retry=True))


def charge(life: Life, at: datetime, *, invoice_id: str, retry: bool = False) -> None:
    """Ask the ledger to charge an open invoice, and plan the charge's outcome."""
    invoice = open_invoice(life, invoice_id)
    if invoice is None:
        return
    life.send("Charge", at, invoice_id=invoice_id, payment_method_id=None)
    customer, method = life.customer, method_kind(life.method_kind)
    expired = life.card_expires_on is not None and life.card_expires_on < at.date()
    if life.recovered:
        works = life.rng.random() < 0.9
    else:
        chance = customer.recovery_rate(method) if retry else 1 - customer.failure_rate(method)
        works = life.rng.random() < chance
    works = works and not expired
    reason = "card_expired" if expired else failure_reason(life.rng, method)
    settles_in = timedelta(minutes=1)
    if life.method_kind == "bank_transfer":  # the customer transfers it themselves
        if works:
            early = customer.habit is Habit.EARLY
            settles_in = timedelta(days=2 if early else life.rng.randint(3, 12))
        else:  # found missing the day after the due date
            settles_in = max(2 * DAY, invoice.due_at + DAY + 2 * HOUR - at)
    life.plan(at + settles_in, partial(outcome, invoice_id=invoice_id, works=works, reason=reason))


def outcome(life: Life, at: datetime, *, invoice_id: str, works: bool, reason: str) -> None:
    """The charge's outcome arrives: money received, or a failure with the provider's reason."""
    if open_invoice(life, invoice_id) is None:
        return
    if works:
        pay(life, at, invoice_id=invoice_id)
        return
    life.send(
        "FailCharge",
        at,
        invoice_id=invoice_id,
        payment_method_kind=life.method_kind,
        reason=reason,
    )
    if reason == "card_expired" and life.rng.random() < 0.85:
        life.plan(at + 18 * HOUR, replace_card)


def pay(life: Life, at: datetime, *, invoice_id: str) -> None:
    """Money for one invoice arrives: what it owes, less its early-payment discount if in time."""
    invoice = open_invoice(life, invoice_id)
    if invoice is None:
        return
    fields = {
        "payment_id": life.new_id("pay"),
        "amount_minor": invoice.outstanding_minor - invoice.discount_if_settled_at(at),
        "currency": CURRENCY,
        "payment_method_kind": life.method_kind,
        "invoice_id": invoice_id,
    }
    life.send("RecordPayment", at, **fields)
    if life.rng.random() < DUPLICATE_PAYMENT_RATE:
        life.send("RecordPayment", at + timedelta(minutes=3), **fields)


def pay_everything(life: Life, at: datetime) -> None:
    """The customer settles up: one payment for everything they owe."""
    owed = sum(i.outstanding_minor for i in open_invoices(life))
    if owed > 0:
        life.send(
            "RecordPayment",
            at,
            payment_id=life.new_id("pay"),
            amount_minor=owed,
            currency=CURRENCY,
            payment_method_kind=life.method_kind,
            invoice_id=None,
        )


def replace_card(life: Life, at: datetime) -> None:
    """The customer puts a new card on file for the expired one, and removes the old."""
    old = life.method_id
    add_method(life, at, life.new_id("card"), life.method_kind, make_default=True)
    life.send("RemovePaymentMethod", at, payment_method_id=old)


def on_reminder(life: Life, event: Any, at: datetime) -> None:
    """A dunning reminder went out: late payers pay; struggling customers may ask for help."""
    stage = str(event.stage)
    if not stage.startswith("stage_") or _is_installment(life, event.invoice_id):
        return
    number = int(stage.removeprefix("stage_"))
    struggling = life.customer.habit is Habit.STRUGGLING and not life.recovered
    pays = (0.1, 0.12, 0.15) if struggling else (0.5, 0.75, 0.95)
    if life.rng.random() < pays[min(number, 3) - 1]:
        later = timedelta(hours=life.rng.randint(2, 36))
        life.plan(at + later, partial(pay, invoice_id=event.invoice_id))
    elif struggling and number == 1 and _no_recent_hardship(life, at):
        if life.rng.random() < 0.45:
            life.plan(at + DAY, report_hardship)
    elif struggling and number == 2 and life.rng.random() < 0.3:
        life.plan(at + 2 * DAY, renegotiate)


def report_hardship(life: Life, at: datetime) -> None:
    """The customer reports a hardship; most then agree a plan of installments."""
    if not any(i.due_at < at for i in open_invoices(life)):
        return
    reason = life.rng.choice(HARDSHIP_REASONS)
    life.send("ReportHardship", at, reason=reason, days=life.rng.randint(30, 60))
    life.last_hardship_at = at
    if life.rng.random() < 0.75:
        life.plan(at + timedelta(days=life.rng.randint(10, 25)), renegotiate)


def renegotiate(life: Life, at: datetime) -> None:
    """The overdue invoices become three installments, some debt forgiven or interest added."""
    overdue = [
        i for i in open_invoices(life) if i.due_at < at and not _is_installment(life, i.invoice_id)
    ]
    debt = sum(i.outstanding_minor for i in overdue)
    if debt < 300:
        return
    forgive = life.rng.random() < 0.5
    life.send(
        "Renegotiate",
        at,
        plan_id=life.new_id("reneg"),
        invoice_ids=[i.invoice_id for i in overdue],
        installments=3,
        first_due_at=at + timedelta(days=14),
        interval_days=30,
        interest_minor=0 if forgive else debt * 2 // 100,
        forgiven_minor=debt // 10 if forgive else 0,
    )


def on_renegotiated(life: Life, event: Any, at: datetime) -> None:
    """A plan of installments: most customers keep to it, the others stop paying."""
    keeps_to_it = life.rng.random() < 0.6
    paid = len(event.schedule) if keeps_to_it else life.rng.randint(0, 1)
    life.recovered = keeps_to_it
    for line in event.schedule[:paid]:
        life.plan(line.due_at - 2 * DAY, partial(pay, invoice_id=line.invoice_id))


def on_renegotiation_defaulted(life: Life, event: Any, at: datetime) -> None:
    """The plan defaulted: what is left is written off after a last attempt to collect."""
    life.plan(
        at + timedelta(days=45), partial(write_off_everything, reason="renegotiation defaulted")
    )


def on_final_action(life: Life, event: Any, at: datetime) -> None:
    """Suspended or cancelled for non-payment: some settle up and come back, others are lost."""
    struggling = life.customer.habit is Habit.STRUGGLING and not life.recovered
    if life.rng.random() < (0.3 if struggling else 0.8):
        life.plan(at + timedelta(days=life.rng.randint(3, 25)), settle_up)
    else:
        later = timedelta(days=life.rng.randint(30, 50))
        life.plan(at + later, partial(write_off_everything, reason="unpaid after dunning"))


def settle_up(life: Life, at: datetime) -> None:
    """The customer pays what they owe, and the subscription is started again."""
    pay_everything(life, at)
    status = life.subscription.status
    if status is SubscriptionStatus.PAUSED:
        life.send("ResumeSubscription", at, subscription_id=life.subscription_id)
    elif status is SubscriptionStatus.CANCELLED:
        life.send("ReactivateSubscription", at, subscription_id=life.subscription_id)


def write_off_everything(life: Life, at: datetime, *, reason: str) -> None:
    """Give up on what the customer owes, and end the subscription for non-payment."""
    for invoice in open_invoices(life):
        life.send("WriteOff", at, invoice_id=invoice.invoice_id, reason=reason)
    sub = life.subscription
    if sub.status is not SubscriptionStatus.CANCELLED and sub.cancel_at is None:
        life.send("CancelSubscription", at, subscription_id=life.subscription_id)


def _is_installment(life: Life, invoice_id: str) -> bool:
    return any(invoice_id in p.installment_ids for p in life.account.renegotiations.values())


def _no_recent_hardship(life: Life, at: datetime) -> bool:
    return life.last_hardship_at is None or at - life.last_hardship_at > timedelta(days=90)
