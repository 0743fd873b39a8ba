"""`ledger audit export`: the history as Avro object container files and a manifest.

The export covers whole batches, so that each batch head can be checked against the events
(docs/audit.md, "Exports"). It streams: events and heads are read by server-side cursors
and written block by block, so memory stays flat whatever the history's size; only one
batch's left-out leaves and the Merkle frontier are held.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from fastavro import parse_schema
from fastavro.write import Writer

from audit.basics import AuditError
from audit.checkpoint import Checkpoint
from audit.export_format import (
    FORMAT,
    HEAD_SCHEMA,
    HEADS_FILE,
    LAYOUT,
    MANIFEST,
    event_schema,
    offline_mapper,
    stored_event,
    type_name,
    typed_record,
)
from audit.store import EventRow, Snapshot
from infra import merkle
from infra.batch_heads import NO_PREVIOUS, SealedHead, event_leaf
from wire.codec import AvroCodec

Progress = Callable[[int, int], None]  # (last position done, last position of the export)


@dataclass(frozen=True)
class Selection:
    """What to export: positions (widened to whole batches), one account, up to a checkpoint."""

    from_position: int | None = None
    to_position: int | None = None
    account_id: str | None = None
    checkpoint: Checkpoint | None = None
    checkpoint_note: str | None = None


@dataclass
class Exported:
    """What an export wrote: the manifest's figures."""

    manifest: dict[str, Any]
    counts: dict[str, int] = field(default_factory=dict)

    def describe(self) -> str:
        """One line for people."""
        m = self.manifest
        return (
            f"exported {m['events']} events of {len(m['counts'])} types in batches "
            f"{m['first_batch']}..{m['last_batch']} (positions {m['first_position']}.."
            f"{m['last_position']}); Merkle root {m['merkle_root']}; chains to head "
            f"{m['last_head']['head_hash']} (tree of heads size {m['last_head']['batch']}, "
            f"root {m['last_head']['tree_root']})"
        )


class _Files:
    """The open container files of an export, one per event type, opened on first use."""

    def __init__(self, folder: Path, codec_name: str) -> None:
        self.folder = folder
        self.codec_name = codec_name
        self.avro = AvroCodec()
        self.writers: dict[str, tuple[IO[bytes], Writer]] = {}
        self.records: dict[str, int] = {}

    def write(self, schema_name: str, record: dict[str, Any]) -> None:
        name = type_name(schema_name)
        if name not in self.writers:
            schema = parse_schema(event_schema(self.avro, schema_name))
            self.writers[name] = self._open(f"{name}.avro", schema)
            self.records[name] = 0
        self.writers[name][1].write(record)
        self.records[name] += 1

    def _open(self, file_name: str, schema: Any) -> tuple[IO[bytes], Writer]:
        out = (self.folder / file_name).open("xb")
        return out, Writer(out, schema, codec=self.codec_name)

    def close(self) -> dict[str, dict[str, Any]]:
        """Flush and close every file; answer each one's records and SHA-256."""
        files = {}
        for name, (out, writer) in sorted(self.writers.items()):
            writer.flush()
            out.close()
            file_name = HEADS_FILE if name == HEADS_FILE else f"{name}.avro"
            files[file_name] = {
                "records": self.records[name],
                "sha256": sha256_of(self.folder / file_name),
            }
        return files


def sha256_of(path: Path) -> str:
    """The hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def export(
    store: Snapshot,
    folder: Path,
    selection: Selection,
    codec_name: str = "deflate",
    progress: Progress | None = None,
) -> Exported:
    """Write the selected history into `folder` (new or empty) and its manifest."""
    first, last = _batch_range(store, selection)
    before = store.head(first.head.batch - 1) if first.head.batch > 1 else None
    folder.mkdir(parents=True, exist_ok=True)
    if any(folder.iterdir()):
        raise AuditError(f"{folder} is not empty: an export goes into a new directory")
    files = _Files(folder, codec_name)
    heads_out, heads_writer = files._open(HEADS_FILE, parse_schema(HEAD_SCHEMA))
    files.writers[HEADS_FILE], files.records[HEADS_FILE] = (heads_out, heads_writer), 0
    walk = _Walk(files, selection.account_id)
    events = store.events(
        after_position=first.head.first_position - 1, up_to=last.head.last_position
    )
    for sealed in _heads(store, first, last):
        omitted = walk.batch(sealed, events)
        heads_writer.write(_head_record(sealed, omitted))
        files.records[HEADS_FILE] += 1
        if progress is not None:
            progress(sealed.head.last_position, last.head.last_position)
    manifest = {
        "format": FORMAT,
        "layout": LAYOUT,
        "codec": codec_name,
        "exported_at": datetime.now(UTC).isoformat(),
        "selection": {
            "from_position": selection.from_position,
            "to_position": selection.to_position,
            "account_id": selection.account_id,
        },
        "first_batch": first.head.batch,
        "last_batch": last.head.batch,
        "first_position": first.head.first_position,
        "last_position": last.head.last_position,
        "events": sum(walk.counts.values()),
        "counts": dict(sorted(walk.counts.items())),
        "merkle_root": merkle.frontier_root(walk.frontier).hex(),
        "previous_head": _previous_head(before),
        "last_head": _last_head(last),
        "checkpoint": selection.checkpoint_note,
        "files": files.close(),
    }
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return Exported(manifest, walk.counts)


class _Walk:
    """The export's pass over the events: each batch's events written or their leaves kept."""

    def __init__(self, files: _Files, account_id: str | None) -> None:
        self.files = files
        self.account_id = account_id
        self.mapper = offline_mapper()
        self.frontier: list[bytes] = []
        self.exported = 0
        self.counts: dict[str, int] = {}

    def batch(self, sealed: SealedHead, events: Iterator[EventRow]) -> list[dict[str, Any]]:
        """Export the events of one batch; answer the leaves of those left out."""
        head = sealed.head
        omitted = []
        for expected in range(head.first_position, head.last_position + 1):
            row = next(events, None)
            if row is None or row[0] != expected:
                raise AuditError(
                    f"batch {head.batch} holds position {expected}, the store has "
                    f"{'no more events' if row is None else f'position {row[0]}'}: run "
                    "`ledger audit verify`"
                )
            position, topic, originator_id, version, state = row[0], *row[1:4], bytes(row[4])
            event = self.mapper.to_domain_event(stored_event(topic, originator_id, version, state))
            schema_name, record = typed_record(event)
            leaf = event_leaf(topic, originator_id, version, state)
            if self.account_id is not None and record.get("account_id") != self.account_id:
                omitted.append({"position": position, "leaf": leaf})
                continue
            self.files.write(
                schema_name,
                {
                    "position": position,
                    "batch": head.batch,
                    "recorded_at": head.recorded_at,
                    "topic": topic,
                    "originator_id": str(originator_id),
                    "originator_version": version,
                    "state": state,
                    "record": record,
                },
            )
            self.frontier = merkle.append(self.frontier, self.exported, leaf)
            self.exported += 1
            name = type_name(schema_name)
            self.counts[name] = self.counts.get(name, 0) + 1
        return omitted


def _batch_range(store: Snapshot, selection: Selection) -> tuple[SealedHead, SealedHead]:
    """The first and last batch heads of the export."""
    last = store.last_head()
    if last is None:
        raise AuditError("the store has no batch yet: nothing to export")
    if selection.checkpoint is not None:
        last = _held(store.head(selection.checkpoint.tree_size), "the checkpoint's last batch")
        if last.tree_root != selection.checkpoint.root:
            raise AuditError(
                f"the store's tree of heads at {selection.checkpoint.tree_size} batches has "
                f"root {last.tree_root.hex()}, the checkpoint {selection.checkpoint.root.hex()}"
            )
    if selection.to_position is not None:
        to = _held(store.head_holding(selection.to_position), f"position {selection.to_position}")
        last = to if to.head.batch < last.head.batch else last
    first = _held(store.head(1), "batch 1")
    if selection.from_position is not None:
        first = _held(
            store.head_holding(selection.from_position), f"position {selection.from_position}"
        )
    if first.head.batch > last.head.batch:
        raise AuditError("--from lies after --to (or after the checkpoint): nothing to export")
    return first, last


def _held(sealed: SealedHead | None, what: str) -> SealedHead:
    if sealed is None:
        raise AuditError(f"no batch holds {what}")
    return sealed


def _heads(store: Snapshot, first: SealedHead, last: SealedHead) -> Iterator[SealedHead]:
    for sealed in store.heads(after_batch=first.head.batch - 1):
        if sealed.head.batch > last.head.batch:
            return
        yield sealed


def _head_record(sealed: SealedHead, omitted: list[dict[str, Any]]) -> dict[str, Any]:
    head = sealed.head
    return {
        "batch": head.batch,
        "previous_hash": head.previous_hash,
        "last_position": head.last_position,
        "event_count": head.event_count,
        "events_total": head.events_total,
        "events_root": head.events_root,
        "recorded_at": head.recorded_at,
        "sources": [{"name": name, "offset": offset} for name, offset in head.sources],
        "head_hash": sealed.head_hash,
        "tree_root": sealed.tree_root,
        "omitted": omitted,
    }


def _previous_head(before: SealedHead | None) -> dict[str, Any]:
    """The head the export's first batch links to, and the tree of heads up to it."""
    if before is None:
        return {"batch": 0, "head_hash": NO_PREVIOUS.hex(), "tree_frontier": []}
    return {
        "batch": before.head.batch,
        "head_hash": before.head_hash.hex(),
        "tree_frontier": [node.hex() for node in before.tree_frontier],
    }


def _last_head(last: SealedHead) -> dict[str, Any]:
    return {
        "batch": last.head.batch,
        "head_hash": last.head_hash.hex(),
        "tree_root": last.tree_root.hex(),
        "events_total": last.head.events_total,
        "last_position": last.head.last_position,
        "recorded_at": last.head.recorded_at.isoformat(),
    }
