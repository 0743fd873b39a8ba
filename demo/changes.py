"""How the book's customers change their subscription: the monthly review of each customer.

Once a month a customer may answer the feedback survey, leave (more likely the unhappier they
are, and after a price rise), move up or down a plan, pause, get a goodwill credit note, or
switch how they pay. Cancelled customers may come back; trials convert or end.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from demo import paying
from demo.catalogue import MONTHLY_LADDER
from demo.clock import next_month
from demo.customers import feedback_score
from ledger.account_state import SubscriptionStatus

if TYPE_CHECKING:
    from demo.life import Life

DAY = timedelta(days=1)
FEEDBACK_TOPICS = ("billing", "support", "product", "pricing")
COMMENTS = {
    "low": (
        "Too expensive for what it does.",
        "Support took days to answer.",
        "Billing errors again.",
    ),
    "mid": ("Does the job.", "Fine, a few rough edges.", ""),
    "high": ("Love it, the team uses it daily.", "Great support.", "Worth every cent."),
}


def review(life: Life, at: datetime) -> None:
    """The customer's month: feedback, and perhaps a change to the subscription."""
    sub = life.subscription
    if sub.status is SubscriptionStatus.CANCELLED:
        return  # no more reviews, unless the customer comes back
    life.plan(next_month(at), review)
    if sub.status is not SubscriptionStatus.ACTIVE or sub.cancel_at is not None:
        return
    rng, customer = life.rng, life.customer
    if rng.random() < 0.3:
        record_feedback(life, at, rng.choice(FEEDBACK_TOPICS))
    churn = customer.monthly_churn * (3 if _price_rise_recent(life, at) else 1)
    monthly = sub.terms.plan_id in MONTHLY_LADDER
    if rng.random() < churn:
        cancel(life, at + 2 * DAY)
    elif monthly and rng.random() < 0.03 * customer.satisfaction:
        change_plan(life, at, +1)
    elif monthly and rng.random() < 0.02 * (1 - customer.satisfaction):
        change_plan(life, at, -1)
    elif rng.random() < 0.01:
        life.send("PauseSubscription", at, subscription_id=life.subscription_id)
        life.plan(at + timedelta(days=rng.randint(20, 60)), resume)
    if rng.random() < 0.015:
        goodwill_credit(life, at + DAY)
    if rng.random() < 0.01:
        switch_method(life, at + DAY)


def record_feedback(life: Life, at: datetime, topic: str) -> None:
    """The customer answers a survey with a score that follows their satisfaction."""
    score = feedback_score(life.rng, life.customer.satisfaction)
    mood = "low" if score <= 6 else "mid" if score <= 8 else "high"
    life.send(
        "RecordFeedback",
        at,
        feedback_id=life.new_id("nps"),
        score=score,
        comment=life.rng.choice(COMMENTS[mood]),
        topic=topic,
    )


def cancel(life: Life, at: datetime) -> None:
    """The customer leaves of their own accord; most say why on the way out."""
    sub = life.subscription
    if sub.status is SubscriptionStatus.CANCELLED or sub.cancel_at is not None:
        return
    life.send("CancelSubscription", at, subscription_id=life.subscription_id)
    if life.rng.random() < 0.6:
        record_feedback(life, at, "cancellation")


def on_cancellation_scheduled(life: Life, event: Any, at: datetime) -> None:
    """A cancellation at the period's end: one customer in ten changes their mind."""
    if life.rng.random() < 0.1 and event.cancel_at - at > 3 * DAY:
        life.plan(at + timedelta(days=life.rng.randint(1, 3)), reactivate)


def on_cancelled(life: Life, event: Any, at: datetime) -> None:
    """The subscription ended: credit left is refunded, and some customers come back later."""
    if life.account.credit_minor > 0:
        life.plan(at + 3 * DAY, refund_credit)
    if life.rng.random() < 0.12:
        life.plan(at + timedelta(days=life.rng.randint(20, 90)), come_back)


def come_back(life: Life, at: datetime) -> None:
    """A former customer returns, if they owe nothing, and the monthly reviews start again."""
    written_off = any(i.written_off_minor for i in life.account.invoices.values())
    if written_off or paying.open_invoices(life):
        return  # the business does not take back a customer it lost money on
    if life.subscription.status is SubscriptionStatus.CANCELLED:
        life.send("ReactivateSubscription", at, subscription_id=life.subscription_id)
        life.plan(next_month(at), review)


def reactivate(life: Life, at: datetime) -> None:
    """Withdraw a scheduled cancellation that has not taken effect yet."""
    sub = life.subscription
    if sub.cancel_at is not None and sub.cancel_at > at:
        life.send("ReactivateSubscription", at, subscription_id=life.subscription_id)


def resume(life: Life, at: datetime) -> None:
    """Back from a pause the customer asked for."""
    if life.subscription.status is SubscriptionStatus.PAUSED:
        life.send("ResumeSubscription", at, subscription_id=life.subscription_id)


def trial_decision(life: Life, at: datetime) -> None:
    """Three days before the trial ends, unhappy or undecided customers cancel."""
    if life.rng.random() < 0.15 + 0.3 * (1 - life.customer.satisfaction):
        cancel(life, at)


def change_plan(life: Life, at: datetime, steps: int) -> None:
    """Move one plan up or down the monthly ladder, at the catalogue's price."""
    current = MONTHLY_LADDER.index(life.subscription.terms.plan_id)
    target = current + steps
    if 0 <= target < len(MONTHLY_LADDER):
        life.send(
            "ChangePlan",
            at,
            subscription_id=life.subscription_id,
            plan_id=MONTHLY_LADDER[target],
            price_minor=None,
        )


def goodwill_credit(life: Life, at: datetime) -> None:
    """Support gives back part of the last invoice after an outage or a complaint."""
    invoices = [i for i in life.account.invoices.values() if i.subscription_id]
    if not invoices:
        return
    invoice = invoices[-1]
    left = invoice.amount_minor - invoice.credited_minor - invoice.written_off_minor
    amount = left * life.rng.choice((10, 25, 50)) // 100
    if amount > 0:
        life.send(
            "IssueCreditNote",
            at,
            credit_note_id=life.new_id("goodwill"),
            invoice_id=invoice.invoice_id,
            amount_minor=amount,
            reason=life.rng.choice(("service outage", "billing complaint", "onboarding delay")),
        )
        if life.account.credit_minor > 0 and life.rng.random() < 0.4:  # rather have the money
            life.plan(at + timedelta(days=life.rng.randint(2, 5)), refund_credit)


def refund_credit(life: Life, at: datetime) -> None:
    """Credit a customer who left still holds is paid back."""
    credit = life.account.credit_minor
    if credit > 0:
        life.send(
            "RefundCredit",
            at,
            refund_id=life.new_id("refund"),
            amount_minor=credit,
            payment_method_kind=life.method_kind,
        )


def switch_method(life: Life, at: datetime) -> None:
    """The customer pays another way from now on: a method put on file, then made the default."""
    kinds = [k for k in ("credit_card", "debit_card", "bank_transfer") if k != life.method_kind]
    kind = life.rng.choice(kinds)
    method_id = life.new_id("method")
    paying.add_method(life, at, method_id, kind, make_default=False)
    life.send("SetDefaultPaymentMethod", at, payment_method_id=method_id)


def announce_price_rise(
    life: Life, at: datetime, *, new_price_minor: int, notice: timedelta
) -> None:
    """Tell a Starter subscriber their price rises, with the notice the ledger requires."""
    sub = life.subscription
    if sub.status is SubscriptionStatus.CANCELLED or sub.terms.plan_id != MONTHLY_LADDER[0]:
        return
    life.send(
        "AnnouncePriceChange",
        at,
        subscription_id=life.subscription_id,
        new_price_minor=new_price_minor,
        effective_from=at + notice,
    )
    life.price_rise_notified_at = at


def _price_rise_recent(life: Life, at: datetime) -> bool:
    notified = life.price_rise_notified_at
    return notified is not None and at - notified < timedelta(days=75)
