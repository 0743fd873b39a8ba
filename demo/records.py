"""The commands of the book as an upstream system sends them: Avro-shaped command records.

Each record has every field of its schema (schemas/billing.commands.*.avsc), with datetimes
and dates as Python values, so the Avro codec can encode it as it is; `json_line` gives the
`ledger send --file` form.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

PLAN_COMMANDS = frozenset({"DefinePlan", "RevisePlan", "RetirePlan"})


@dataclass(frozen=True)
class BookCommand:
    """One command of the book: its type (the schema's name) and its record."""

    type: str
    record: dict[str, Any]

    @property
    def key(self) -> str:
        """The Kafka message key: the account id, or a catalogue command's plan id."""
        return str(self.record["plan_id" if self.type in PLAN_COMMANDS else "account_id"])

    @property
    def issued_at(self) -> datetime:
        """The business time the upstream system sent the command at."""
        issued_at = self.record["issued_at"]
        assert isinstance(issued_at, datetime)
        return issued_at

    def json_line(self) -> str:
        """The command as a line of a `ledger send --file` file."""
        return json.dumps({"type": self.type, **self.record}, default=_iso)


def _iso(value: object) -> str:
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def subscribe_record(
    *,
    subscription_id: str,
    plan_id: str,
    cancellation_policy: str,
    early_payment_discount_bp: int = 0,
    early_payment_days: int = 0,
    days_until_due: int = 14,
) -> dict[str, Any]:
    """The own fields of a Subscribe to a catalogue plan's current terms."""
    return {
        "subscription_id": subscription_id,
        "plan_id": plan_id,
        "price_minor": None,
        "currency": None,
        "interval_unit": None,
        "interval_count": None,
        "trial_days": None,
        "days_until_due": days_until_due,
        "cancellation_policy": cancellation_policy,
        "early_payment_discount_bp": early_payment_discount_bp,
        "early_payment_days": early_payment_days,
    }


def dunning_policy_record(final_action: str, grace_days: int) -> dict[str, Any]:
    """The own fields of a SetDunningPolicy: the recommended stages, with this final action."""
    return {
        "reminder_days_before_due": [3],
        "reminder_days_after_due": [1, 7, 14],
        "retry_days_after_failure": [1, 3, 7],
        "grace_days": grace_days,
        "final_action": final_action,
    }
