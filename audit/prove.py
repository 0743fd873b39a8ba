"""`ledger audit prove`: make inclusion and consistency proofs from the store, against checkpoints."""

from __future__ import annotations

from uuid import UUID

from audit.basics import ProofError
from audit.checkpoint import read_unverified
from audit.proofs import EventProof
from audit.store import Snapshot
from infra import merkle
from infra.batch_heads import event_leaf
from ledger.application import event_id


def prove_event(snapshot: Snapshot, note: str, position: int) -> EventProof:
    """The proof that the event at `position` is in the history checkpoint `note` signs."""
    size = _matching_size(snapshot, note)
    row = snapshot.event_at_position(position)
    sealed = snapshot.head_holding(position)
    if row is None or sealed is None:
        raise ProofError(f"no stored event at position {position} in any batch")
    head = sealed.head
    if head.batch > size:
        raise ProofError(
            f"the event was recorded in batch {head.batch}, after the checkpoint's {size} batches: take a newer checkpoint"
        )
    leaves = [
        event_leaf(*r[1:]) for r in snapshot.events(head.first_position - 1, head.last_position)
    ]
    index = position - head.first_position
    if not 0 <= index < len(leaves):
        raise ProofError(f"position {position} is not among the batch's stored events")
    return EventProof(
        note=note,
        position=position,
        topic=row[1],
        originator_id=row[2],
        originator_version=row[3],
        state=row[4],
        head=head,
        event_path=merkle.inclusion_path(leaves, index),
        head_path=merkle.inclusion_path(snapshot.head_hashes(size), head.batch - 1),
    )


def prove_extension(snapshot: Snapshot, old_note: str, new_note: str) -> list[bytes]:
    """The RFC 6962 consistency path from checkpoint `old_note` to the later `new_note`."""
    old_size, new_size = read_unverified(old_note).tree_size, _matching_size(snapshot, new_note)
    if old_size > new_size:
        raise ProofError(
            f"the old checkpoint ({old_size} batches) is larger than the new one ({new_size})"
        )
    return merkle.consistency_path(snapshot.head_hashes(new_size), old_size)


def position_of(snapshot: Snapshot, wanted: str) -> int:
    """The position of the event whose id (the `event_id` header on billing.events) is `wanted`.

    Event ids are name-based UUIDs of aggregate id and version, so the store is searched.
    """
    try:
        UUID(wanted)
    except ValueError as error:
        raise ProofError(f"{wanted!r} is not an event id (a UUID)") from error
    for originator_id, version in snapshot.event_keys():
        if event_id(originator_id, version) == wanted:
            row = snapshot.event_at(originator_id, version)
            assert row is not None
            return row[0]
    raise ProofError(f"no stored event has the id {wanted}")


def _matching_size(snapshot: Snapshot, note: str) -> int:
    """The checkpoint's size, once the store's head at that size is found to state its root."""
    checkpoint = read_unverified(note)
    sealed = snapshot.head(checkpoint.tree_size)
    if sealed is None:
        raise ProofError(
            f"the store has no batch {checkpoint.tree_size}, which the checkpoint names"
        )
    if sealed.tree_root != checkpoint.root or sealed.head_hash != checkpoint.head_hash:
        raise ProofError(
            f"the store's tree at batch {checkpoint.tree_size} no longer has the checkpoint's root: run `ledger audit verify --from` on it"
        )
    return checkpoint.tree_size
