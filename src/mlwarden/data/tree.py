"""The RFC 6962 Merkle tree over a version's row digests, computed a level at a time.

A version's digest commits to every row digest through the tree's root. The tree is kept as its
*compact range* (the roots of the perfect subtrees that make up a tree of ``size`` leaves, one per set
bit of ``size``), so appending k rows to a version costs O(k + log n) hashes, not a pass over the
dataset. Each level is hashed as one batch (``sha.sha256_rows``); ``tests/data/test_tree.py`` checks
roots against ``mlwarden.audit.merkle``, the leaf-at-a-time reference implementation.

The leaves are the row digests themselves: a row digest is already SHA-256(0x00 || row encoding), the
RFC 6962 leaf hash (docs/digests.md).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # numpy and the hash engine load only when a tree grows, not to read one's state
    from mlwarden.data.sha import Digests

DIGEST_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()
_NODE_PREFIX = 1


@dataclass(frozen=True)
class TreeState:
    """A tree of ``size`` leaves, as its compact range: ``nodes[level]`` for each set bit of ``size``."""

    size: int = 0
    nodes: tuple[tuple[int, bytes], ...] = ()  # (level, hash), highest level first

    def root(self) -> bytes:
        if not self.nodes:
            return EMPTY_ROOT
        *bigger, (_level, result) = self.nodes
        for _level, node in reversed(bigger):
            result = _node_hash(node, result)
        return result

    def extend(self, leaves: Digests) -> TreeState:
        """The tree after appending ``leaves`` (an (k, 32) array of leaf hashes)."""
        import numpy as np

        if len(leaves) == 0:
            return self
        pending = dict(self.nodes)
        carry = np.ascontiguousarray(leaves, dtype=np.uint8)
        new_nodes: list[tuple[int, bytes]] = []
        level = 0
        while len(carry) or level < self.size.bit_length():
            if level in pending:
                carry = np.concatenate([np.frombuffer(pending[level], dtype=np.uint8)[None, :], carry])
            if len(carry) % 2:
                new_nodes.append((level, carry[-1].tobytes()))
                carry = carry[:-1]
            carry = _hash_pairs(carry)
            level += 1
        state = TreeState(self.size + len(leaves), tuple(sorted(new_nodes, reverse=True)))
        _check_shape(state)
        return state

    def to_json(self) -> list[list[int | str]]:
        return [[level, node.hex()] for level, node in self.nodes]

    @classmethod
    def from_json(cls, size: int, items: list[list[int | str]]) -> TreeState:
        state = cls(size, tuple((int(level), bytes.fromhex(str(node))) for level, node in items))
        _check_shape(state)
        return state


def _check_shape(state: TreeState) -> None:
    levels = [level for level, _ in state.nodes]
    expected = [bit for bit in reversed(range(state.size.bit_length())) if state.size >> bit & 1]
    if levels != expected or any(len(node) != DIGEST_SIZE for _, node in state.nodes):
        raise ValueError(f"not the compact range of a tree of {state.size} leaves")


def _node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _hash_pairs(nodes: Digests) -> Digests:
    """Interior nodes over consecutive pairs: H(0x01 || nodes[2i] || nodes[2i+1])."""
    import numpy as np

    from mlwarden.data.sha import sha256_rows

    count = len(nodes) // 2
    if count == 0:
        return np.empty((0, DIGEST_SIZE), dtype=np.uint8)
    messages = np.empty((count, 1 + 2 * DIGEST_SIZE), dtype=np.uint8)
    messages[:, 0] = _NODE_PREFIX
    messages[:, 1:] = nodes.reshape(count, 2 * DIGEST_SIZE)
    return sha256_rows(messages)


def tree_of(leaves: Digests) -> TreeState:
    return TreeState().extend(leaves)
