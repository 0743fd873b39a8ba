"""The one table of commands: each command's class, how its Avro record maps to it, its handler.

A new command is a schema, a dataclass in messages.py, a domain method and one row here. Most
rows are pass-through: the record's fields of the same names make the command, and the
command's own fields go to the account (or plan) method named after it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from commands import account_handlers as account
from commands import mapping
from commands import messages as m
from commands import plan_handlers as plan
from commands.messages import COMMAND_NAMESPACE, Command
from commands.unit_of_work import UnitOfWork
from ledger.calendar import IntervalUnit
from ledger.receivables import ChargeFailureReason

Handler = Callable[[Any, UnitOfWork], None]
FromRecord = Callable[[Mapping[str, Any], dict[str, Any]], Command]


@dataclass(frozen=True)
class Row:
    """One command type: its class, the mapping from its record, and its handler."""

    command: type[Command]
    from_record: FromRecord
    handle: Handler

    @property
    def name(self) -> str:
        """The command type, as its schema is named (`billing.commands.<name>`)."""
        return self.command.__name__


def passed_on(
    command: type[m.AccountCommand] | type[m.PlanCommand],
    method: str | None = None,
    **converters: Callable[[Any], Any],
) -> Row:
    """A row whose record fields map by name and whose own fields go, by name, to `method`
    (by default the command's name: RecordPayment -> record_payment) of its aggregate."""
    verb = method or re.sub(r"(?<!^)(?=[A-Z])", "_", command.__name__).lower()
    return Row(command, mapping.by_field_names(command, **converters), to_aggregate(verb))


def to_aggregate(method: str) -> Handler:
    """The handler that calls `method` of the account (or plan) the command names."""

    def handle(command: Command, work: UnitOfWork) -> None:
        if isinstance(command, m.PlanCommand):
            aggregate: Any = work.require_plan(command.plan_id)
        else:
            aggregate = work.require_account(command.key)
        getattr(aggregate, method)(
            command_id=command.command_id, issued_at=command.issued_at, **command.own_fields()
        )

    return handle


COMMANDS: tuple[Row, ...] = (
    Row(
        m.DefinePlan,
        mapping.by_field_names(m.DefinePlan, interval_unit=IntervalUnit),
        plan.define_plan,
    ),
    passed_on(m.RevisePlan, "revise"),
    passed_on(m.RetirePlan, "retire"),
    Row(m.OpenAccount, mapping.open_account, account.open_account),
    Row(m.Subscribe, mapping.subscribe, account.subscribe),
    Row(m.ChangePlan, mapping.by_field_names(m.ChangePlan), account.change_plan),
    passed_on(m.AdvanceClock),
    passed_on(m.RecordPayment),
    passed_on(m.FailCharge, reason=ChargeFailureReason),
    passed_on(m.Renegotiate, invoice_ids=tuple),
    Row(m.SetDunningPolicy, mapping.set_dunning_policy, to_aggregate("set_dunning_policy")),
    passed_on(m.ReportHardship),
    passed_on(m.AnnouncePriceChange),
    passed_on(m.PauseSubscription),
    passed_on(m.ResumeSubscription),
    passed_on(m.CancelSubscription),
    passed_on(m.ReactivateSubscription),
    passed_on(m.AddPaymentMethod),
    passed_on(m.RemovePaymentMethod),
    passed_on(m.SetDefaultPaymentMethod),
    passed_on(m.RecordFeedback),
    passed_on(m.Charge),
    passed_on(m.IssueCreditNote),
    passed_on(m.RefundCredit),
    passed_on(m.WriteOff),
)

HANDLERS: dict[type[Command], Handler] = {row.command: row.handle for row in COMMANDS}
FROM_RECORD: dict[str, FromRecord] = {row.name: row.from_record for row in COMMANDS}


def command_type_of(schema_name: str) -> str | None:
    """The command type a schema carries (`billing.commands.Subscribe` -> `Subscribe`), or None."""
    namespace, _, name = schema_name.rpartition(".")
    return name if namespace == COMMAND_NAMESPACE and name in FROM_RECORD else None


def command_from_record(command_type: str, record: Mapping[str, Any]) -> Command:
    """The command a decoded record of `command_type` carries."""
    key_field = mapping.key_field_of(command_type)
    head = {
        "command_id": record["command_id"],
        "issued_at": record["issued_at"],
        key_field: record[key_field],
    }
    return FROM_RECORD[command_type](record, head)
