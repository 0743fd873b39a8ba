"""`ledger` as a process of its own, for the end-to-end and CLI tests: run it, stop it,
run one of its verbs, and read what the ledger projected."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import psycopg

from tests.helpers import SESSION_TIMEOUT_MS


def start_ledger(
    env: dict[str, str], log: Path, checkout: Path | None = None
) -> subprocess.Popen[bytes]:
    """`ledger run` in its own process, logging to `log`; the code of `checkout` if given
    (its directory comes first on the module path), else the installed one."""
    full_env = {**os.environ, "LEDGER_SESSION_TIMEOUT_MS": str(SESSION_TIMEOUT_MS), **env}
    with log.open("wb") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "runtime.cli", "run"],
            env=full_env,
            cwd=checkout,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )


def stop_ledger(process: subprocess.Popen[bytes]) -> int:
    """SIGTERM, then the exit status (killing it if it hangs)."""
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        raise


def balances_row(database_url: str, account_id: str) -> tuple[object, ...] | None:
    """(currency, receivable_minor, invoiced_minor, subscriptions) of the account, if projected."""
    with psycopg.connect(database_url) as connection:
        try:
            return connection.execute(
                "SELECT currency, receivable_minor, invoiced_minor, subscriptions "
                "FROM balances WHERE account_id = %s",
                (account_id,),
            ).fetchone()
        except psycopg.errors.UndefinedTable:
            return None


def ledger(
    *args: str, env: dict[str, str], stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `ledger ARGS` and capture what it prints.

    The deadline leaves room for `infra up` on Apache Kafka, whose JVM takes tens of seconds
    to start on a busy two-core machine (and up to its 120 s start timeout).
    """
    return subprocess.run(
        [sys.executable, "-m", "runtime.cli", *args],
        env={**os.environ, **env},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
