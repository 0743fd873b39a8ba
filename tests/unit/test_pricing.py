"""Specification of price changes: announced with notice, applied from the next cycle after it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from commands.messages import AnnouncePriceChange
from ledger.application import BillingLedger
from tests.helpers import CODEC
from tests.unit.builders import Sender, account_events, advance_clock, open_account, subscribe
from wire.event_records import outgoing

START = datetime(2024, 1, 1, tzinfo=UTC)
DAY = timedelta(days=1)


def announce(
    when: datetime, effective_from: datetime, price: int = 2000, sub: str = "sub-1"
) -> AnnouncePriceChange:
    return AnnouncePriceChange(
        str(uuid.uuid4()),
        "acc-1",
        when,
        subscription_id=sub,
        new_price_minor=price,
        effective_from=effective_from,
    )


def named(ledger: BillingLedger, name: str) -> list[Any]:
    return [e for e in account_events(ledger) if type(e).__name__ == name]


@pytest.fixture(name="monthly")
def fixture_monthly(send: Sender) -> Sender:
    """acc-1 on 15.00 EUR a month from 1 January."""
    send(open_account(issued_at=START), subscribe(issued_at=START, price_minor=1500))
    return send


class TestAnnouncement:
    """An announcement needs 30 days of notice and tells the customer on every channel."""

    def test_announced_with_notice(self, ledger: BillingLedger, monthly: Sender) -> None:
        """The event carries the old and new price, the date, the channels and a template key."""
        (outcome,) = monthly(announce(START + DAY, START + 31 * DAY))
        assert outcome.rejection is None
        (event,) = named(ledger, "PriceChangeAnnounced")
        assert (event.previous_price_minor, event.new_price_minor) == (1500, 2000)
        assert event.template_key == "subscription.price_change"
        assert [c.channel for c in event.contacts] == ["email"]
        message = outgoing(event, 1, CODEC)
        assert CODEC.decode(message.value).record["effective_from"] == START + 31 * DAY

    def test_too_little_notice_is_rejected(self, ledger: BillingLedger, monthly: Sender) -> None:
        """29 days ahead: insufficient_notice on effective_from, nothing announced."""
        (outcome,) = monthly(announce(START + DAY, START + 30 * DAY))
        assert outcome.rejection is not None
        assert (outcome.rejection.code, outcome.rejection.field) == (
            "insufficient_notice",
            "effective_from",
        )
        assert named(ledger, "PriceChangeAnnounced") == []

    @pytest.mark.parametrize(
        ("command", "code", "field"),
        [
            (
                announce(START, START + 40 * DAY, sub="sub-9"),
                "unknown_subscription",
                "subscription_id",
            ),
            (announce(START, START + 40 * DAY, price=-1), "negative_amount", "new_price_minor"),
        ],
    )
    def test_invalid_announcements(
        self, monthly: Sender, command: AnnouncePriceChange, code: str, field: str
    ) -> None:
        """The rule and the field are named."""
        (outcome,) = monthly(command)
        assert outcome.rejection is not None
        assert (outcome.rejection.code, outcome.rejection.field) == (code, field)


class TestApplication:
    """The clock applies the new price to cycles starting on or after the effective date."""

    def test_the_first_cycle_after_the_date_has_the_new_price(
        self, ledger: BillingLedger, monthly: Sender
    ) -> None:
        """Announced 1 Jan for 10 Feb: February (starts 1 Feb) at 15.00, March at 20.00."""
        monthly(announce(START, START + 40 * DAY))
        monthly(advance_clock(issued_at=datetime(2024, 3, 1, tzinfo=UTC)))
        account = ledger.account("acc-1")
        assert account is not None
        amounts = {i: account.invoices[i].amount_minor for i in ("sub-1/1", "sub-1/2", "sub-1/3")}
        assert amounts == {"sub-1/1": 1500, "sub-1/2": 1500, "sub-1/3": 2000}
        (applied,) = named(ledger, "PriceChangeApplied")
        assert (applied.previous_price_minor, applied.price_minor) == (1500, 2000)
        assert account.subscriptions["sub-1"].terms.price_minor == 2000

    def test_the_latest_announcement_replaces_a_pending_one(
        self, ledger: BillingLedger, monthly: Sender
    ) -> None:
        """20.00 from 10 Feb, then 18.00 from 1 Apr: March stays 15.00, April is 18.00."""
        monthly(announce(START, START + 40 * DAY, price=2000))
        monthly(announce(START + DAY, datetime(2024, 4, 1, tzinfo=UTC), price=1800))
        monthly(advance_clock(issued_at=datetime(2024, 4, 1, tzinfo=UTC)))
        account = ledger.account("acc-1")
        assert account is not None
        amounts = [account.invoices[f"sub-1/{k}"].amount_minor for k in (1, 2, 3, 4)]
        assert amounts == [1500, 1500, 1500, 1800]
        (applied,) = named(ledger, "PriceChangeApplied")
        assert (applied.previous_price_minor, applied.price_minor) == (1500, 1800)
