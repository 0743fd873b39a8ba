"""Specification of money (currencies, amounts, arithmetic) and of double-entry postings."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.errors import RuleViolation
from ledger.money import (
    MINOR_UNIT_DIGITS,
    CurrencyMismatch,
    Money,
    NegativeAmount,
    UnsupportedCurrency,
    check_amount,
    check_currency,
)
from ledger.postings import (
    LedgerAccount,
    Posting,
    Side,
    UnbalancedPostings,
    balance_of,
    check_balanced,
    transfer,
)

RECEIVABLE = LedgerAccount.RECEIVABLE
REVENUE = LedgerAccount.REVENUE
amounts = st.integers(min_value=-(10**12), max_value=10**12)
positive_amounts = st.integers(min_value=1, max_value=10**12)


class TestCheckCurrency:
    """check_currency accepts the ISO 4217 codes the ledger supports and nothing else."""

    @pytest.mark.parametrize("currency", ["EUR", "USD", "GBP", "JPY", "BHD", "CLP", "ZAR"])
    def test_a_supported_code_is_answered_unchanged(self, currency: str) -> None:
        """A supported code comes back as it was given."""
        assert check_currency(currency) == currency

    @pytest.mark.parametrize("currency", ["eur", "Eur", " EUR", "EUR ", "EURO", "XXX", "BTC", ""])
    def test_an_unsupported_code_is_rejected_naming_the_currency_field(self, currency: str) -> None:
        """Anything but an exact supported code is unsupported_currency on the currency field."""
        with pytest.raises(UnsupportedCurrency) as raised:
            check_currency(currency)
        assert raised.value.code == "unsupported_currency"
        assert raised.value.field == "currency"
        assert repr(currency) in raised.value.message

    def test_the_rejection_names_the_field_it_is_told(self) -> None:
        """A caller checking another field gets that field named in the rejection."""
        with pytest.raises(UnsupportedCurrency) as raised:
            check_currency("XXX", field="settlement_currency")
        assert raised.value.field == "settlement_currency"

    def test_the_rejection_is_a_rule_violation(self) -> None:
        """An unsupported currency is the user's mistake, answered with a rejection."""
        assert issubclass(UnsupportedCurrency, RuleViolation)

    def test_every_supported_code_is_three_capital_letters_with_0_to_3_minor_digits(self) -> None:
        """The table only holds well-formed ISO 4217 codes and exponents."""
        for currency, digits in MINOR_UNIT_DIGITS.items():
            assert len(currency) == 3 and currency.isalpha() and currency.isupper(), currency
            assert digits in (0, 2, 3), currency


class TestCheckAmount:
    """check_amount accepts zero and positive amounts and rejects negative ones."""

    @pytest.mark.parametrize("amount_minor", [0, 1, 999, 10**15])
    def test_zero_and_positive_amounts_are_answered_unchanged(self, amount_minor: int) -> None:
        """Zero is a valid amount: a free plan costs nothing."""
        assert check_amount(amount_minor, field="price_minor") == amount_minor

    def test_a_negative_amount_is_rejected_naming_the_field_and_value(self) -> None:
        """-1 is negative_amount on the field the caller named, and the message shows it."""
        with pytest.raises(NegativeAmount) as raised:
            check_amount(-1, field="price_minor")
        assert raised.value.code == "negative_amount"
        assert raised.value.field == "price_minor"
        assert "-1" in raised.value.message

    @given(amount_minor=amounts)
    def test_an_amount_passes_exactly_when_it_is_not_negative(self, amount_minor: int) -> None:
        """The boundary is zero, whatever the amount."""
        try:
            check_amount(amount_minor, field="amount_minor")
        except NegativeAmount:
            assert amount_minor < 0
        else:
            assert amount_minor >= 0


class TestMoney:
    """Money adds and subtracts only within one currency."""

    def test_amounts_in_one_currency_add_up(self) -> None:
        """10.00 EUR + 2.50 EUR is 12.50 EUR."""
        assert Money(1000, "EUR") + Money(250, "EUR") == Money(1250, "EUR")

    def test_amounts_in_one_currency_subtract_and_may_go_below_zero(self) -> None:
        """2.50 EUR - 10.00 EUR is -7.50 EUR: a balance may be negative."""
        assert Money(250, "EUR") - Money(1000, "EUR") == Money(-750, "EUR")

    def test_the_same_amount_in_another_currency_is_not_equal(self) -> None:
        """100 EUR minor units are not 100 USD minor units."""
        assert Money(100, "EUR") != Money(100, "USD")

    @pytest.mark.parametrize("combine", [Money.__add__, Money.__sub__], ids=["add", "subtract"])
    def test_combining_two_currencies_is_a_currency_mismatch(
        self, combine: Callable[[Money, Money], Money]
    ) -> None:
        """Adding or subtracting USD to EUR is rejected on the currency field, naming both."""
        with pytest.raises(CurrencyMismatch) as raised:
            combine(Money(100, "EUR"), Money(100, "USD"))
        assert raised.value.code == "currency_mismatch"
        assert raised.value.field == "currency"
        assert "EUR" in raised.value.message and "USD" in raised.value.message

    def test_money_is_immutable(self) -> None:
        """An amount cannot be changed in place; arithmetic answers a new value."""
        price = Money(100, "EUR")
        with pytest.raises(AttributeError):
            price.amount_minor = 200  # type: ignore[misc]
        assert price + Money(1, "EUR") == Money(101, "EUR")
        assert price == Money(100, "EUR")

    @given(first=amounts, second=amounts)
    def test_subtracting_what_was_added_gives_back_the_amount(
        self, first: int, second: int
    ) -> None:
        """(a + b) - b == a, exactly: integer minor units never round."""
        a, b = Money(first, "JPY"), Money(second, "JPY")
        assert (a + b) - b == a
        assert a + b == b + a

    def test_ordering_two_currencies_is_a_currency_mismatch(self) -> None:
        """1.00 EUR is neither less nor more than 2.00 USD: comparing them is refused."""
        with pytest.raises(CurrencyMismatch):
            _ = Money(100, "EUR") < Money(200, "USD")


class TestTransfer:
    """transfer() is one balanced entry: a debit and a credit of the same amount."""

    def test_debits_the_first_account_and_credits_the_second(self) -> None:
        """Invoicing 15.00 debits receivable and credits revenue by 1500."""
        assert transfer(RECEIVABLE, REVENUE, 1500) == (
            Posting("receivable", Side.DEBIT, 1500),
            Posting("revenue", Side.CREDIT, 1500),
        )

    def test_a_zero_transfer_is_no_postings_at_all(self) -> None:
        """Nothing moves, so there is no entry (and no zero legs)."""
        assert transfer(RECEIVABLE, REVENUE, 0) == ()

    def test_a_negative_transfer_is_a_programming_error(self) -> None:
        """Legs are positive; a negative amount never becomes postings."""
        with pytest.raises(UnbalancedPostings):
            transfer(RECEIVABLE, REVENUE, -1)

    @given(amount_minor=positive_amounts)
    def test_every_transfer_balances(self, amount_minor: int) -> None:
        """Debits equal credits, and each side's balance moves by the amount."""
        entry = transfer(LedgerAccount.cash("credit_card"), RECEIVABLE, amount_minor)
        assert sum(posting.signed_minor for posting in entry) == 0
        assert balance_of("cash:credit_card", entry) == amount_minor
        assert balance_of(RECEIVABLE, entry) == -amount_minor


class TestCheckBalanced:
    """check_balanced accepts entries of positive legs whose debits equal their credits."""

    def test_answers_a_balanced_entry_of_several_legs_as_a_tuple(self) -> None:
        """One debit may be split over several credits, and any iterable is accepted."""
        legs = [
            Posting("receivable", Side.DEBIT, 1000),
            Posting("revenue", Side.CREDIT, 800),
            Posting("customer_credit", Side.CREDIT, 200),
        ]
        assert check_balanced(iter(legs)) == tuple(legs)

    def test_an_entry_whose_debits_differ_from_its_credits_is_rejected(self) -> None:
        """A debit of 1000 against a credit of 999 does not balance."""
        with pytest.raises(UnbalancedPostings, match="differ"):
            check_balanced(
                [Posting("receivable", Side.DEBIT, 1000), Posting("revenue", Side.CREDIT, 999)]
            )

    @pytest.mark.parametrize("amount_minor", [0, -500])
    def test_a_leg_that_is_not_positive_is_rejected_even_if_the_sum_balances(
        self, amount_minor: int
    ) -> None:
        """A zero or negative leg is refused although debits equal credits."""
        with pytest.raises(UnbalancedPostings, match="positive"):
            check_balanced(
                [
                    Posting("receivable", Side.DEBIT, amount_minor),
                    Posting("revenue", Side.CREDIT, amount_minor),
                ]
            )

    def test_an_unbalanced_entry_is_a_programming_error_not_a_rejection(self) -> None:
        """Users cannot cause it, so it is an AssertionError rather than a RuleViolation."""
        assert issubclass(UnbalancedPostings, AssertionError)
        assert not issubclass(UnbalancedPostings, RuleViolation)


class TestBalanceOf:
    """balance_of sums one ledger account, debits positive and credits negative."""

    def test_debits_count_up_and_credits_count_down(self) -> None:
        """Two invoices and a payment leave 1000 + 500 - 700 = 800 receivable."""
        postings = [
            *transfer(RECEIVABLE, REVENUE, 1000),
            *transfer(RECEIVABLE, REVENUE, 500),
            *transfer(LedgerAccount.cash("sepa"), RECEIVABLE, 700),
        ]
        assert balance_of(RECEIVABLE, postings) == 800
        assert balance_of(REVENUE, postings) == -1500
        assert balance_of("cash:sepa", postings) == 700

    def test_an_account_without_postings_has_a_zero_balance(self) -> None:
        """Accounts not named by any leg, and empty entries, sum to zero."""
        assert balance_of(LedgerAccount.WRITE_OFF, transfer(RECEIVABLE, REVENUE, 100)) == 0
        assert balance_of(RECEIVABLE, []) == 0

    @given(invoiced=st.lists(positive_amounts, max_size=20))
    def test_balanced_entries_sum_to_zero_over_all_accounts(self, invoiced: list[int]) -> None:
        """Whatever was invoiced, receivable and revenue mirror each other."""
        postings = [leg for amount in invoiced for leg in transfer(RECEIVABLE, REVENUE, amount)]
        assert balance_of(RECEIVABLE, postings) == sum(invoiced)
        assert balance_of(RECEIVABLE, postings) + balance_of(REVENUE, postings) == 0
