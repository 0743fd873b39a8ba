"""The mapping from decoded Avro command records to commands, and the digest of their content."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from typing import Any

from commands import messages
from commands.messages import Command
from ledger.account import CancellationPolicy, Contact
from ledger.calendar import IntervalUnit
from ledger.dunning import DunningPolicy, FinalAction
from ledger.plan_terms import TermsAsked


def open_account(record: Mapping[str, Any], head: dict[str, Any]) -> messages.OpenAccount:
    """Map a decoded billing.commands.OpenAccount record."""
    contacts = tuple(Contact(c["channel"], c["address"]) for c in record["contacts"])
    return messages.OpenAccount(
        **head,
        currency=record["currency"],
        customer_reference=record["customer_reference"],
        contacts=contacts,
    )


def subscribe(record: Mapping[str, Any], head: dict[str, Any]) -> messages.Subscribe:
    """Map a decoded billing.commands.Subscribe record."""
    unit = record["interval_unit"]
    terms = TermsAsked(
        plan_id=record["plan_id"],
        price_minor=record["price_minor"],
        currency=record["currency"],
        interval_unit=None if unit is None else IntervalUnit(unit),
        interval_count=record["interval_count"],
        trial_days=record["trial_days"],
        days_until_due=record["days_until_due"],
        cancellation_policy=CancellationPolicy(record["cancellation_policy"]),
        early_payment_discount_bp=record["early_payment_discount_bp"],
        early_payment_days=record["early_payment_days"],
    )
    return messages.Subscribe(**head, subscription_id=record["subscription_id"], terms=terms)


def set_dunning_policy(
    record: Mapping[str, Any], head: dict[str, Any]
) -> messages.SetDunningPolicy:
    """Map a decoded billing.commands.SetDunningPolicy record."""
    policy = DunningPolicy(
        reminder_days_before_due=tuple(record["reminder_days_before_due"]),
        reminder_days_after_due=tuple(record["reminder_days_after_due"]),
        retry_days_after_failure=tuple(record["retry_days_after_failure"]),
        grace_days=record["grace_days"],
        final_action=FinalAction(record["final_action"]),
    )
    return messages.SetDunningPolicy(**head, policy=policy)


def by_field_names(
    cls: type[messages.AccountCommand] | type[messages.PlanCommand],
    **converters: Callable[[Any], Any],
) -> Callable[[Mapping[str, Any], dict[str, Any]], Command]:
    """The mapping of a command whose own fields are record fields of the same names.

    `converters` turn a field's Avro value into the command's type (an enum, a tuple).
    """
    own = cls.own_field_names()

    def from_record(record: Mapping[str, Any], head: dict[str, Any]) -> Command:
        return cls(
            **head,
            **{name: converters.get(name, _same)(record[name]) for name in own},
        )

    return from_record


def _same(value: Any) -> Any:
    return value


# The command types keyed by plan_id: every kind of plan command.
PLAN_COMMAND_TYPES = frozenset(cls.__name__ for cls in messages.PlanCommand.__subclasses__())


def key_field_of(command_type: str) -> str:
    """The field of a `command_type` record that is its Kafka key: account_id, or plan_id."""
    return "plan_id" if command_type in PLAN_COMMAND_TYPES else "account_id"


def content_digest(command_type: str, record: Mapping[str, Any]) -> str:
    """A digest of a command's content, to tell a redelivery from a reused command_id."""
    canonical = json.dumps([command_type, record], sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()
