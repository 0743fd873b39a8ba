"""The handlers of the plan catalogue's commands, on the plan each names."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from commands.messages import DefinePlan, PlanCommand
from commands.unit_of_work import UnitOfWork
from ledger.plans import Plan, PlanAlreadyDefined


def define_plan(command: DefinePlan, work: UnitOfWork) -> None:
    """Add the plan to the catalogue, unless a plan with this id is there already."""
    if work.plan(command.plan_id) is not None:
        raise PlanAlreadyDefined(
            f"plan {command.plan_id!r} is already in the catalogue; RevisePlan changes its "
            "price for new subscribers",
            field="plan_id",
        )
    work.add_plan(
        Plan.define(
            command_id=command.command_id,
            issued_at=command.issued_at,
            plan_id=command.plan_id,
            name=command.name,
            price_minor=command.price_minor,
            currency=command.currency,
            interval_unit=command.interval_unit,
            interval_count=command.interval_count,
            trial_days=command.trial_days,
        )
    )


def to_plan(method: str) -> Callable[[Any, UnitOfWork], None]:
    """The handler that passes a plan command's own fields to `method` of the plan it names."""

    def handle(command: PlanCommand, work: UnitOfWork) -> None:
        getattr(work.require_plan(command.plan_id), method)(
            command_id=command.command_id, issued_at=command.issued_at, **command.own_fields()
        )

    return handle
