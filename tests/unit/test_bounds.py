"""Specification of the money bounds: amounts at most 10^15, account totals at most 10^17.

A command that would carry a larger amount, or take a total past its bound, is refused
`out_of_range` naming the field, and changes nothing (issue 10, defect 1).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from commands.messages import Command, IssueCreditNote, RefundCredit
from ledger.application import BillingLedger
from ledger.bounds import MAX_AMOUNT_MINOR, MAX_TOTAL_MINOR
from tests.unit.builders import Sender, advance_clock, open_account, record_payment, subscribe
from tests.unit.customer_view import on_account, rejection, renegotiation
from tests.unit.customer_view import the_account as account_of

JAN_1 = datetime(2024, 1, 1, tzinfo=UTC)
LARGEST_LONG = 2**63 - 1


class TestTheLargestAmount:
    """No command carries more than 10^15 minor units."""

    def test_two_payments_of_the_largest_long_are_refused(
        self, ledger: BillingLedger, send: Sender
    ) -> None:
        """Each refused out_of_range on amount_minor: nothing reaches the read models."""
        send(open_account(issued_at=JAN_1))
        outcomes = send(
            record_payment(amount_minor=LARGEST_LONG, payment_id="p-1", issued_at=JAN_1),
            record_payment(amount_minor=LARGEST_LONG, payment_id="p-2", issued_at=JAN_1),
        )
        assert [rejection(o) for o in outcomes] == [("out_of_range", "amount_minor")] * 2
        assert account_of(ledger).credit_minor == 0

    def test_a_payment_of_the_largest_amount_is_accepted(self, send: Sender) -> None:
        """Exactly 10^15 passes."""
        send(open_account(issued_at=JAN_1))
        (outcome,) = send(record_payment(amount_minor=MAX_AMOUNT_MINOR, issued_at=JAN_1))
        assert rejection(outcome) is None

    @pytest.mark.parametrize(
        ("command", "field"),
        [
            pytest.param(
                lambda: subscribe(issued_at=JAN_1, price_minor=MAX_AMOUNT_MINOR + 1),
                "price_minor",
                id="Subscribe",
            ),
            pytest.param(
                lambda: on_account(
                    IssueCreditNote,
                    JAN_1,
                    credit_note_id="cn-1",
                    invoice_id="sub-0/1",
                    amount_minor=MAX_AMOUNT_MINOR + 1,
                    reason="goodwill",
                ),
                "amount_minor",
                id="IssueCreditNote",
            ),
            pytest.param(
                lambda: on_account(
                    RefundCredit,
                    JAN_1,
                    refund_id="rf-1",
                    amount_minor=MAX_AMOUNT_MINOR + 1,
                    payment_method_kind="bank_transfer",
                ),
                "amount_minor",
                id="RefundCredit",
            ),
        ],
    )
    def test_other_commands_over_it_are_refused(
        self, send: Sender, command: Callable[[], Command], field: str
    ) -> None:
        """out_of_range naming the amount's field."""
        send(open_account(issued_at=JAN_1), subscribe(issued_at=JAN_1, subscription_id="sub-0"))
        (outcome,) = send(command())
        assert rejection(outcome) == ("out_of_range", field)

    def test_interest_over_it_is_refused(self, send: Sender) -> None:
        """out_of_range on interest_minor."""
        overdue = JAN_1 + timedelta(days=40)
        send(
            open_account(issued_at=JAN_1),
            subscribe(issued_at=JAN_1),
            advance_clock(issued_at=overdue),
        )
        (outcome,) = send(renegotiation(overdue, "sub-1/1", interest_minor=MAX_AMOUNT_MINOR + 1))
        assert rejection(outcome) == ("out_of_range", "interest_minor")


class TestTheLargestTotal:
    """No account total passes 10^17 minor units."""

    def test_the_101st_largest_payment_is_refused(
        self, ledger: BillingLedger, send: Sender
    ) -> None:
        """100 payments of 10^15 reach the bound; the next is refused on amount_minor."""
        send(open_account(issued_at=JAN_1))
        payments = [
            record_payment(amount_minor=MAX_AMOUNT_MINOR, payment_id=f"p-{n}", issued_at=JAN_1)
            for n in range(101)
        ]
        outcomes = send(*payments)
        assert [rejection(o) for o in outcomes[:100]] == [None] * 100
        assert rejection(outcomes[100]) == ("out_of_range", "amount_minor")
        assert account_of(ledger).totals.received_minor == MAX_TOTAL_MINOR
        assert account_of(ledger).credit_minor == MAX_TOTAL_MINOR

    def test_the_clock_is_refused_when_its_invoices_would_pass_the_bound(
        self, ledger: BillingLedger, send: Sender
    ) -> None:
        """10^15 a month from 1 Jan 2024: 99 more cycles pass, a 101st invoice is refused."""
        send(
            open_account(issued_at=JAN_1), subscribe(issued_at=JAN_1, price_minor=MAX_AMOUNT_MINOR)
        )
        (refused,) = send(advance_clock(issued_at=datetime(2032, 5, 1, tzinfo=UTC)))
        assert rejection(refused) == ("out_of_range", "issued_at")
        (accepted,) = send(advance_clock(issued_at=datetime(2032, 4, 1, tzinfo=UTC)))
        assert rejection(accepted) is None
        assert account_of(ledger).totals.invoiced_minor == MAX_TOTAL_MINOR
