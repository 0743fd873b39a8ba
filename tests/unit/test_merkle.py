"""RFC 6962 Merkle trees: roots, inclusion and consistency proofs, and what breaks them."""

from __future__ import annotations

import hashlib

from hypothesis import given
from hypothesis import strategies as st

from infra import merkle


def reference_root(leaves: list[bytes]) -> bytes:
    """MTH as RFC 6962 section 2.1 writes it, recursively."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    split = 1
    while split * 2 < len(leaves):
        split *= 2
    return merkle.node_hash(reference_root(leaves[:split]), reference_root(leaves[split:]))


def leaves_of(count: int) -> list[bytes]:
    """`count` distinct leaf hashes."""
    return [merkle.leaf_hash(f"leaf {n}".encode()) for n in range(count)]


class TestRoots:
    """Roots agree with RFC 6962's definition."""

    def test_empty_tree_is_the_hash_of_nothing(self) -> None:
        """The tree of no leaves has the SHA-256 of the empty string as root."""
        assert merkle.root([]).hex().startswith("e3b0c442")

    def test_leaf_and_node_prefixes(self) -> None:
        """A leaf hashes 0x00 || data, a node 0x01 || left || right."""
        assert merkle.leaf_hash(b"a") == hashlib.sha256(b"\x00a").digest()
        assert merkle.node_hash(b"l", b"r") == hashlib.sha256(b"\x01lr").digest()

    @given(st.integers(min_value=0, max_value=70))
    def test_incremental_root_is_the_recursive_one(self, count: int) -> None:
        """Appending leaf by leaf to a frontier gives RFC 6962's MTH at every size."""
        leaves = leaves_of(count)
        assert merkle.root(leaves) == reference_root(leaves)


class TestInclusion:
    """An inclusion proof holds for its leaf and no other."""

    @given(st.integers(min_value=1, max_value=40), st.data())
    def test_every_leaf_is_proved(self, size: int, data: st.DataObject) -> None:
        """The path of any leaf leads to the root."""
        leaves = leaves_of(size)
        index = data.draw(st.integers(min_value=0, max_value=size - 1))
        path = merkle.inclusion_path(leaves, index)
        assert merkle.verify_inclusion(leaves[index], index, size, path, merkle.root(leaves))

    @given(st.integers(min_value=2, max_value=40), st.data())
    def test_another_leaf_or_index_fails(self, size: int, data: st.DataObject) -> None:
        """The path of one leaf proves neither an altered leaf nor another index."""
        leaves = leaves_of(size)
        index = data.draw(st.integers(min_value=0, max_value=size - 1))
        path = merkle.inclusion_path(leaves, index)
        tree_root = merkle.root(leaves)
        altered = merkle.leaf_hash(b"altered")
        assert not merkle.verify_inclusion(altered, index, size, path, tree_root)
        other = (index + 1) % size
        assert not merkle.verify_inclusion(leaves[index], other, size, path, tree_root)


class TestConsistency:
    """A consistency proof shows an older tree is a prefix of a newer one."""

    @given(st.integers(min_value=1, max_value=40), st.data())
    def test_every_prefix_is_proved(self, size: int, data: st.DataObject) -> None:
        """The proof from any older size verifies against both roots."""
        leaves = leaves_of(size)
        old = data.draw(st.integers(min_value=0, max_value=size))
        path = merkle.consistency_path(leaves, old)
        old_root, new_root = merkle.root(leaves[:old]), merkle.root(leaves)
        assert merkle.verify_consistency(old, size, old_root, new_root, path)

    @given(st.integers(min_value=2, max_value=40), st.data())
    def test_a_rewritten_history_fails(self, size: int, data: st.DataObject) -> None:
        """A newer tree whose older part was changed is not consistent with the old root."""
        leaves = leaves_of(size)
        old = data.draw(st.integers(min_value=1, max_value=size - 1))
        changed = data.draw(st.integers(min_value=0, max_value=old - 1))
        rewritten = list(leaves)
        rewritten[changed] = merkle.leaf_hash(b"rewritten")
        path = merkle.consistency_path(rewritten, old)
        old_root = merkle.root(leaves[:old])
        assert not merkle.verify_consistency(old, size, old_root, merkle.root(rewritten), path)
