"""The handlers of the plan catalogue's commands, on the plan each names."""

from __future__ import annotations

from commands.messages import DefinePlan, RetirePlan, RevisePlan
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


def revise_plan(command: RevisePlan, work: UnitOfWork) -> None:
    """Give the plan's new subscribers another price."""
    work.require_plan(command.plan_id).revise(
        command_id=command.command_id,
        issued_at=command.issued_at,
        price_minor=command.price_minor,
        trial_days=command.trial_days,
        name=command.name,
    )


def retire_plan(command: RetirePlan, work: UnitOfWork) -> None:
    """Take no new subscribers to the plan."""
    work.require_plan(command.plan_id).retire(
        command_id=command.command_id, issued_at=command.issued_at
    )
