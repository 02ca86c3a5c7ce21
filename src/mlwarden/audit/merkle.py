"""RFC 6962 Merkle hash trees: tree hashes, inclusion and consistency proofs, and their verification.

Everything here is pure: no I/O, no clock. Two ways to compute the same values are provided:

* over a list of leaf hashes (``root``, ``inclusion_proof``, ``consistency_proof``), handy for tests and
  small trees;
* over stored *perfect nodes* (``append_nodes``, ``range_hash_from_nodes``, ``root_from_nodes``), which
  is how the audit log works: appending a leaf stores the O(log n) nodes it completes, and any tree
  head or proof is then assembled from O(log n) node reads.

Node ``(level, index)`` is the hash of the perfect subtree over leaves ``[index << level, (index + 1)
<< level)``; level 0 holds the leaf hashes themselves.

Leaves are always passed *hashed*: ``leaf_hash(data)``. Proof generation follows the RFC 6962 section
2.1 definitions (https://www.rfc-editor.org/rfc/rfc6962#section-2.1); verification follows the
algorithms of RFC 9162 sections 2.1.3.2 and 2.1.4.2 (https://www.rfc-editor.org/rfc/rfc9162), which
check the proof length exactly, so a truncated or extended proof fails.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "GetNode",
    "RangeHash",
    "append_nodes",
    "consistency_proof",
    "consistency_proof_from",
    "inclusion_proof",
    "inclusion_proof_from",
    "largest_power_of_two_below",
    "leaf_hash",
    "node_hash",
    "perfect_nodes",
    "range_hash_from_nodes",
    "root",
    "root_from_nodes",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
"""Size in bytes of every hash in the tree (SHA-256)."""

# RFC 6962 section 2.1: MTH({}) = SHA-256(), the hash of the empty string.
EMPTY_ROOT = hashlib.sha256(b"").digest()

# RFC 6962 section 2.1: domain separation between leaves (0x00) and interior nodes (0x01), so that a
# leaf can never be passed off as a node (second-preimage resistance).
_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"

RangeHash = Callable[[int, int], bytes]
"""``range_hash(lo, hi)``: the Merkle tree hash of the subtree over leaves ``[lo, hi)``."""

GetNode = Callable[[int, int], bytes]
"""``get_node(level, index)``: the stored perfect node over leaves ``[index << level, (index + 1) << level)``.
"""


def leaf_hash(data: bytes) -> bytes:
    """Return the RFC 6962 leaf hash ``SHA-256(0x00 || data)``."""
    return hashlib.sha256(_LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Return the RFC 6962 interior node hash ``SHA-256(0x01 || left || right)``."""
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


def largest_power_of_two_below(n: int) -> int:
    """Return the largest power of two strictly less than ``n`` (the RFC 6962 split point ``k``).

    Raises ``ValueError`` when ``n < 2``: a tree of fewer than two leaves is not split.
    """
    if n < 2:
        raise ValueError(f"no power of two below {n} splits a tree; need n >= 2")
    return 1 << ((n - 1).bit_length() - 1)


def _largest_power_of_two_at_most(n: int) -> int:
    return 1 << (n.bit_length() - 1)


def root(leaf_hashes: Sequence[bytes]) -> bytes:
    """Return the Merkle Tree Hash MTH(D[n]) over already-hashed leaves (RFC 6962 section 2.1).

    Computed bottom-up in O(n) without recursion: pair neighbours level by level and carry an unpaired
    rightmost node up unchanged. That yields exactly the RFC's left-perfect split at the largest power
    of two below n.
    """
    if not leaf_hashes:
        return EMPTY_ROOT
    level = list(leaf_hashes)
    while len(level) > 1:
        paired = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])
        level = paired
    return level[0]


def _list_range_hash(leaf_hashes: Sequence[bytes]) -> RangeHash:
    # Every range the proof recursion asks for is disjoint from the others at its depth, so the total
    # work over one proof stays O(n).
    return lambda lo, hi: root(leaf_hashes[lo:hi])


def inclusion_proof_from(index: int, size: int, range_hash: RangeHash) -> list[bytes]:
    """Return the audit path PATH(index, D[size]) of RFC 6962 section 2.1.1, leaf to root.

    ``range_hash(lo, hi)`` supplies subtree hashes, e.g. from ``range_hash_from_nodes``.
    Raises ``ValueError`` unless ``0 <= index < size``.
    """
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is outside a tree of size {size}")
    # Walk the RFC recursion top-down, remembering the sibling subtree at each split; the RFC lists
    # them bottom-up, so the walk's order is reversed at the end.
    lo, hi = 0, size
    siblings: list[bytes] = []
    while hi - lo > 1:
        k = largest_power_of_two_below(hi - lo)
        if index < lo + k:
            siblings.append(range_hash(lo + k, hi))
            hi = lo + k
        else:
            siblings.append(range_hash(lo, lo + k))
            lo += k
    siblings.reverse()
    return siblings


def consistency_proof_from(size1: int, size2: int, range_hash: RangeHash) -> list[bytes]:
    """Return the consistency proof PROOF(size1, D[size2]) of RFC 6962 section 2.1.2.

    ``size1 == size2`` gives the empty proof. Raises ``ValueError`` unless ``0 < size1 <= size2``: the
    RFC defines no proof from the empty tree.
    """
    if not 0 < size1 <= size2:
        raise ValueError(f"no consistency proof from size {size1} to size {size2}; need 0 < size1 <= size2")
    # Iterative SUBPROOF(m, D[lo:hi], b): m is size1 relative to lo; b stays true while the old tree is
    # a left-aligned prefix of the current subtree (its hash is then known to the verifier already).
    lo, hi, m, starts_at_left = 0, size2, size1, True
    siblings: list[bytes] = []
    while m != hi - lo:
        k = largest_power_of_two_below(hi - lo)
        if m <= k:
            siblings.append(range_hash(lo + k, hi))
            hi = lo + k
        else:
            siblings.append(range_hash(lo, lo + k))
            lo, m, starts_at_left = lo + k, m - k, False
    siblings.reverse()
    # SUBPROOF(m, D[m], false) = {MTH(D[m])}; with b = true the verifier has that hash already.
    return siblings if starts_at_left else [range_hash(lo, hi), *siblings]


def inclusion_proof(index: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """Return the RFC 6962 audit path for leaf ``index`` in the tree over ``leaf_hashes``."""
    return inclusion_proof_from(index, len(leaf_hashes), _list_range_hash(leaf_hashes))


def consistency_proof(size1: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """Return the RFC 6962 consistency proof from the first ``size1`` leaves to all of ``leaf_hashes``."""
    return consistency_proof_from(size1, len(leaf_hashes), _list_range_hash(leaf_hashes))


def append_nodes(leaf_index: int, leaf: bytes, get_node: GetNode) -> list[tuple[int, int, bytes]]:
    """Return the perfect nodes ``(level, index, hash)`` completed by appending leaf ``leaf_index``.

    The tree had ``leaf_index`` leaves before. The new leaf hash is node ``(0, leaf_index)``; while the
    node's index is odd it is a right child whose left sibling is complete already, so the parent is
    complete too. That reads at most log2(n) stored nodes via ``get_node`` and recomputes nothing else.
    """
    if leaf_index < 0:
        raise ValueError(f"leaf index must not be negative, got {leaf_index}")
    level, index, current = 0, leaf_index, leaf
    completed = [(level, index, current)]
    while index % 2 == 1:
        current = node_hash(get_node(level, index - 1), current)
        level, index = level + 1, index // 2
        completed.append((level, index, current))
    return completed


def _perfect_cover(lo: int, hi: int) -> Iterator[tuple[int, int]]:
    # The RFC's subtree over [lo, hi) is a perfect left part of the largest power of two that fits
    # followed by the subtree over the rest; peel those perfect parts off left to right.
    while lo < hi:
        width = _largest_power_of_two_at_most(hi - lo)
        level = width.bit_length() - 1
        yield level, lo >> level
        lo += width


def compact_range(size: int) -> list[tuple[int, int]]:
    """The perfect nodes ``(level, index)`` whose concatenation is the tree of ``size`` leaves.

    There is one per set bit of ``size``. They are all an append ever reads (the left siblings it
    combines with) and all a root needs, so a writer can fetch them in one query.
    """
    return list(_perfect_cover(0, size))


def range_hash_from_nodes(get_node: GetNode) -> RangeHash:
    """Return a ``RangeHash`` that reads only stored perfect nodes, O(log n) reads per range.

    A range ``[lo, hi)`` is accepted when ``lo`` is a multiple of the largest power of two not above
    ``hi - lo``: every range the RFC 6962 recursion produces is aligned so (the left part of each split
    is a perfect subtree). Any other range raises ``ValueError``.
    """

    def range_hash(lo: int, hi: int) -> bytes:
        if not 0 <= lo < hi or lo % _largest_power_of_two_at_most(hi - lo):
            raise ValueError(f"range [{lo}, {hi}) is not a subtree of an RFC 6962 tree")
        parts = [get_node(level, index) for level, index in _perfect_cover(lo, hi)]
        # The subtree is right-leaning: fold the perfect parts together from the right.
        acc = parts.pop()
        while parts:
            acc = node_hash(parts.pop(), acc)
        return acc

    return range_hash


def root_from_nodes(size: int, get_node: GetNode) -> bytes:
    """Return the tree hash at ``size`` from stored perfect nodes (at most log2(size) + 1 reads)."""
    if size < 0:
        raise ValueError(f"tree size must not be negative, got {size}")
    if size == 0:
        return EMPTY_ROOT
    return range_hash_from_nodes(get_node)(0, size)


def perfect_nodes(leaf_hashes: Sequence[bytes]) -> Iterator[tuple[int, int, bytes]]:
    """Yield every perfect node ``(level, index, hash)`` of the tree, level by level, in O(n) total.

    These are exactly the nodes ``append_nodes`` stores over the life of the tree, so a verifier can
    rebuild them from the leaves and compare.
    """
    level_hashes = list(leaf_hashes)
    level = 0
    while level_hashes:
        for index, value in enumerate(level_hashes):
            yield level, index, value
        # An unpaired rightmost node has no complete parent yet.
        level_hashes = [node_hash(level_hashes[i], level_hashes[i + 1]) for i in range(0, len(level_hashes) - 1, 2)]
        level += 1


def _is_hash(value: object) -> bool:
    return isinstance(value, bytes) and len(value) == HASH_SIZE


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _shift_while_even(fn: int, sn: int) -> tuple[int, int]:
    # Right-shift both until the LSB of fn is set or fn is 0 (RFC 9162 2.1.3.2 step 4.b.ii and
    # 2.1.4.2 step 6.b.ii).
    while fn and not fn & 1:
        fn, sn = fn >> 1, sn >> 1
    return fn, sn


def verify_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> bool:
    """Return whether ``proof`` shows leaf hash ``leaf`` at ``index`` in the tree of ``size`` with ``root``.

    ``leaf`` is the leaf *hash* (``leaf_hash(data)``), as everywhere in this module. Implements RFC 9162
    section 2.1.3.2. Never raises: malformed input (negative or out-of-range index, hashes that are not
    32 bytes, a proof of the wrong length) simply does not verify.
    """
    if not (_is_count(index) and _is_count(size) and _is_hash(leaf) and _is_hash(root)):
        return False
    if index >= size or not all(_is_hash(p) for p in proof):  # step 1
        return False
    fn, sn, r = index, size - 1, leaf  # steps 2-3
    for p in proof:  # step 4
        if sn == 0:  # 4.a: the proof is longer than the path
            return False
        if fn & 1 or fn == sn:  # 4.b
            r = node_hash(p, r)
            fn, sn = _shift_while_even(fn, sn)
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1  # 4.c
    return sn == 0 and r == root  # step 5: sn != 0 means the proof was too short


def verify_consistency(size1: int, size2: int, root1: bytes, root2: bytes, proof: Sequence[bytes]) -> bool:
    """Return whether ``proof`` shows the tree ``(size2, root2)`` extends the tree ``(size1, root1)``.

    Implements RFC 9162 section 2.1.4.2, plus the cases that section leaves to the caller:
    ``size1 == size2`` verifies only with an empty proof and equal roots, ``size2 < size1`` never
    verifies, and ``size1 == 0`` is rejected: any tree trivially extends the empty one, so a "proof"
    from size 0 proves nothing and the audit log never asks for one. Never raises.
    """
    if not (_is_count(size1) and _is_count(size2) and _is_hash(root1) and _is_hash(root2)):
        return False
    if size1 == 0 or size2 < size1 or not all(_is_hash(p) for p in proof):
        return False
    if size1 == size2:
        return not proof and root1 == root2
    if not proof:  # step 1
        return False
    path = list(proof)
    if size1 & (size1 - 1) == 0:  # step 2: the old tree is a perfect subtree; its root starts the path
        path.insert(0, root1)
    fn, sn = size1 - 1, size2 - 1  # step 3
    while fn & 1:  # step 4
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]  # step 5
    for c in path[1:]:  # step 6
        if sn == 0:  # 6.a: the proof is longer than needed
            return False
        if fn & 1 or fn == sn:  # 6.b
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            fn, sn = _shift_while_even(fn, sn)
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1  # 6.c
    return fr == root1 and sr == root2 and sn == 0  # step 7
