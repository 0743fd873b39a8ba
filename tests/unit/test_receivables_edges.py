"""Edge cases of receivables found while specifying them: free cycles and payment method kinds."""

from __future__ import annotations

import pytest

from ledger.application import BillingLedger
from tests.unit.builders import Sender, account_events, open_account, record_payment, subscribe


class TestFreeCycles:
    """An invoice of nothing is settled as it is issued."""

    def test_a_zero_price_invoice_is_paid_at_once(
        self, ledger: BillingLedger, send: Sender
    ) -> None:
        """InvoicePaid follows InvoiceIssued, so read models never wait on it."""
        send(open_account(), subscribe(price_minor=0))
        names = [type(e).__name__ for e in account_events(ledger)]
        assert names[-2:] == ["InvoiceIssued", "InvoicePaid"]


class TestPaymentMethodKinds:
    """A payment method kind is a plain ASCII word starting with a letter."""

    @pytest.mark.parametrize("kind", ["ß", "1234", "\uff11\uff12", "_card", "Credit Card", ""])
    def test_odd_kinds_are_rejected(self, send: Sender, kind: str) -> None:
        """invalid_payment on payment_method_kind."""
        send(open_account())
        (outcome,) = send(record_payment(amount_minor=100, payment_method_kind=kind))
        assert outcome.rejection is not None
        assert (outcome.rejection.code, outcome.rejection.field) == (
            "invalid_payment",
            "payment_method_kind",
        )

    @pytest.mark.parametrize("kind", ["credit_card", "sepa_debit", "pix", "ach2"])
    def test_plain_words_are_accepted(self, send: Sender, kind: str) -> None:
        """The list of kinds can grow without schema changes."""
        send(open_account())
        (outcome,) = send(record_payment(amount_minor=100, payment_method_kind=kind))
        assert outcome.rejection is None
