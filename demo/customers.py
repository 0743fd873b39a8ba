"""Who the book's customers are: how they pay, how they fail to, and how happy they are.

Rates are per attempt or per month; they are chosen to look like a small SaaS business, not
measured from one. Everything is drawn from the book's seeded random generator.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class MethodKind:
    """A kind of payment method: how often its charges fail, why, and how often a retry works."""

    kind: str
    share: float
    failure_rate: float
    retry_recovery_rate: float
    # Reasons of failed charges with their weights (billing.types.ChargeFailureReason).
    failure_reasons: tuple[tuple[str, int], ...]
    # Hours from the charge request to its outcome (a transfer takes days).
    settlement_hours: int


METHOD_KINDS = (
    MethodKind(
        "credit_card",
        0.55,
        0.06,
        0.55,
        (
            ("do_not_honor", 4),
            ("insufficient_funds", 3),
            ("card_expired", 2),
            ("processing_error", 1),
        ),
        0,
    ),
    MethodKind(
        "debit_card",
        0.30,
        0.09,
        0.45,
        (("insufficient_funds", 6), ("do_not_honor", 2), ("processing_error", 1), ("other", 1)),
        0,
    ),
    MethodKind("bank_transfer", 0.15, 0.08, 0.50, (("bank_transfer_not_received", 1),), 48),
)


class Habit(StrEnum):
    """How a customer pays."""

    EARLY = "early"  # pays at once; takes the early-payment discount when offered
    PROMPT = "prompt"  # pays by the due date
    LATE = "late"  # pays after a reminder or two
    STRUGGLING = "struggling"  # falls behind for months: hardship, renegotiation, write-off


HABIT_WEIGHTS = ((Habit.EARLY, 30), (Habit.PROMPT, 42), (Habit.LATE, 18), (Habit.STRUGGLING, 10))


@dataclass(frozen=True)
class Customer:
    """One customer of the book, as drawn at sign-up."""

    number: int
    account_id: str
    method: MethodKind
    habit: Habit
    # 0 (unhappy) to 1 (delighted): their feedback scores and their wish to leave follow it.
    satisfaction: float
    plan_id: str
    cancellation_policy: str
    early_payment_offer: bool
    final_action: str

    def failure_rate(self, method: MethodKind) -> float:
        """How often a first charge of this customer by `method` fails."""
        factor = {Habit.EARLY: 0.3, Habit.PROMPT: 0.7, Habit.LATE: 3.0, Habit.STRUGGLING: 6.0}
        return min(0.9, method.failure_rate * factor[self.habit])

    def recovery_rate(self, method: MethodKind) -> float:
        """How often a retried charge of this customer by `method` works."""
        factor = {Habit.EARLY: 1.5, Habit.PROMPT: 1.3, Habit.LATE: 0.8, Habit.STRUGGLING: 0.25}
        return min(0.95, method.retry_recovery_rate * factor[self.habit])

    @property
    def monthly_churn(self) -> float:
        """The chance of cancelling in a month: detractors leave far more often."""
        return 0.005 + 0.05 * (1 - self.satisfaction) ** 2


def draw_customer(
    rng: random.Random, number: int, plan_weights: tuple[tuple[str, int], ...]
) -> Customer:
    """A new customer, `number` in the book, choosing among the plans on offer."""
    method = rng.choices(METHOD_KINDS, weights=[m.share for m in METHOD_KINDS])[0]
    habit = _weighted(rng, HABIT_WEIGHTS)
    satisfaction = min(
        1.0, max(0.0, rng.gauss(0.7 if habit is not Habit.STRUGGLING else 0.45, 0.2))
    )
    return Customer(
        number=number,
        account_id=f"cust-{number:05d}",
        method=method,
        habit=habit,
        satisfaction=satisfaction,
        plan_id=_weighted(rng, plan_weights),
        cancellation_policy=_weighted(
            rng,
            (
                ("AT_PERIOD_END", 80),
                ("IMMEDIATELY_WITH_PRORATED_REFUND", 15),
                ("IMMEDIATELY_WITHOUT_REFUND", 5),
            ),
        ),
        early_payment_offer=rng.random() < 0.4,
        final_action="CANCEL" if rng.random() < 0.3 else "SUSPEND",
    )


def method_kind(kind: str) -> MethodKind:
    """The payment method kind named `kind`."""
    return next(m for m in METHOD_KINDS if m.kind == kind)


def failure_reason(rng: random.Random, method: MethodKind) -> str:
    """Why a charge by `method` failed."""
    return _weighted(rng, method.failure_reasons)


def feedback_score(rng: random.Random, satisfaction: float) -> int:
    """An NPS-style score from 0 to 10 around the customer's satisfaction."""
    return min(10, max(0, round(rng.gauss(satisfaction * 10, 1.5))))


def _weighted(rng: random.Random, options: tuple[tuple[T, int], ...]) -> T:
    return rng.choices([o for o, _ in options], weights=[w for _, w in options])[0]
