"""Every read model the projector feeds: the one list the runner, the analytics role and tools use."""

from __future__ import annotations

from projections.balances import Balances
from projections.plans import Plans
from projections.projector import POSITIONS_TABLE, Projection

READ_MODELS: tuple[Projection, ...] = (Balances(), Plans())


def read_model_tables() -> tuple[str, ...]:
    """Every table of the read models, and the projector's positions, in registry order."""
    return (*(table for model in READ_MODELS for table in model.tables), POSITIONS_TABLE)
