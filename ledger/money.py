"""Money: integer minor units with an ISO 4217 currency. Never floats."""

from __future__ import annotations

from dataclasses import dataclass
from functools import total_ordering

from ledger.bounds import check_amount_bound
from ledger.errors import RuleViolation

# Minor-unit exponents of the ISO 4217 currencies the ledger accepts. The list can grow;
# a currency leaves it only if no account uses it any more.
MINOR_UNIT_DIGITS: dict[str, int] = {
    "AUD": 2, "BGN": 2, "BHD": 3, "BRL": 2, "CAD": 2, "CHF": 2, "CLP": 0, "CNY": 2,
    "COP": 2, "CZK": 2, "DKK": 2, "EUR": 2, "GBP": 2, "HKD": 2, "HUF": 2, "IDR": 2,
    "ILS": 2, "INR": 2, "ISK": 0, "JOD": 3, "JPY": 0, "KRW": 0, "KWD": 3, "MXN": 2,
    "MYR": 2, "NOK": 2, "NZD": 2, "OMR": 3, "PEN": 2, "PHP": 2, "PLN": 2, "RON": 2,
    "SEK": 2, "SGD": 2, "THB": 2, "TND": 3, "TRY": 2, "TWD": 2, "UAH": 2, "USD": 2,
    "VND": 0, "ZAR": 2,
}  # fmt: skip


def check_currency(currency: str, *, field: str = "currency") -> str:
    """Answer `currency` if the ledger supports it, else raise UnsupportedCurrency."""
    if currency not in MINOR_UNIT_DIGITS:
        raise UnsupportedCurrency(
            f"{currency!r} is not a supported ISO 4217 currency code", field=field
        )
    return currency


def check_amount(amount_minor: int, *, field: str) -> int:
    """Answer `amount_minor` if it is zero or more and at most MAX_AMOUNT_MINOR; else raise
    NegativeAmount, or OutOfRange (see ledger.bounds)."""
    if amount_minor < 0:
        raise NegativeAmount(f"{field} must not be negative, got {amount_minor}", field=field)
    return check_amount_bound(amount_minor, field=field)


@total_ordering
@dataclass(frozen=True)
class Money:
    """An amount in integer minor units of one currency."""

    amount_minor: int
    currency: str

    def __lt__(self, other: Money) -> bool:
        self._check_same_currency(other)
        return self.amount_minor < other.amount_minor

    def __add__(self, other: Money) -> Money:
        self._check_same_currency(other)
        return Money(self.amount_minor + other.amount_minor, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._check_same_currency(other)
        return Money(self.amount_minor - other.amount_minor, self.currency)

    def _check_same_currency(self, other: Money) -> None:
        if other.currency != self.currency:
            raise CurrencyMismatch(
                f"cannot combine {other.currency} with {self.currency}", field="currency"
            )


class UnsupportedCurrency(RuleViolation):
    """The currency is not an ISO 4217 code the ledger supports."""

    code = "unsupported_currency"


class CurrencyMismatch(RuleViolation):
    """Two amounts, or an amount and an account, are in different currencies."""

    code = "currency_mismatch"


class NegativeAmount(RuleViolation):
    """An amount that must be zero or more is negative."""

    code = "negative_amount"
