"""The mapping from decoded Avro command records to commands, and the digest of their content."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import fields
from typing import Any

from commands import messages
from commands.messages import COMMAND_NAMESPACE, Command
from ledger.account import CancellationPolicy, Contact
from ledger.calendar import IntervalUnit
from ledger.dunning import DunningPolicy, FinalAction
from ledger.plan_terms import TermsAsked
from ledger.receivables import ChargeFailureReason


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
    own = [f.name for f in fields(cls) if f.name not in ("command_id", "issued_at", cls.key_field)]

    def from_record(record: Mapping[str, Any], head: dict[str, Any]) -> Command:
        return cls(
            **head,
            **{name: converters.get(name, _same)(record[name]) for name in own},
        )

    return from_record


def _same(value: Any) -> Any:
    return value


FROM_RECORD: dict[str, Callable[[Mapping[str, Any], dict[str, Any]], Command]] = {
    "DefinePlan": by_field_names(messages.DefinePlan, interval_unit=IntervalUnit),
    "RevisePlan": by_field_names(messages.RevisePlan),
    "RetirePlan": by_field_names(messages.RetirePlan),
    "AdvanceClock": by_field_names(messages.AdvanceClock),
    "RecordPayment": by_field_names(messages.RecordPayment),
    "FailCharge": by_field_names(messages.FailCharge, reason=ChargeFailureReason),
    "Renegotiate": by_field_names(messages.Renegotiate, invoice_ids=tuple),
    "SetDunningPolicy": set_dunning_policy,
    "ReportHardship": by_field_names(messages.ReportHardship),
    "ChangePlan": by_field_names(messages.ChangePlan),
    "AnnouncePriceChange": by_field_names(messages.AnnouncePriceChange),
    "PauseSubscription": by_field_names(messages.PauseSubscription),
    "ResumeSubscription": by_field_names(messages.ResumeSubscription),
    "CancelSubscription": by_field_names(messages.CancelSubscription),
    "ReactivateSubscription": by_field_names(messages.ReactivateSubscription),
    "AddPaymentMethod": by_field_names(messages.AddPaymentMethod),
    "RemovePaymentMethod": by_field_names(messages.RemovePaymentMethod),
    "SetDefaultPaymentMethod": by_field_names(messages.SetDefaultPaymentMethod),
    "RecordFeedback": by_field_names(messages.RecordFeedback),
    "Charge": by_field_names(messages.Charge),
    "IssueCreditNote": by_field_names(messages.IssueCreditNote),
    "RefundCredit": by_field_names(messages.RefundCredit),
    "WriteOff": by_field_names(messages.WriteOff),
    "OpenAccount": open_account,
    "Subscribe": subscribe,
}


# The command types keyed by plan_id: every kind of plan command.
PLAN_COMMAND_TYPES = frozenset(cls.__name__ for cls in messages.PlanCommand.__subclasses__())


def command_type_of(schema_name: str) -> str | None:
    """The command type a schema carries (`billing.commands.Subscribe` -> `Subscribe`), or None."""
    namespace, _, name = schema_name.rpartition(".")
    return name if namespace == COMMAND_NAMESPACE and name in FROM_RECORD else None


def key_field_of(command_type: str) -> str:
    """The field of a `command_type` record that is its Kafka key: account_id, or plan_id."""
    return "plan_id" if command_type in PLAN_COMMAND_TYPES else "account_id"


def command_from_record(command_type: str, record: Mapping[str, Any]) -> Command:
    """The command a decoded record of `command_type` carries."""
    key_field = key_field_of(command_type)
    head = {
        "command_id": record["command_id"],
        "issued_at": record["issued_at"],
        key_field: record[key_field],
    }
    return FROM_RECORD[command_type](record, head)


def content_digest(command_type: str, record: Mapping[str, Any]) -> str:
    """A digest of a command's content, to tell a redelivery from a reused command_id."""
    canonical = json.dumps([command_type, record], sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()
