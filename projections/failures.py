"""Events a projection failed to apply: recorded with the error, their accounts marked stale.

A projection that raises on an event has a bug. The projector rolls back that event's rows
only (a savepoint), records it here and goes on; the account (or plan) it belongs to is
stale from then on: its rows stop at the event before, and later events of it are skipped
until the bug is fixed and the read models rebuilt. Every other account goes on.
"""

from __future__ import annotations

import traceback
from typing import Any

import psycopg

from infra.kafka import Message

FAILURES_TABLE = "projection_failures"
FAILURES_SCHEMA = """
CREATE TABLE IF NOT EXISTS projection_failures (
    cluster_id text NOT NULL,
    projector text NOT NULL,
    topic text NOT NULL,
    partition integer NOT NULL,
    "offset" bigint NOT NULL,
    event_type text NOT NULL,
    account_id text,
    event_id text,
    error text NOT NULL,
    failed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (cluster_id, projector, topic, partition, "offset")
);
CREATE INDEX IF NOT EXISTS projection_failures_accounts
    ON projection_failures (projector, account_id);
COMMENT ON TABLE projection_failures IS
    'Events a read model failed to apply (a bug): their account_id (a plan id for a plan '
    'event) is stale in the read models until they are rebuilt.';
"""


def stale_accounts(cursor: psycopg.Cursor[Any], projector: str) -> set[str]:
    """The accounts (and plans) whose rows `projector` no longer updates."""
    cursor.execute(
        "SELECT DISTINCT account_id FROM projection_failures "
        "WHERE projector = %s AND account_id IS NOT NULL",
        (projector,),
    )
    return {str(row[0]) for row in cursor.fetchall()}


def owner_of(record: dict[str, Any]) -> str | None:
    """The account an event belongs to, or the plan for a catalogue event."""
    owner = record.get("account_id") or record.get("plan_id")
    return None if owner is None else str(owner)


def version_of(record: dict[str, Any]) -> int | None:
    """The version of its account (or plan) an event made, if it carries one."""
    version = (
        record.get("account_version") if "account_id" in record else record.get("plan_version")
    )
    return None if version is None else int(version)


def record_failure(
    cursor: psycopg.Cursor[Any],
    where: tuple[str, str],
    message: Message,
    event_type: str,
    owner: str | None,
    error: BaseException,
) -> None:
    """Store that `message` (an event of `owner`) failed to apply, with its traceback.

    `where` is (cluster id, projector name).
    """
    event_id = dict(message.headers).get("event_id")
    cursor.execute(
        'INSERT INTO projection_failures (cluster_id, projector, topic, partition, "offset", '
        "event_type, account_id, event_id, error) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) "
        "ON CONFLICT DO NOTHING",
        (
            *where,
            message.topic,
            message.partition,
            message.offset,
            event_type,
            owner,
            None if event_id is None else event_id.decode(errors="replace"),
            "".join(traceback.format_exception_only(error)).strip()[:2000],
        ),
    )
