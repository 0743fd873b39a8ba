"""`ledger audit check-export`: an export checked on its own, with no database.

It recomputes what the manifest and the heads claim from the exported records: every
event's leaf and wire record, every batch's root (with the leaves of events left out), every
head's hash, link and tree root, the counts, the files' SHA-256 and the export's Merkle
root; and, given a signed checkpoint, that the export ends at it. It stops at the first
difference and names it by file and record (from 0), or by batch and position.
"""

from __future__ import annotations

import heapq
import io
import json
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, NoReturn
from uuid import UUID

from fastavro import block_reader, parse_schema, reader, schemaless_writer

from audit.checkpoint import Checkpoint
from audit.export import sha256_of
from audit.export_format import (
    FORMAT,
    HEADS_FILE,
    MANIFEST,
    offline_mapper,
    stored_event,
    type_name,
    typed_record,
)
from infra import merkle
from infra.batch_heads import BatchHead, event_leaf

# What reading a damaged container file raises (fastavro, zlib, zstd).
_UNREADABLE = (ValueError, EOFError, KeyError, TypeError, IndexError, zlib.error)


@dataclass(frozen=True)
class ExportChecked:
    """The export holds together: how much it holds and the roots it gives."""

    events: int
    batches: int
    merkle_root: bytes
    tree_size: int
    tree_root: bytes
    checkpoint: Checkpoint | None

    def describe(self) -> str:
        """One line for people."""
        tail = (
            f"; it ends at the checkpoint of {self.checkpoint.origin} ({self.checkpoint.tree_size} batches)"
            if self.checkpoint
            else "; no checkpoint given: the chain is checked, not its anchor"
        )
        return (
            f"OK: {self.events} events in {self.batches} batches, Merkle root "
            f"{self.merkle_root.hex()}; tree of heads size {self.tree_size}, root "
            f"{self.tree_root.hex()}{tail}"
        )


@dataclass(frozen=True)
class ExportBroken:
    """The first difference: where (file and record, or batch and position) and what."""

    problem: str
    file: str | None = None
    record: int | None = None
    batch: int | None = None
    position: int | None = None

    def describe(self) -> str:
        """One line for people."""
        where = [self.file or MANIFEST] if self.file or self.record is None else []
        where += [f"record {self.record}"] if self.record is not None else []
        where += [f"batch {self.batch}"] if self.batch is not None else []
        where += [f"position {self.position}"] if self.position is not None else []
        return f"BROKEN at {', '.join(where)}: {self.problem}"


class _Break(Exception):
    def __init__(self, broken: ExportBroken) -> None:
        super().__init__(broken.describe())
        self.broken = broken


def _fail(problem: str, **where: Any) -> NoReturn:
    raise _Break(ExportBroken(problem, **where))


def check_export(
    folder: Path, checkpoint: Checkpoint | None = None
) -> ExportChecked | ExportBroken:
    """Check the export in `folder`, against `checkpoint` (already verified) if given."""
    try:
        return _Check(folder, _manifest(folder)).run(checkpoint)
    except _Break as stop:
        return stop.broken
    except (
        _UNREADABLE
    ) as error:  # bytes changed so that a file is no longer Avro, or a record lacks a field
        return ExportBroken(f"cannot be read: {type(error).__name__}: {error}")


def _manifest(folder: Path) -> dict[str, Any]:
    try:
        manifest: dict[str, Any] = json.loads((folder / MANIFEST).read_text())
    except OSError as error:
        _fail(f"cannot read it: {error.strerror}")
    except ValueError as error:
        _fail(f"not JSON: {error}")
    if manifest.get("format") != FORMAT:
        _fail(f"format {manifest.get('format')!r}, this checker reads {FORMAT!r}")
    return manifest


@dataclass
class _Record:
    """One exported event as read, with where it was read from."""

    position: int
    file: str
    index: int
    fields: dict[str, Any]


class _Check:
    def __init__(self, folder: Path, manifest: dict[str, Any]) -> None:
        self.folder = folder
        self.manifest = manifest
        self.mapper = offline_mapper()
        self.exported: list[bytes] = []  # the frontier of the exported leaves' tree
        self.exported_count = 0
        self.record_schemas: dict[str, Any] = {}

    def run(self, checkpoint: Checkpoint | None) -> ExportChecked:
        self._check_listing()
        self._check_record_counts()
        tree_size, tree_root = self._walk()
        merkle_root = merkle.frontier_root(self.exported)
        if merkle_root.hex() != self.manifest["merkle_root"]:
            _fail(
                f"merkle_root is {self.manifest['merkle_root']}, the exported events give "
                f"{merkle_root.hex()}"
            )
        self._check_hashes()
        if checkpoint is not None:
            _check_anchor(checkpoint, tree_size, tree_root, self.manifest["last_head"])
        return ExportChecked(
            self.exported_count,
            tree_size - self.manifest["previous_head"]["batch"],
            merkle_root,
            tree_size,
            tree_root,
            checkpoint,
        )

    def _check_listing(self) -> None:
        listed = set(self.manifest["files"])
        present = {p.name for p in self.folder.glob("*.avro")}
        for name in sorted(listed - present):
            _fail("listed in the manifest, missing from the directory", file=name)
        for name in sorted(present - listed):
            _fail("in the directory, not listed in the manifest", file=name)

    def _check_record_counts(self) -> None:
        counts = self.manifest["counts"]
        for name, entry in sorted(self.manifest["files"].items()):
            try:
                with (self.folder / name).open("rb") as file:
                    held = sum(block.num_records for block in block_reader(file))
            except _UNREADABLE as error:
                _fail(f"cannot be read as Avro: {type(error).__name__}: {error}", file=name)
            if held != entry["records"]:
                _fail(f"holds {held} records, the manifest says {entry['records']}", file=name)
            if name != HEADS_FILE and counts.get(Path(name).stem) != held:
                _fail(f"holds {held} records, the manifest counts {counts.get(Path(name).stem)}")
        if sum(counts.values()) != self.manifest["events"]:
            _fail(
                f"the counts add up to {sum(counts.values())}, events says {self.manifest['events']}"
            )
        if set(counts) != {Path(n).stem for n in self.manifest["files"] if n != HEADS_FILE}:
            _fail("the counts name other event types than the files")

    def _check_hashes(self) -> None:
        for name, entry in sorted(self.manifest["files"].items()):
            if (digest := sha256_of(self.folder / name)) != entry["sha256"]:
                _fail(f"its SHA-256 is {digest}, the manifest says {entry['sha256']}", file=name)

    def _walk(self) -> tuple[int, bytes]:
        """Check every head and the events of its batch; answer the tree of heads' size and root."""
        previous = self.manifest["previous_head"]
        batch, previous_hash = previous["batch"], bytes.fromhex(previous["head_hash"])
        frontier = [bytes.fromhex(node) for node in previous["tree_frontier"]]
        records = _Peek(self._records())
        with (self.folder / HEADS_FILE).open("rb") as file:
            for index, fields in enumerate(_container(file)):
                where = {"file": HEADS_FILE, "record": index}
                head = _head(fields)
                if head.batch != batch + 1:
                    _fail(f"batch {head.batch} follows batch {batch}", **where)
                if head.previous_hash != previous_hash:
                    _fail(
                        f"its link is {head.previous_hash.hex()}, the previous head hashes to {previous_hash.hex()}",
                        **where,
                    )
                if head.hash() != fields["head_hash"]:
                    _fail(
                        f"its fields hash to {head.hash().hex()}, its head_hash is {fields['head_hash'].hex()}",
                        **where,
                    )
                frontier = merkle.append(frontier, head.batch - 1, head.hash())
                if merkle.frontier_root(frontier) != fields["tree_root"]:
                    _fail("its tree_root is not the root of the tree of heads up to it", **where)
                self._batch_events(head, fields["omitted"], records, where)
                batch, previous_hash = head.batch, head.hash()
        if (extra := records.peek()) is not None:
            _fail("this event lies after the last batch head", file=extra.file, record=extra.index)
        self._check_ends(batch, previous_hash, frontier)
        return batch, merkle.frontier_root(frontier)

    def _check_ends(self, batch: int, head_hash: bytes, frontier: list[bytes]) -> None:
        m, last = self.manifest, self.manifest["last_head"]
        if batch != m["last_batch"] or batch != last["batch"]:
            _fail(f"the heads end at batch {batch}, the manifest says {m['last_batch']}")
        if head_hash.hex() != last["head_hash"]:
            _fail(f"the last head hashes to {head_hash.hex()}, last_head says {last['head_hash']}")
        if merkle.frontier_root(frontier).hex() != last["tree_root"]:
            _fail("last_head's tree_root is not the heads' root")

    def _batch_events(
        self, head: BatchHead, omitted: list[dict[str, Any]], records: _Peek, where: dict[str, Any]
    ) -> None:
        left_out = {entry["position"]: entry["leaf"] for entry in omitted}
        leaves = []
        for position in range(head.first_position, head.last_position + 1):
            record = records.peek()
            if record is not None and record.position < position:
                _fail(
                    f"position {record.position} lies in no batch",
                    file=record.file,
                    record=record.index,
                )
            if record is not None and record.position == position:
                records.take()
                if position in left_out:
                    _fail(
                        "exported and also listed as left out", batch=head.batch, position=position
                    )
                leaf = self._event_leaf(head, record)
                self.exported = merkle.append(self.exported, self.exported_count, leaf)
                self.exported_count += 1
            elif position in left_out:
                leaf = left_out.pop(position)
            else:
                _fail(
                    f"the batch holds positions {head.first_position}..{head.last_position}; "
                    "this one is neither exported nor left out: a record was dropped or moved",
                    batch=head.batch,
                    position=position,
                )
            leaves.append(leaf)
        if left_out:
            _fail(f"left-out positions {sorted(left_out)} are not in the batch", **where)
        if merkle.root(leaves) != head.events_root:
            _fail(
                f"the events of batch {head.batch} (positions {head.first_position}.."
                f"{head.last_position}) hash to {merkle.root(leaves).hex()}, its head says "
                f"{head.events_root.hex()}",
                **where,
            )

    def _event_leaf(self, head: BatchHead, record: _Record) -> bytes:
        """The record's leaf, once its batch, time, type and wire record are checked."""
        fields = record.fields
        where = {"file": record.file, "record": record.index, "position": record.position}
        if fields["batch"] != head.batch or fields["recorded_at"] != head.recorded_at:
            _fail(
                f"it names batch {fields['batch']} at {fields['recorded_at']}, its batch is {head.batch}",
                **where,
            )
        originator_id = UUID(str(fields["originator_id"]))
        event = self.mapper.to_domain_event(
            stored_event(
                fields["topic"], originator_id, fields["originator_version"], fields["state"]
            )
        )
        schema_name, derived = typed_record(event)
        if f"{type_name(schema_name)}.avro" != record.file:
            _fail(f"its stored event is a {type_name(schema_name)}", **where)
        schema = self.record_schemas[record.file]
        if _encoded(schema, derived) != _encoded(schema, fields["record"]):
            _fail("its record differs from the one its stored state gives", **where)
        return event_leaf(
            fields["topic"], originator_id, fields["originator_version"], fields["state"]
        )

    def _records(self) -> Iterator[_Record]:
        streams = [self._file_records(n) for n in sorted(self.manifest["files"]) if n != HEADS_FILE]
        return heapq.merge(*streams, key=lambda record: record.position)

    def _file_records(self, name: str) -> Iterator[_Record]:
        with (self.folder / name).open("rb") as file:
            avro = _container(file)
            record_field = next(f for f in avro.writer_schema["fields"] if f["name"] == "record")
            self.record_schemas[name] = parse_schema(record_field["type"])
            last = 0
            for index, fields in enumerate(avro):
                if fields["position"] <= last:
                    _fail(
                        f"position {fields['position']} after {last}: out of order",
                        file=name,
                        record=index,
                    )
                last = fields["position"]
                yield _Record(last, name, index, fields)


def _container(file: IO[bytes]) -> Any:
    """A fastavro reader of a container file; its records are plain dicts."""
    return reader(file)


def _encoded(schema: Any, record: dict[str, Any]) -> bytes:
    out = io.BytesIO()
    schemaless_writer(out, schema, record)
    return out.getvalue()


def _head(fields: dict[str, Any]) -> BatchHead:
    return BatchHead(
        batch=fields["batch"],
        previous_hash=fields["previous_hash"],
        last_position=fields["last_position"],
        event_count=fields["event_count"],
        events_total=fields["events_total"],
        events_root=fields["events_root"],
        recorded_at=fields["recorded_at"],
        sources=tuple((s["name"], s["offset"]) for s in fields["sources"]),
    )


def _check_anchor(checkpoint: Checkpoint, size: int, root: bytes, last: dict[str, Any]) -> None:
    if checkpoint.tree_size != size:
        _fail(
            f"the checkpoint is at {checkpoint.tree_size} batches, the export ends at {size}: "
            "export with --checkpoint to end at it"
        )
    if checkpoint.root != root:
        _fail(f"the heads give root {root.hex()}, the checkpoint signs {checkpoint.root.hex()}")
    if checkpoint.head_hash.hex() != last["head_hash"]:
        _fail("the checkpoint's head is not the export's last head")


class _Peek:
    """An iterator of records that can look one ahead."""

    def __init__(self, records: Iterator[_Record]) -> None:
        self._records = records
        self._next: _Record | None = next(records, None)

    def peek(self) -> _Record | None:
        return self._next

    def take(self) -> _Record | None:
        taken, self._next = self._next, next(self._records, None)
        return taken
