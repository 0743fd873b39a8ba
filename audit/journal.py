"""`ledger audit journal`: the general-ledger journal of every posting, from the events alone.

One line per posting, in position order: the shape an accountant imports (docs/audit.md,
"The journal"). Amounts are integer minor units of the line's currency; the lines of one
entry (one event) balance, so debits equal credits per currency over any selection.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastavro import parse_schema
from fastavro.write import Writer

from audit.export_format import (
    EXPORT_NAMESPACE,
    offline_mapper,
    stored_event,
    type_name,
    typed_record,
)
from audit.store import Snapshot
from projections.postings import ONE_INVOICE_EVENTS

COLUMNS = (
    "date",
    "entry",
    "line",
    "ledger_account",
    "debit_minor",
    "credit_minor",
    "currency",
    "document",
    "event_type",
    "account_id",
    "occurred_at",
    "position",
)
_TYPES = {"line": "int", "debit_minor": "long", "credit_minor": "long", "position": "long"}
LINE_SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "JournalLine",
    "namespace": EXPORT_NAMESPACE,
    "doc": "One posting of one journal entry (an event); docs/audit.md, 'The journal'.",
    "fields": [{"name": name, "type": _TYPES.get(name, "string")} for name in COLUMNS],
}


@dataclass
class Totals:
    """Debits and credits per currency, in minor units, and the lines written."""

    lines: int = 0
    debit_minor: dict[str, int] = field(default_factory=dict)
    credit_minor: dict[str, int] = field(default_factory=dict)

    def add(self, line: dict[str, Any]) -> None:
        currency = line["currency"]
        self.lines += 1
        self.debit_minor[currency] = self.debit_minor.get(currency, 0) + line["debit_minor"]
        self.credit_minor[currency] = self.credit_minor.get(currency, 0) + line["credit_minor"]

    def unbalanced(self) -> list[str]:
        """The currencies whose debits and credits differ."""
        return [c for c in sorted(self.debit_minor) if self.debit_minor[c] != self.credit_minor[c]]


def journal_lines(
    store: Snapshot,
    from_position: int = 1,
    to_position: int | None = None,
    account_id: str | None = None,
) -> Iterator[dict[str, Any]]:
    """The journal lines of the stored events in the range, by position and leg."""
    mapper = offline_mapper()
    for position, topic, originator_id, version, state in store.events(
        from_position - 1, to_position
    ):
        event = mapper.to_domain_event(stored_event(topic, originator_id, version, bytes(state)))
        schema_name, record = typed_record(event)
        postings = record.get("postings")
        if not postings or (account_id is not None and record.get("account_id") != account_id):
            continue
        event_type = type_name(schema_name)
        occurred_at = record["occurred_at"]
        document = record["invoice_id"] if event_type in ONE_INVOICE_EVENTS else record["event_id"]
        for leg, posting in enumerate(postings, start=1):
            debit = posting["side"] == "DEBIT"
            yield {
                "date": occurred_at.date().isoformat(),
                "entry": record["event_id"],
                "line": leg,
                "ledger_account": posting["ledger_account"],
                "debit_minor": posting["amount_minor"] if debit else 0,
                "credit_minor": 0 if debit else posting["amount_minor"],
                "currency": record["currency"],
                "document": document,
                "event_type": event_type,
                "account_id": record["account_id"],
                "occurred_at": occurred_at.isoformat(),
                "position": position,
            }


def write_journal(lines: Iterator[dict[str, Any]], folder: Path, codec_name: str) -> Totals:
    """Write `lines` to folder/journal.csv and folder/journal.avro; answer the totals."""
    folder.mkdir(parents=True, exist_ok=True)
    totals = Totals()
    with (
        (folder / "journal.csv").open("x", newline="") as text,
        (folder / "journal.avro").open("xb") as binary,
    ):
        table = csv.DictWriter(text, fieldnames=COLUMNS)
        table.writeheader()
        container = Writer(binary, parse_schema(LINE_SCHEMA), codec=codec_name)
        for line in lines:
            table.writerow(line)
            container.write(line)
            totals.add(line)
        container.flush()
    return totals
