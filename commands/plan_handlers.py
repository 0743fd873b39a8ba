"""The handler of DefinePlan; the catalogue's other commands are passed on by table.py."""

from __future__ import annotations

from commands.messages import DefinePlan
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
