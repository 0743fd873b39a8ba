"""What the embedded servers share: finding their processes, stopping them, ports, logs, readiness."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from pathlib import Path
from typing import NotRequired, Protocol, TypedDict

import psutil  # type: ignore[import-untyped]
from kafka import KafkaAdminClient
from kafka.errors import KafkaError

HOST = "127.0.0.1"
STOP_GRACE_S = 5.0
LOG_TAIL_LINES = 20


class BrokerRecord(TypedDict):
    """What embedded.json keeps about the embedded broker: its kind, process and address."""

    broker: str  # "tansu" or "apache-kafka"; records written before there was a choice lack it
    pid: int | None
    bootstrap: str
    cluster_id: str
    log: str
    controller: NotRequired[str]  # Apache Kafka's controller listener
    config: NotRequired[str]  # Apache Kafka's server.properties, which names its process


class Broker(Protocol):
    """An embedded broker's module (local/tansu.py, local/apache_kafka.py): how to start and find it."""

    def start(self, home: Path, previous: BrokerRecord | None) -> BrokerRecord: ...

    def process(self, record: BrokerRecord) -> tuple[psutil.Process | None, str]: ...


def verified_process(
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


def stop_process(process: psutil.Process, grace_s: float = STOP_GRACE_S) -> None:
    """SIGTERM, then SIGKILL if the process is still there after the grace period."""
    with contextlib.suppress(psutil.NoSuchProcess):
        process.terminate()
        try:
            process.wait(grace_s)
        except psutil.TimeoutExpired:
            process.kill()
            process.wait(STOP_GRACE_S)


def port_for(previous: str | None) -> int:
    """The port of a previous address (host:port) when it is free, so addresses stay stable; else any."""
    if previous and can_listen(port := int(previous.rpartition(":")[2])):
        return port
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port = probe.getsockname()[1]
        return int(port)


def can_listen(port: int) -> bool:
    """Whether a server could listen on port: lingering TIME_WAIT connections do not count."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError:
            return False
        return True


def wait_for_broker(
    broker: subprocess.Popen[bytes],
    bootstrap: str,
    cluster_id: str,
    log_path: Path,
    timeout_s: float,
) -> str:
    """Wait until the broker serves cluster_id on bootstrap; answer "" then, else why not."""
    deadline = time.monotonic() + timeout_s
    problem = "not tried"
    while time.monotonic() < deadline:
        if broker.poll() is not None:
            return f"it exited with code {broker.returncode} while starting\n{tail(log_path)}"
        if (problem := broker_problem(bootstrap, cluster_id)) == "":
            return ""
        time.sleep(0.05)
    stop_process(psutil.Process(broker.pid))
    return f"it did not answer within {timeout_s:g} s ({problem})\n{tail(log_path)}"


def broker_problem(bootstrap: str, cluster_id: str) -> str:
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


def tail(path: Path) -> str:
    """The last lines of a server's log, for an error message."""
    try:
        lines = path.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
    except OSError as error:
        return f"(no log at {path}: {error.strerror})"
    return f"last lines of {path}:\n" + "\n".join(lines)


class EmbeddedError(Exception):
    """An embedded server could not start, stop or be inspected; the message says what to do."""
