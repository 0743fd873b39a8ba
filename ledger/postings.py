"""Double-entry postings: every money movement is a set of legs whose debits equal credits."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum


class LedgerAccount(StrEnum):
    """The ledger accounts money moves between. Cash is per payment method: `cash:<kind>`."""

    RECEIVABLE = "receivable"
    REVENUE = "revenue"
    CUSTOMER_CREDIT = "customer_credit"
    DISCOUNTS = "discounts"
    WRITE_OFF = "write_off"

    @staticmethod
    def cash(payment_method_kind: str) -> str:
        """The cash or clearing account of one payment method kind, e.g. `cash:credit_card`."""
        return f"cash:{payment_method_kind}"


class Side(StrEnum):
    """Which side of the ledger account a posting lands on."""

    DEBIT = "DEBIT"
    CREDIT = "CREDIT"


@dataclass(frozen=True)
class Posting:
    """One leg of a journal entry: a positive amount on one side of one ledger account."""

    ledger_account: str
    side: Side
    amount_minor: int

    @property
    def signed_minor(self) -> int:
        """The amount as debit-positive, credit-negative."""
        return self.amount_minor if self.side is Side.DEBIT else -self.amount_minor


def transfer(debit: str, credit: str, amount_minor: int) -> tuple[Posting, ...]:
    """A balanced entry moving `amount_minor` from `credit` to `debit`; empty for zero."""
    if amount_minor == 0:
        return ()
    return check_balanced(
        (Posting(debit, Side.DEBIT, amount_minor), Posting(credit, Side.CREDIT, amount_minor))
    )


def check_balanced(postings: Iterable[Posting]) -> tuple[Posting, ...]:
    """Answer the postings as a tuple if every leg is positive and debits equal credits."""
    entry = tuple(postings)
    if any(posting.amount_minor <= 0 for posting in entry):
        raise UnbalancedPostings(f"every posting must be positive: {entry}")
    if sum(posting.signed_minor for posting in entry) != 0:
        raise UnbalancedPostings(f"debits and credits differ: {entry}")
    return entry


def balance_of(ledger_account: str, postings: Iterable[Posting]) -> int:
    """The debit-positive balance of one ledger account over the postings."""
    return sum(p.signed_minor for p in postings if p.ledger_account == ledger_account)


class UnbalancedPostings(AssertionError):
    """A journal entry does not balance: a programming error, never a user's."""
