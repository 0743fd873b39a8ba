"""Every read model the projector feeds: the one list the runner, the analytics role and tools use."""

from __future__ import annotations

from projections.balances import Balances
from projections.forecast import Forecast
from projections.metrics import Metrics
from projections.plans import Plans
from projections.projector import POSITIONS_TABLE, Projection
from projections.subscriptions import Subscriptions

READ_MODELS: tuple[Projection, ...] = (Balances(), Plans(), Subscriptions(), Forecast(), Metrics())


def read_model_tables() -> tuple[str, ...]:
    """Every table of the read models, and the projector's positions, in registry order."""
    return (*(table for model in READ_MODELS for table in model.tables), POSITIONS_TABLE)
