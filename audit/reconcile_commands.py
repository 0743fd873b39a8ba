"""What `ledger audit reconcile` does: every check in one snapshot, every difference printed."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg

from audit.history import History
from audit.reconcile import Difference, read_model_differences, trial_balance
from audit.reconcile_topics import check_topic, expected, relayed_up_to
from audit.store import Snapshot
from infra.config import Settings
from infra.kafka import clients
from infra.postgres import connect
from projections.registry import READ_MODELS
from runtime.report_output import write_sections
from wire.topics import EVENTS_TOPIC, RESULTS_TOPIC


def reconcile(args: argparse.Namespace, url: str, settings: Settings, bootstrap: str | None) -> int:
    """Run the checks; print the trial balance, the topics' counts and each difference."""
    sections: dict[str, list[dict[str, Any]]] = {}
    with rolled_back_snapshot(url) as store:
        sections["trial balance"], differences = trial_balance(History(store))
        differences += read_model_differences(store.connection, READ_MODELS)
        if bootstrap is not None:
            topics, found = topic_checks(store, settings, bootstrap)
            sections["topics"] = topics
            differences += found
    sections["differences"] = [
        {"check": d.check, "where": d.where, "detail": d.detail} for d in differences
    ]
    if args.format == "json":
        sys.stdout.write(json.dumps(sections | {"reconciled": not differences}, indent=2) + "\n")
    else:
        write_sections(sections, "table", sys.stdout)
        checked = "books and read models" + ("" if bootstrap is None else " and topics")
        count = len(differences)
        verdict = f"{count} difference{'' if count == 1 else 's'}" if count else "RECONCILED"
        print(f"{verdict}: {checked} against the event store")
    return 1 if differences else 0


def topic_checks(
    store: Snapshot, settings: Settings, bootstrap: str
) -> tuple[list[dict[str, Any]], list[Difference]]:
    """billing.events and billing.command-results against the store."""
    kafka = clients(bootstrap, settings)
    admin = kafka.admin()
    try:
        cluster_id = admin.cluster_id()
    finally:
        admin.close()
    relayed = relayed_up_to(store, cluster_id)
    rows: list[dict[str, Any]] = []
    differences: list[Difference] = []
    for topic, wanted in zip((EVENTS_TOPIC, RESULTS_TOPIC), expected(store), strict=True):
        messages, starts = kafka.read_whole_topic(topic)
        found_rows, found = check_topic(topic, wanted, messages, starts, relayed)
        rows += found_rows
        differences += found
    return rows, differences


@contextmanager
def rolled_back_snapshot(url: str) -> Iterator[Snapshot]:
    """One consistent view of the store in a transaction that writes nothing it keeps: the
    read models are built again in a schema of their own and rolled back with it."""
    with connect(url) as connection:
        connection.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        with connection.transaction(force_rollback=True):
            yield Snapshot(connection)
