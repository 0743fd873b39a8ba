"""What an export directory holds: its files, their Avro schemas and the manifest's fields.

Shared by the writer (audit/export.py) and the checker (audit/check_export.py), and
described for auditors in docs/audit.md ("Exports"). One Avro object container file per
event type, `<EventType>.avro`, each record the stored event (the columns its Merkle leaf
hashes) beside its billing.events (or billing.results) record; `heads.avro` holds the batch
heads the exported events belong to; `manifest.json` the counts, roots and links.
"""

from __future__ import annotations

import copy
from typing import Any

from eventsourcing.persistence import StoredEvent

from ledger.receipts import CommandReceipt
from wire.codec import AvroCodec
from wire.event_records import EVENT_SCHEMAS, RESULT_SCHEMA, event_record, result_record

FORMAT = "billing-ledger-export/1"
LAYOUT = "one Avro object container file per event type: <EventType>.avro; heads.avro"
MANIFEST = "manifest.json"
HEADS_FILE = "heads.avro"
EXPORT_NAMESPACE = "billing.export"
CODECS = ("deflate", "zstandard")

_TIMESTAMP_MICROS = {"type": "long", "logicalType": "timestamp-micros"}

HEAD_SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "BatchHead",
    "namespace": EXPORT_NAMESPACE,
    "doc": "One batch head as stored in billing_batch_heads (docs/audit.md), and the leaves "
    "of the batch's events this export leaves out.",
    "fields": [
        {"name": "batch", "type": "long"},
        {"name": "previous_hash", "type": "bytes"},
        {"name": "last_position", "type": "long"},
        {"name": "event_count", "type": "long"},
        {"name": "events_total", "type": "long"},
        {"name": "events_root", "type": "bytes"},
        {"name": "recorded_at", "type": _TIMESTAMP_MICROS},
        {
            "name": "sources",
            "type": {
                "type": "array",
                "items": {
                    "type": "record",
                    "name": "KafkaPosition",
                    "fields": [
                        {"name": "name", "type": "string"},
                        {"name": "offset", "type": "long"},
                    ],
                },
            },
        },
        {"name": "head_hash", "type": "bytes"},
        {"name": "tree_root", "type": "bytes"},
        {
            "name": "omitted",
            "doc": "The leaf hash of each event of the batch not exported (--account).",
            "type": {
                "type": "array",
                "items": {
                    "type": "record",
                    "name": "OmittedLeaf",
                    "fields": [
                        {"name": "position", "type": "long"},
                        {"name": "leaf", "type": "bytes"},
                    ],
                },
            },
        },
    ],
}


def event_schema(codec: AvroCodec, schema_name: str) -> dict[str, Any]:
    """The schema of one event type's file: the stored event around its wire record."""
    return {
        "type": "record",
        "name": type_name(schema_name),
        "namespace": EXPORT_NAMESPACE,
        "doc": "A stored event: position, batch, recorded time and the columns its Merkle leaf "
        f"hashes (docs/audit.md), with its {schema_name} record.",
        "fields": [
            {"name": "position", "type": "long"},
            {"name": "batch", "type": "long"},
            {"name": "recorded_at", "type": _TIMESTAMP_MICROS},
            {"name": "topic", "type": "string"},
            {"name": "originator_id", "type": {"type": "string", "logicalType": "uuid"}},
            {"name": "originator_version", "type": "long"},
            {"name": "state", "type": "bytes"},
            {"name": "record", "type": _plain_schema(codec.schema(schema_name))},
        ],
    }


def _plain_schema(parsed: Any) -> Any:
    """A parsed fastavro schema without fastavro's own keys, so any Avro library reads it."""
    if isinstance(parsed, dict):
        return {k: _plain_schema(v) for k, v in parsed.items() if not k.startswith("__")}
    if isinstance(parsed, list):
        return [_plain_schema(item) for item in parsed]
    return copy.copy(parsed)


def type_name(schema_name: str) -> str:
    """`InvoiceIssued` for `billing.events.InvoiceIssued`: the export file's stem."""
    return schema_name.rpartition(".")[2]


def typed_record(event: Any) -> tuple[str, dict[str, Any]]:
    """The wire schema's full name and record of a stored domain event."""
    if isinstance(event, CommandReceipt.Recorded | CommandReceipt.Redelivered):
        return RESULT_SCHEMA, result_record(event)
    return EVENT_SCHEMAS[type(event)], event_record(event)


def stored_event(topic: str, originator_id: Any, originator_version: int, state: bytes) -> Any:
    """The library's stored event of those columns, for its mapper."""
    return StoredEvent(
        originator_id=originator_id,
        originator_version=originator_version,
        topic=topic,
        state=state,
    )


def offline_mapper() -> Any:
    """The ledger's mapper of stored events to domain events (upcasting included), with no
    database: the transcodings and event classes are the application's own."""
    from ledger.application import BillingLedger

    return BillingLedger(env={"PERSISTENCE_MODULE": "eventsourcing.popo"}).mapper
