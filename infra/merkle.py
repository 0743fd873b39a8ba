"""Merkle trees as Certificate Transparency defines them (RFC 6962, RFC 9162 section 2.1).

A leaf is SHA-256(0x00 || data), an inner node SHA-256(0x01 || left || right), and the tree
of n leaves splits at the largest power of two below n. Anyone can check a root, an
inclusion proof or a consistency proof made here with any RFC 6962 implementation.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()  # the root of the tree of no leaves
_LEAF = b"\x00"
_NODE = b"\x01"


def leaf_hash(data: bytes) -> bytes:
    """The hash of a leaf holding `data`."""
    return hashlib.sha256(_LEAF + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """The hash of the inner node whose children hash to `left` and `right`."""
    return hashlib.sha256(_NODE + left + right).digest()


def append(frontier: Sequence[bytes], size: int, leaf: bytes) -> list[bytes]:
    """The frontier of a tree of `size` leaves once `leaf` (a leaf hash) is added.

    The frontier is the roots of the perfect subtrees along the tree's right edge, largest
    first: one per bit set in the size. It is all that appending needs, O(log n) hashes.
    """
    grown = list(frontier)
    node = leaf
    remaining = size
    while remaining & 1:
        node = node_hash(grown.pop(), node)
        remaining >>= 1
    grown.append(node)
    return grown


def frontier_root(frontier: Sequence[bytes]) -> bytes:
    """The root of the tree whose frontier is `frontier` (RFC 6962's MTH)."""
    if not frontier:
        return EMPTY_ROOT
    node = frontier[-1]
    for left in reversed(frontier[:-1]):
        node = node_hash(left, node)
    return node


def root(leaves: Sequence[bytes]) -> bytes:
    """The root of the tree over `leaves` (leaf hashes, in order).

    Built level by level, an unpaired last node moving up unchanged: the same tree as
    RFC 6962's split at the largest power of two, in one pass per level.
    """
    if not leaves:
        return EMPTY_ROOT
    level = list(leaves)
    while len(level) > 1:
        paired = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]


def inclusion_path(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """The audit path of leaf `index` in the tree over `leaves` (RFC 6962 2.1.1), bottom up."""
    if not 0 <= index < len(leaves):
        raise ValueError(f"leaf {index} is not in a tree of {len(leaves)} leaves")
    if len(leaves) == 1:
        return []
    split = _split(len(leaves))
    if index < split:
        return [*inclusion_path(leaves[:split], index), root(leaves[split:])]
    return [*inclusion_path(leaves[split:], index - split), root(leaves[:split])]


def consistency_path(leaves: Sequence[bytes], old_size: int) -> list[bytes]:
    """The proof that the tree of the first `old_size` leaves is a prefix of the tree over
    `leaves` (RFC 6962 2.1.2); empty when the sizes are equal or the old tree is empty."""
    if not 0 <= old_size <= len(leaves):
        raise ValueError(f"a tree of {len(leaves)} leaves has no prefix of {old_size}")
    if old_size in (0, len(leaves)):
        return []
    return _subproof(leaves, old_size, complete=True)


def _subproof(leaves: Sequence[bytes], old_size: int, *, complete: bool) -> list[bytes]:
    if old_size == len(leaves):
        return [] if complete else [root(leaves)]
    split = _split(len(leaves))
    if old_size <= split:
        return [*_subproof(leaves[:split], old_size, complete=complete), root(leaves[split:])]
    return [*_subproof(leaves[split:], old_size - split, complete=False), root(leaves[:split])]


def _split(size: int) -> int:
    """The largest power of two smaller than `size` (size > 1)."""
    return 1 << ((size - 1).bit_length() - 1)


def verify_inclusion(
    leaf: bytes, index: int, size: int, path: Sequence[bytes], expected_root: bytes
) -> bool:
    """Whether `path` proves leaf hash `leaf` at `index` of the tree of `size` leaves whose
    root is `expected_root` (RFC 9162 2.1.3.2)."""
    if not 0 <= index < size:
        return False
    fn, sn = index, size - 1
    node = leaf
    for sibling in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            node = node_hash(sibling, node)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            node = node_hash(node, sibling)
        fn, sn = fn >> 1, sn >> 1
    return sn == 0 and node == expected_root


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, path: Sequence[bytes]
) -> bool:
    """Whether `path` proves the tree of `old_size` leaves (root `old_root`) is a prefix of
    the tree of `new_size` leaves (root `new_root`) (RFC 9162 2.1.4.2)."""
    if not 0 <= old_size <= new_size:
        return False
    if old_size == new_size:
        return not path and old_root == new_root
    if old_size == 0:
        return not path and old_root == EMPTY_ROOT
    if not path:
        return False
    nodes = [old_root, *path] if old_size & (old_size - 1) == 0 else list(path)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    first = second = nodes[0]
    for node in nodes[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            first, second = node_hash(node, first), node_hash(node, second)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            second = node_hash(second, node)
        fn, sn = fn >> 1, sn >> 1
    return first == old_root and second == new_root and sn == 0
