"""Every read model the projector feeds: the one list the runner, the analytics role and tools use."""

from __future__ import annotations

from projections.balances import Balances
from projections.delinquency import Delinquency
from projections.failures import FAILURES_TABLE
from projections.forecast import Forecast
from projections.forecast_snapshots import ForecastSnapshots
from projections.invoices import Invoices
from projections.metrics import Metrics
from projections.plans import Plans
from projections.postings import Postings
from projections.projector import POSITIONS_TABLE, Projection
from projections.subscriptions import Subscriptions

READ_MODELS: tuple[Projection, ...] = (
    Balances(),
    Plans(),
    Invoices(),
    Postings(),
    Delinquency(),
    Subscriptions(),
    Forecast(),
    Metrics(),
    ForecastSnapshots(),  # after the forecast and subscriptions: it reads their rows
)
# The projector that feeds READ_MODELS in `ledger run`: its positions and failures carry it.
READ_MODELS_PROJECTOR = "read-models"


def read_model_tables() -> tuple[str, ...]:
    """Every table of the read models, the projector's positions and failures, in order."""
    tables = (table for model in READ_MODELS for table in model.tables)
    return (*tables, POSITIONS_TABLE, FAILURES_TABLE)
