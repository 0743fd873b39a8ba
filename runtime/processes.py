"""`ledger run` with LEDGER_WORKERS >= 1: each loop in a process of its own, so every core works.

Three threads in one process share one interpreter lock, so the loops together use one core.
Here `ledger run` stays the one command a user starts: it starts the embedded servers, the
topics, then one child process per loop (N command handlers in one consumer group, one relay,
one projections process, the clock if asked), and reports `ledger.running` once every child
has built its loop. A child dies with `ledger run`, even one killed by SIGKILL. A child that
dies takes the others down at once, as the death of the one process would: `ledger run` exits
1 and, restarted, every loop resumes from its stored positions.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.forkserver
import os
import select
import signal
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.context import ForkServerContext
from multiprocessing.process import BaseProcess

import structlog

from infra import logs
from infra.config import Settings
from infra.kafka import clients
from runtime import runner

logger = structlog.get_logger(__name__)
READY_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 30.0
PARENT_CHECK_S = 0.5

Builder = Callable[[Settings, runner.Endpoints, ExitStack], tuple[str, runner.Step]]
BUILDERS: dict[str, Builder] = {
    "commands": runner.command_loop,
    "relay": runner.relay_loop,
    "projections": runner.projector_loop,
    "clock": runner.clock_loop,
}


class LoopDied(Exception):
    """A loop's process ended while `ledger run` was running; the others were stopped."""


@dataclass(frozen=True)
class LoopSpec:
    """What a child process needs to build its loop: plain values, sent to a fresh interpreter."""

    name: str
    settings: Settings
    database_url: str
    bootstrap: str
    cluster_id: str
    supervisor: int  # the pid of `ledger run`


def loop_names(settings: Settings) -> list[str]:
    """The loops of `ledger run`, one per process: the command handler once per worker."""
    names = ["commands"] * settings.workers + ["relay", "projections"]
    return names + (["clock"] if settings.clock_interval_s > 0 else [])


def run_processes(
    settings: Settings,
    where: runner.Endpoints,
    stop: threading.Event,
    on_running: runner.OnRunning | None,
) -> str | None:
    """Run each loop in a child process until `stop` (answers None) or a new cluster (its id).

    Raises LoopDied when a child ends by itself.
    """
    context = forkserver()
    children: list[tuple[BaseProcess, Connection]] = []
    try:
        for name in loop_names(settings):
            spec = LoopSpec(
                name,
                settings,
                where.database_url,
                where.kafka.bootstrap,
                where.cluster_id,
                os.getpid(),
            )
            receiver, sender = context.Pipe(duplex=False)
            child = context.Process(target=child_main, args=(spec, sender), name=f"ledger-{name}")
            child.start()
            sender.close()
            children.append((child, receiver))
        _wait_ready(children, stop)
        logger.info(
            "ledger.running",
            loops=[child.name.removeprefix("ledger-") for child, _ in children],
            pids=[child.pid for child, _ in children],
        )
        if on_running is not None:
            on_running(where)
        return _supervise(where, [child for child, _ in children], stop)
    finally:
        _stop_all([child for child, _ in children])


def start_forkserver() -> None:
    """Start the fork server now, so that its import overlaps the servers' start and connection."""
    forkserver()  # its preload set
    multiprocessing.forkserver.ensure_running()


def forkserver() -> ForkServerContext:
    """Children forked from a server process that imported the ledger once, before any thread
    or socket existed: a child starts in a fraction of a second instead of importing it all
    again, and inherits no client's threads or connections (a plain fork would)."""
    context = multiprocessing.get_context("forkserver")
    assert isinstance(context, ForkServerContext)
    context.set_forkserver_preload([__name__])
    return context


def _wait_ready(children: list[tuple[BaseProcess, Connection]], stop: threading.Event) -> None:
    """Wait until every child said its loop is built; LoopDied if one ends first."""
    waiting = {receiver: child for child, receiver in children}
    deadline = READY_TIMEOUT_S
    while waiting and not stop.is_set() and deadline > 0:
        for ready in wait(list(waiting), timeout=0.2):
            assert isinstance(ready, Connection)
            child = waiting.pop(ready)
            try:
                ready.recv()
            except EOFError:  # it ended before saying it was ready
                raise LoopDied(f"{child.name} ended while starting") from None
        deadline -= 0.2


def _supervise(
    where: runner.Endpoints, children: list[BaseProcess], stop: threading.Event
) -> str | None:
    admin = where.kafka.admin()
    try:
        checked = 0.0
        while not stop.is_set():
            ended = wait([child.sentinel for child in children], timeout=0.2)
            if ended:
                dead = [child for child in children if not child.is_alive()]
                _kill_all(children)  # as if the one process had died: no loop runs on alone
                raise LoopDied(", ".join(f"{c.name} ended (exit {c.exitcode})" for c in dead))
            checked += 0.2
            if checked >= runner.CLUSTER_CHECK_S:
                checked = 0.0
                if (replacement := runner.other_cluster(admin, where.cluster_id)) is not None:
                    logger.info("ledger.stopping", reason="new cluster")
                    return replacement
        logger.info("ledger.stopping", reason="stop")
        return None
    finally:
        admin.close()


def _stop_all(children: list[BaseProcess]) -> None:
    """SIGTERM: each child finishes its batch in flight; SIGKILL for one that hangs."""
    for child in children:
        if child.is_alive() and child.pid is not None:
            os.kill(child.pid, signal.SIGTERM)
    for child in children:
        child.join(STOP_TIMEOUT_S)
    _kill_all(children)


def _kill_all(children: list[BaseProcess]) -> None:
    for child in children:
        if child.is_alive():
            child.kill()
        child.join(STOP_TIMEOUT_S)


def child_main(spec: LoopSpec, ready: Connection) -> None:
    """A child process: build the loop `spec` names, say so, repeat it until SIGTERM or SIGINT."""
    die_with(spec.supervisor)
    logs.configure(spec.settings.log_level, spec.settings.log_format)
    structlog.contextvars.bind_contextvars(process=spec.name)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    where = runner.Endpoints(
        spec.database_url, clients(spec.bootstrap, spec.settings), spec.cluster_id
    )
    with ExitStack() as stack:
        name, step = BUILDERS[spec.name](spec.settings, where, stack)
        ready.send(name)
        ready.close()
        runner.repeat(name, step, stop)


def die_with(supervisor: int) -> None:
    """End this process as soon as `ledger run` (pid `supervisor`) ends, even by SIGKILL.

    The loops' parent is the fork server, which outlives `ledger run` as long as they run, so
    a thread watches `ledger run` itself: a pidfd on Linux, its pid elsewhere.
    """
    threading.Thread(
        target=_watch, args=(supervisor,), name="watch-ledger-run", daemon=True
    ).start()


def _watch(supervisor: int) -> None:
    try:
        select.select([os.pidfd_open(supervisor)], [], [])  # readable once it has ended
    except (AttributeError, OSError):  # no pidfds here, or it has ended already
        while _exists(supervisor):
            time.sleep(PARENT_CHECK_S)
    os.kill(os.getpid(), signal.SIGKILL)


def _exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
