"""Proofs an auditor checks without the database: one event in a checkpoint, one checkpoint in a later one.

An inclusion proof carries the event's stored columns, its batch head, the RFC 6962 path of
the event in its batch's tree and the path of the head in the tree of heads, plus the
signed checkpoint. A consistency proof carries two signed checkpoints and the RFC 6962
consistency path between their trees. Both are JSON; `check` needs only the public key.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from audit.basics import CheckpointError, ProofError
from audit.checkpoint import Checkpoint, open_note
from infra import merkle
from infra.batch_heads import BatchHead, event_leaf
from ledger.application import event_id

INCLUSION = "billing-ledger inclusion proof v1"
CONSISTENCY = "billing-ledger consistency proof v1"


@dataclass(frozen=True)
class EventProof:
    """An event's inclusion in the history a checkpoint signs."""

    note: str
    position: int
    topic: str
    originator_id: UUID
    originator_version: int
    state: bytes
    head: BatchHead
    event_path: list[bytes]
    head_path: list[bytes]

    def to_json(self) -> dict[str, Any]:
        """The proof as JSON values (bytes in hex, the state in base64)."""
        return {
            "kind": INCLUSION,
            "checkpoint": self.note,
            "event": {
                "event_id": event_id(self.originator_id, self.originator_version),
                "position": self.position,
                "topic": self.topic,
                "originator_id": str(self.originator_id),
                "originator_version": self.originator_version,
                "state_base64": base64.b64encode(self.state).decode(),
            },
            "batch_head": head_to_json(self.head),
            "event_path": [node.hex() for node in self.event_path],
            "head_path": [node.hex() for node in self.head_path],
        }


def head_to_json(head: BatchHead) -> dict[str, Any]:
    """A batch head's hashed fields as JSON values."""
    return {
        "batch": head.batch,
        "previous_hash": head.previous_hash.hex(),
        "last_position": head.last_position,
        "event_count": head.event_count,
        "events_total": head.events_total,
        "events_root": head.events_root.hex(),
        "recorded_at": head.recorded_at.isoformat(),
        "sources": [[name, offset] for name, offset in head.sources],
    }


def head_from_json(data: dict[str, Any]) -> BatchHead:
    """The batch head of `head_to_json`."""
    return BatchHead(
        batch=int(data["batch"]),
        previous_hash=bytes.fromhex(data["previous_hash"]),
        last_position=int(data["last_position"]),
        event_count=int(data["event_count"]),
        events_total=int(data["events_total"]),
        events_root=bytes.fromhex(data["events_root"]),
        recorded_at=datetime.fromisoformat(data["recorded_at"]),
        sources=tuple((str(name), int(offset)) for name, offset in data["sources"]),
    )


def consistency_json(old_note: str, new_note: str, path: list[bytes]) -> dict[str, Any]:
    """A consistency proof between two signed checkpoints as JSON values."""
    return {
        "kind": CONSISTENCY,
        "old_checkpoint": old_note,
        "new_checkpoint": new_note,
        "path": [node.hex() for node in path],
    }


def check(proof_text: str, public_key: Ed25519PublicKey) -> str:
    """Check a proof of either kind; answer what it proves, or raise ProofError saying what fails."""
    try:
        proof = json.loads(proof_text)
        kind = proof.get("kind")
        if kind == INCLUSION:
            return _check_inclusion(proof, public_key)
        if kind == CONSISTENCY:
            return _check_consistency(proof, public_key)
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise ProofError(f"not a readable proof: {type(error).__name__}: {error}") from error
    except CheckpointError as error:
        raise ProofError(str(error)) from error
    raise ProofError(f"unknown kind of proof: {kind!r}")


def _check_inclusion(proof: dict[str, Any], public_key: Ed25519PublicKey) -> str:
    checkpoint = open_note(proof["checkpoint"], public_key)
    event, head = proof["event"], head_from_json(proof["batch_head"])
    originator_id, version = UUID(event["originator_id"]), int(event["originator_version"])
    if event["event_id"] != event_id(originator_id, version):
        raise ProofError(
            f"event id {event['event_id']} is not that of aggregate {originator_id} version {version}"
        )
    index = int(event["position"]) - head.first_position
    state = base64.b64decode(event["state_base64"], validate=True)
    leaf = event_leaf(event["topic"], originator_id, version, state)
    event_path = [bytes.fromhex(node) for node in proof["event_path"]]
    if not merkle.verify_inclusion(leaf, index, head.event_count, event_path, head.events_root):
        raise ProofError(
            f"the event does not hash into its batch's root ({head.events_root.hex()}) at position {event['position']}: the event or its path was changed"
        )
    head_path = [bytes.fromhex(node) for node in proof["head_path"]]
    if not merkle.verify_inclusion(
        head.hash(), head.batch - 1, checkpoint.tree_size, head_path, checkpoint.root
    ):
        raise ProofError(
            f"batch {head.batch}'s head does not hash into the checkpoint's root ({checkpoint.root.hex()}): the head or its path was changed"
        )
    return (
        f"OK: event {event['event_id']} ({event['topic']}, aggregate {originator_id} version "
        f"{version}) is at position {event['position']}, recorded at "
        f"{head.recorded_at.isoformat()} in batch {head.batch}, in {_checkpoint_line(checkpoint)}"
    )


def _check_consistency(proof: dict[str, Any], public_key: Ed25519PublicKey) -> str:
    old = open_note(proof["old_checkpoint"], public_key)
    new = open_note(proof["new_checkpoint"], public_key)
    path = [bytes.fromhex(node) for node in proof["path"]]
    if old.origin != new.origin:
        raise ProofError(f"the checkpoints are of two logs: {old.origin} and {new.origin}")
    if not merkle.verify_consistency(old.tree_size, new.tree_size, old.root, new.root, path):
        raise ProofError(
            f"the checkpoint of {new.tree_size} batches does not extend the one of {old.tree_size}: the history between them was rewritten, or the proof was changed"
        )
    return f"OK: {_checkpoint_line(new)} extends {_checkpoint_line(old)}"


def _checkpoint_line(checkpoint: Checkpoint) -> str:
    return (
        f"the checkpoint of {checkpoint.origin} at {checkpoint.tree_size} batches "
        f"({checkpoint.events_total} events, position {checkpoint.last_position}, root "
        f"{checkpoint.root.hex()})"
    )
