"""`ledger projections status`: how far each read model is behind billing.events, and what failed.

The head of each partition is its high watermark from a fetch response (the embedded broker
answers ListOffsets LATEST wrongly for batched records); the lag is the head less the next
offset the projector would apply. Failures and stale accounts come from projection_failures;
the forecast snapshot days still to be made (the projector makes them once idle) from
forecast_snapshot_pending.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import psycopg

from infra.kafka import KafkaClients
from infra.postgres import connect
from projections.registry import READ_MODELS, READ_MODELS_PROJECTOR
from projections.snapshot_days import pending_days
from wire.topics import EVENTS_TOPIC


@dataclass(frozen=True)
class PartitionLag:
    """One partition of billing.events: the last offset applied, the head and the difference."""

    partition: int
    applied: int | None  # the last offset applied; None: nothing yet
    head: int | None  # the next offset to be written; None: the broker did not say
    lag: int | None


@dataclass(frozen=True)
class Failure:
    """An event a read model failed to apply."""

    topic: str
    partition: int
    offset: int
    event_type: str
    account_id: str | None
    error: str
    failed_at: str


@dataclass(frozen=True)
class ProjectionsStatus:
    """The read models, their positions against the head, their failures and stale accounts."""

    cluster_id: str
    projector: str
    read_models: dict[str, tuple[str, ...]]  # read model -> its tables
    partitions: tuple[PartitionLag, ...]
    failures: tuple[Failure, ...]
    stale_accounts: tuple[str, ...]
    pending_snapshot_days: int  # forecast snapshots not made yet since events changed them

    @property
    def lag(self) -> int | None:
        """Events on billing.events not applied yet, over all partitions (None if unknown)."""
        lags = [p.lag for p in self.partitions]
        return None if None in lags else sum(lag or 0 for lag in lags)

    @property
    def caught_up(self) -> bool:
        """Every event applied and every forecast snapshot made."""
        return self.lag == 0 and self.pending_snapshot_days == 0

    def as_dict(self) -> dict[str, Any]:
        """The status as plain data, for --json."""
        return asdict(self) | {"lag": self.lag}

    def describe(self) -> str:
        """The status for people, one fact per line."""
        lines = []
        for name, tables in self.read_models.items():
            lines.append(
                f"read model {name} ({', '.join(tables)}): lag {_text(self.lag)} events, "
                f"{len(self.stale_accounts)} stale accounts"
            )
        lines.append(f"projector {self.projector} on cluster {self.cluster_id}, {EVENTS_TOPIC}:")
        for p in self.partitions:
            lines.append(
                f"  partition {p.partition}: applied up to {_text(p.applied)}, "
                f"head {_text(p.head)}, lag {_text(p.lag)}"
            )
        lines.append(f"failures: {len(self.failures)}")
        for f in self.failures:
            lines.append(
                f"  {f.topic}/{f.partition}@{f.offset} {f.event_type} of {f.account_id} "
                f"at {f.failed_at}: {f.error}"
            )
        stale = ", ".join(self.stale_accounts) or "none"
        lines.append(f"stale accounts (rows stop before their failed event): {stale}")
        lines.append(
            f"forecast snapshot days pending (made when the projector is idle): "
            f"{self.pending_snapshot_days}"
        )
        return "\n".join(lines)


def _text(value: int | None) -> str:
    return "unknown" if value is None else str(value)


def projections_status(database_url: str, kafka: KafkaClients) -> ProjectionsStatus:
    """The status of the read models `ledger run` feeds, on the broker `kafka` reaches."""
    admin = kafka.admin()
    try:
        cluster_id = admin.cluster_id()
    finally:
        admin.close()
    with connect(database_url) as connection:
        applied = _positions(connection, cluster_id)
        failures = _failures(connection)
        snapshot_days = _pending_snapshot_days(connection)
    heads = kafka.high_watermarks(EVENTS_TOPIC, {p: o + 1 for p, o in applied.items()})
    partitions = tuple(
        PartitionLag(number, applied.get(number), head, _lag(head, applied.get(number)))
        for number, head in sorted({n: heads.get(n) for n in heads.keys() | applied.keys()}.items())
    )
    stale = tuple(sorted({f.account_id for f in failures if f.account_id is not None}))
    return ProjectionsStatus(
        cluster_id,
        READ_MODELS_PROJECTOR,
        {model.name: model.tables for model in READ_MODELS},
        partitions,
        failures,
        stale,
        snapshot_days,
    )


def _lag(head: int | None, applied: int | None) -> int | None:
    if head is None:
        return None
    return max(0, head - (0 if applied is None else applied + 1))


def _positions(connection: psycopg.Connection[Any], cluster_id: str) -> dict[int, int]:
    try:
        rows = connection.execute(
            "SELECT partition, last_offset FROM projection_positions "
            "WHERE cluster_id = %s AND projector = %s AND topic = %s",
            (cluster_id, READ_MODELS_PROJECTOR, EVENTS_TOPIC),
        ).fetchall()
    except psycopg.errors.UndefinedTable:
        connection.rollback()  # the ledger has not run yet
        return {}
    return {int(partition): int(offset) for partition, offset in rows}


def _failures(connection: psycopg.Connection[Any]) -> tuple[Failure, ...]:
    try:
        rows = connection.execute(
            'SELECT topic, partition, "offset", event_type, account_id, error, '
            "to_char(failed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') "
            "FROM projection_failures WHERE projector = %s ORDER BY failed_at, topic, partition, "
            '"offset"',
            (READ_MODELS_PROJECTOR,),
        ).fetchall()
    except psycopg.errors.UndefinedTable:
        connection.rollback()
        return ()
    return tuple(Failure(*row) for row in rows)


def _pending_snapshot_days(connection: psycopg.Connection[Any]) -> int:
    try:
        return pending_days(connection)
    except psycopg.errors.UndefinedTable:
        connection.rollback()
        return 0
