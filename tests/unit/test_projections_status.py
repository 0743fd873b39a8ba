"""`ledger projections status`: the read models are caught up only with every snapshot made."""

from __future__ import annotations

from runtime.projections_status import PartitionLag, ProjectionsStatus


def status(lag: int, pending_snapshot_days: int) -> ProjectionsStatus:
    """One partition `lag` events behind, with `pending_snapshot_days` to make."""
    return ProjectionsStatus(
        "cluster-a",
        "read-models",
        {"forecast_snapshots": ("forecast_snapshots",)},
        (PartitionLag(0, 9, 10 + lag, lag),),
        (),
        (),
        pending_snapshot_days,
    )


class TestCaughtUp:
    """Events applied and forecast snapshots made, both."""

    def test_pending_snapshot_days_hold_it_back(self) -> None:
        """No lag but 3 days pending: not caught up, and the text says how many."""
        shown = status(0, 3)
        assert not shown.caught_up
        assert "forecast snapshot days pending (made when the projector is idle): 3" in (
            shown.describe()
        )
        assert shown.as_dict()["pending_snapshot_days"] == 3

    def test_no_lag_and_none_pending(self) -> None:
        """Nothing to apply and nothing to make: caught up."""
        assert status(0, 0).caught_up
        assert not status(1, 0).caught_up
