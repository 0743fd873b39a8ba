"""A change to a free plan credits the rest of the period once: never again later."""

from __future__ import annotations

from datetime import timedelta

from ledger.account import Account, CancellationPolicy
from tests.unit.test_lifecycle import (
    APRIL,
    CancelSubscription,
    ChangePlan,
    Sender,
    account_events,
    in_memory_ledger,
    on_subscription,
    open_account,
    subscribe,
)

DAY = timedelta(days=1)


class TestAFreePlanCreditsOnce:
    """After a change to a price of 0, what the customer was charged for before stays charged."""

    def test_a_cancellation_after_a_free_plan_credits_nothing_more(self) -> None:
        """30.00 for April, free from 16 April, cancelled with refund on 20 April: 15.00 stays billed."""
        send = Sender(in_memory_ledger())
        send(
            open_account(issued_at=APRIL),
            subscribe(
                issued_at=APRIL,
                price_minor=3000,
                cancellation_policy=CancellationPolicy.IMMEDIATELY_WITH_PRORATED_REFUND,
            ),
        )
        send(on_subscription(ChangePlan, APRIL + 15 * DAY, plan_id="free", price_minor=0))
        send(on_subscription(CancelSubscription, APRIL + 19 * DAY))
        events = account_events(send.ledger)
        credits = [e.amount_minor for e in events if isinstance(e, Account.CreditNoteIssued)]
        invoiced = [e.amount_minor for e in events if isinstance(e, Account.InvoiceIssued)]
        assert invoiced == [3000]  # April is 30 days: the free plan issues no invoice
        assert credits == [1500]  # 15 unused days of 30, once; the cancellation adds nothing
