"""How large money may get: the largest amount a command carries, the largest total an account keeps.

Every amount and total stays far inside a signed 64-bit integer (PostgreSQL `bigint`, Avro
`long`, at most 2^63-1, about 9.2 x 10^18), so that no sum a read model keeps can overflow:

- an amount a command carries (a price, a payment, a credit note, a refund, interest,
  forgiveness) is at most MAX_AMOUNT_MINOR = 10^15 minor units: 10 trillion euros in cents,
  10^15 yen; more than any real invoice or payment;
- a total an account keeps (what was invoiced, received, credited and refunded, and so what it
  owes and the credit it holds) is at most MAX_TOTAL_MINOR = 10^17 minor units: 100 amounts
  at the largest, and 92 times less than a signed 64-bit integer holds, so that even the sum
  of every total and balance of one account, as a read model may keep it, stays inside one.

A command that could take a total past its bound is refused `out_of_range`, naming the field
that would (an amount, a price, or `issued_at` for the clock), before anything is recorded.
Every other balance is bounded by these: receivable, discounts and write-offs by what was
invoiced, revenue by invoiced less credited, each cash account by received and refunded.
"""

from __future__ import annotations

from dataclasses import dataclass

from ledger.errors import OutOfRange

MAX_AMOUNT_MINOR = 10**15
MAX_TOTAL_MINOR = 10**17


def check_amount_bound(amount_minor: int, *, field: str) -> int:
    """Answer `amount_minor` if a command may carry it, else raise OutOfRange naming `field`."""
    if amount_minor > MAX_AMOUNT_MINOR:
        raise OutOfRange(
            f"{field} must be at most {MAX_AMOUNT_MINOR} minor units, got {amount_minor}",
            field=field,
        )
    return amount_minor


def check_total(total: str, current_minor: int, added_minor: int, *, field: str) -> None:
    """Refuse, naming `field`, a command that could take `total` past MAX_TOTAL_MINOR."""
    if current_minor + added_minor > MAX_TOTAL_MINOR:
        raise OutOfRange(
            f"{field} would take the account's {total} from {current_minor} to at most "
            f"{current_minor + added_minor} minor units, past the largest a total may reach, "
            f"{MAX_TOTAL_MINOR}",
            field=field,
        )


@dataclass
class Totals:
    """What an account has invoiced (with renegotiation interest), received in payments,
    given back in credit notes and refunded of its credit, since it was opened."""

    invoiced_minor: int = 0
    received_minor: int = 0
    credited_minor: int = 0
    refunded_minor: int = 0
