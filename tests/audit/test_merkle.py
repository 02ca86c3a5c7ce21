"""RFC 6962 Merkle tree: known answers, an independent naive model, the node-based API, and verifiers."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from mlwarden.audit import merkle

# --- RFC 6962 test vectors (the leaf inputs and roots used by certificate-transparency and trillian) ---

RFC_LEAVES = [
    bytes.fromhex(x)
    for x in [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
]
RFC_ROOTS = [
    bytes.fromhex(x)
    for x in [
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ]
]

H_96A2 = "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"
H_5F08 = "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"
H_6B47 = "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"
H_BC1A = "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"
H_CA85 = "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"
H_0EBC = "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"
H_D37E = RFC_ROOTS[4].hex()
H_FAC5 = RFC_ROOTS[2].hex()

# (index, size) -> audit path, and (size1, size2) -> consistency proof, over the RFC leaves.
KNOWN_INCLUSION = {
    (0, 8): [H_96A2, H_5F08, H_6B47],
    (5, 8): [H_BC1A, H_CA85, H_D37E],
    (2, 3): [H_FAC5],
    (0, 1): [],
}
KNOWN_CONSISTENCY = {
    (1, 8): [H_96A2, H_5F08, H_6B47],
    (6, 8): [H_0EBC, H_CA85, H_D37E],
    (2, 5): [H_5F08, H_BC1A],
    (8, 8): [],
}


# --- An independent model: a straight recursive transcription of RFC 6962 section 2.1 over raw data ---


def naive_k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def naive_mth(d: Sequence[bytes]) -> bytes:
    if len(d) == 0:
        return hashlib.sha256(b"").digest()
    if len(d) == 1:
        return hashlib.sha256(b"\x00" + d[0]).digest()
    k = naive_k(len(d))
    return hashlib.sha256(b"\x01" + naive_mth(d[:k]) + naive_mth(d[k:])).digest()


def naive_path(m: int, d: Sequence[bytes]) -> list[bytes]:
    if len(d) == 1:
        return []
    k = naive_k(len(d))
    if m < k:
        return naive_path(m, d[:k]) + [naive_mth(d[k:])]
    return naive_path(m - k, d[k:]) + [naive_mth(d[:k])]


def naive_subproof(m: int, d: Sequence[bytes], b: bool) -> list[bytes]:
    n = len(d)
    if m == n:
        return [] if b else [naive_mth(d)]
    k = naive_k(n)
    if m <= k:
        return naive_subproof(m, d[:k], b) + [naive_mth(d[k:])]
    return naive_subproof(m - k, d[k:], False) + [naive_mth(d[:k])]


def naive_proof(m: int, d: Sequence[bytes]) -> list[bytes]:
    return naive_subproof(m, d, True)


MAX_SIZE = 64
DATA = [f"event {i}".encode() for i in range(MAX_SIZE)]
LEAVES = [merkle.leaf_hash(x) for x in DATA]


def h(hexes: list[str]) -> list[bytes]:
    return [bytes.fromhex(x) for x in hexes]


# --- hashing and known answers ---


def test_hash_primitives() -> None:
    assert merkle.EMPTY_ROOT == hashlib.sha256(b"").digest() == RFC_ROOTS[0]
    assert merkle.leaf_hash(b"abc") == hashlib.sha256(b"\x00abc").digest()
    assert merkle.node_hash(b"L" * 32, b"R" * 32) == hashlib.sha256(b"\x01" + b"L" * 32 + b"R" * 32).digest()
    # Domain separation: a leaf over the concatenation of two hashes is not their node.
    assert merkle.leaf_hash(b"L" * 32 + b"R" * 32) != merkle.node_hash(b"L" * 32, b"R" * 32)


@pytest.mark.parametrize("size", range(len(RFC_ROOTS)))
def test_rfc6962_roots(size: int) -> None:
    leaves = [merkle.leaf_hash(x) for x in RFC_LEAVES[:size]]
    assert merkle.root(leaves) == RFC_ROOTS[size]
    assert naive_mth(RFC_LEAVES[:size]) == RFC_ROOTS[size]


@pytest.mark.parametrize(("index", "size"), sorted(KNOWN_INCLUSION))
def test_known_inclusion_proofs(index: int, size: int) -> None:
    leaves = [merkle.leaf_hash(x) for x in RFC_LEAVES[:size]]
    proof = merkle.inclusion_proof(index, leaves)
    assert proof == h(KNOWN_INCLUSION[index, size])
    assert merkle.verify_inclusion(leaves[index], index, size, proof, RFC_ROOTS[size])


@pytest.mark.parametrize(("size1", "size2"), sorted(KNOWN_CONSISTENCY))
def test_known_consistency_proofs(size1: int, size2: int) -> None:
    leaves = [merkle.leaf_hash(x) for x in RFC_LEAVES[:size2]]
    proof = merkle.consistency_proof(size1, leaves)
    assert proof == h(KNOWN_CONSISTENCY[size1, size2])
    assert merkle.verify_consistency(size1, size2, RFC_ROOTS[size1], RFC_ROOTS[size2], proof)


@pytest.mark.parametrize(("n", "expected"), [(2, 1), (3, 2), (4, 2), (5, 4), (8, 4), (9, 8), (2**40 + 1, 2**40)])
def test_largest_power_of_two_below(n: int, expected: int) -> None:
    assert merkle.largest_power_of_two_below(n) == expected


@pytest.mark.parametrize("n", [-1, 0, 1])
def test_largest_power_of_two_below_rejects_small(n: int) -> None:
    with pytest.raises(ValueError, match="n >= 2"):
        merkle.largest_power_of_two_below(n)


def test_root_is_iterative() -> None:
    # A deep recursion would be O(log n) deep anyway, but a big tree must not be slow or recursive.
    leaves = [merkle.leaf_hash(i.to_bytes(4, "big")) for i in range(5000)]
    assert merkle.root(leaves) == naive_mth([i.to_bytes(4, "big") for i in range(5000)])


# --- the list API against the naive model, exhaustively up to 64 leaves ---


@pytest.mark.parametrize("size", range(0, MAX_SIZE + 1))
def test_root_matches_model(size: int) -> None:
    assert merkle.root(LEAVES[:size]) == naive_mth(DATA[:size])


@pytest.mark.parametrize("size", range(1, MAX_SIZE + 1))
def test_inclusion_proofs_match_model_and_verify(size: int) -> None:
    leaves, root = LEAVES[:size], naive_mth(DATA[:size])
    for index in range(size):
        proof = merkle.inclusion_proof(index, leaves)
        assert proof == naive_path(index, DATA[:size]), index
        assert merkle.verify_inclusion(leaves[index], index, size, proof, root), index


@pytest.mark.parametrize("size2", range(1, MAX_SIZE + 1))
def test_consistency_proofs_match_model_and_verify(size2: int) -> None:
    leaves, root2 = LEAVES[:size2], naive_mth(DATA[:size2])
    for size1 in range(1, size2 + 1):
        proof = merkle.consistency_proof(size1, leaves)
        assert proof == naive_proof(size1, DATA[:size2]), size1
        assert merkle.verify_consistency(size1, size2, naive_mth(DATA[:size1]), root2, proof), size1


@pytest.mark.parametrize(("index", "size"), [(-1, 3), (3, 3), (0, 0), (7, 3)])
def test_inclusion_proof_rejects_bad_index(index: int, size: int) -> None:
    with pytest.raises(ValueError, match="outside a tree"):
        merkle.inclusion_proof(index, LEAVES[:size])


@pytest.mark.parametrize(("size1", "size2"), [(0, 3), (-1, 3), (4, 3), (0, 0)])
def test_consistency_proof_rejects_bad_sizes(size1: int, size2: int) -> None:
    with pytest.raises(ValueError, match="no consistency proof"):
        merkle.consistency_proof(size1, LEAVES[:size2])


# --- stored perfect nodes ---


class NodeStore:
    """A dict of perfect nodes that counts reads, like the audit log's node table."""

    def __init__(self) -> None:
        self.nodes: dict[tuple[int, int], bytes] = {}
        self.reads = 0

    def get(self, level: int, index: int) -> bytes:
        self.reads += 1
        return self.nodes[level, index]

    def append(self, leaf_index: int, leaf: bytes) -> list[tuple[int, int, bytes]]:
        completed = merkle.append_nodes(leaf_index, leaf, self.get)
        for level, index, value in completed:
            assert (level, index) not in self.nodes
            self.nodes[level, index] = value
        return completed


@pytest.fixture(scope="module")
def grown_stores() -> list[NodeStore]:
    """stores[n] holds exactly the nodes appended for a tree of n leaves (n = 0..MAX_SIZE)."""
    stores, store = [], NodeStore()
    stores.append(NodeStore())
    for i, leaf in enumerate(LEAVES):
        store.reads = 0
        completed = store.append(i, leaf)
        # Reads: one per completed parent, never more than log2 of the new size.
        assert store.reads == len(completed) - 1 <= (i + 1).bit_length() - 1
        snapshot = NodeStore()
        snapshot.nodes = dict(store.nodes)
        stores.append(snapshot)
    return stores


def test_append_nodes_completes_parents() -> None:
    store = NodeStore()
    assert store.append(0, LEAVES[0]) == [(0, 0, LEAVES[0])]
    assert store.append(1, LEAVES[1]) == [
        (0, 1, LEAVES[1]),
        (1, 0, merkle.node_hash(LEAVES[0], LEAVES[1])),
    ]
    assert store.append(2, LEAVES[2]) == [(0, 2, LEAVES[2])]
    completed = store.append(3, LEAVES[3])
    assert [(level, index) for level, index, _ in completed] == [(0, 3), (1, 1), (2, 0)]
    assert completed[-1][2] == merkle.root(LEAVES[:4])


def test_append_nodes_rejects_negative_index() -> None:
    with pytest.raises(ValueError, match="negative"):
        merkle.append_nodes(-1, LEAVES[0], NodeStore().get)


@pytest.mark.parametrize("size", range(0, MAX_SIZE + 1))
def test_perfect_nodes_equal_appended_nodes(size: int, grown_stores: list[NodeStore]) -> None:
    rebuilt = {(level, index): value for level, index, value in merkle.perfect_nodes(LEAVES[:size])}
    assert rebuilt == grown_stores[size].nodes


@pytest.mark.parametrize("size", range(0, MAX_SIZE + 1))
def test_root_from_nodes(size: int, grown_stores: list[NodeStore]) -> None:
    store = grown_stores[size]
    store.reads = 0
    assert merkle.root_from_nodes(size, store.get) == merkle.root(LEAVES[:size])
    assert store.reads == bin(size).count("1")  # one perfect node per set bit of the size


@pytest.mark.parametrize("size", range(1, MAX_SIZE + 1))
def test_proofs_from_nodes_equal_list_proofs(size: int, grown_stores: list[NodeStore]) -> None:
    range_hash = merkle.range_hash_from_nodes(grown_stores[size].get)
    leaves = LEAVES[:size]
    for index in range(size):
        assert merkle.inclusion_proof_from(index, size, range_hash) == merkle.inclusion_proof(index, leaves)
    for size1 in range(1, size + 1):
        expected = merkle.consistency_proof(size1, leaves)
        assert merkle.consistency_proof_from(size1, size, range_hash) == expected


def test_range_hash_from_nodes_matches_root_of_slices(grown_stores: list[NodeStore]) -> None:
    range_hash = merkle.range_hash_from_nodes(grown_stores[MAX_SIZE].get)
    checked = 0
    for lo in range(MAX_SIZE):
        for hi in range(lo + 1, MAX_SIZE + 1):
            width = 1 << ((hi - lo).bit_length() - 1)
            if lo % width == 0:
                assert range_hash(lo, hi) == merkle.root(LEAVES[lo:hi]), (lo, hi)
                checked += 1
    assert checked > MAX_SIZE


@pytest.mark.parametrize(("lo", "hi"), [(1, 3), (2, 7), (3, 7), (0, 0), (5, 5), (4, 2), (-1, 1), (6, 10)])
def test_range_hash_from_nodes_rejects_misaligned(lo: int, hi: int, grown_stores: list[NodeStore]) -> None:
    range_hash = merkle.range_hash_from_nodes(grown_stores[MAX_SIZE].get)
    with pytest.raises(ValueError, match="not a subtree"):
        range_hash(lo, hi)


def test_root_from_nodes_rejects_negative_size() -> None:
    with pytest.raises(ValueError, match="negative"):
        merkle.root_from_nodes(-1, NodeStore().get)


# --- verifier negative cases ---

Args = dict[str, Any]
Mutation = Callable[[Args], Args]


def flip(value: bytes, at: int = 0) -> bytes:
    return value[:at] + bytes([value[at] ^ 0x01]) + value[at + 1 :]


def with_proof_element(i: int) -> Mutation:
    return lambda a: {**a, "proof": [flip(p) if j == i else p for j, p in enumerate(a["proof"])]}


def _dummy_range(lo: int, hi: int) -> bytes:
    return b""


def path_length(index: int, size: int) -> int:
    return len(merkle.inclusion_proof_from(index, size, _dummy_range))


def proof_length(size1: int, size2: int) -> int:
    return len(merkle.consistency_proof_from(size1, size2, _dummy_range))


def other_length_size(length: Callable[[int], int], size: int, direction: int, lowest: int) -> int:
    """The nearest size (up or down from ``size``) at which the expected proof has another length.

    The RFC 9162 verifiers consume exactly as many proof elements as the sizes dictate, so such a size
    change is always rejected; a change that keeps the proof's shape may not be (see the binding tests).
    """
    candidate = size + direction
    while candidate >= lowest and length(candidate) == length(size):
        candidate += direction
    return candidate


def other_depth_size(index: int, size: int, direction: int) -> int:
    return other_length_size(lambda n: path_length(index, n), size, direction, index + 1)


def inclusion_case(index: int, size: int) -> Args:
    leaves = LEAVES[:size]
    return {
        "leaf": leaves[index],
        "index": index,
        "size": size,
        "proof": merkle.inclusion_proof(index, leaves),
        "root": merkle.root(leaves),
    }


INCLUSION_BASES = [(4, 7), (0, 8), (6, 7), (13, 17), (1, 2)]

INCLUSION_MUTATIONS: dict[str, Mutation] = {
    "modified-first-proof-element": with_proof_element(0),
    "modified-last-proof-element": lambda a: with_proof_element(len(a["proof"]) - 1)(a),
    "truncated-proof": lambda a: {**a, "proof": a["proof"][:-1]},
    "empty-proof": lambda a: {**a, "proof": []},
    "extended-proof": lambda a: {**a, "proof": [*a["proof"], LEAVES[0]]},
    "extended-proof-with-root": lambda a: {**a, "proof": [*a["proof"], a["root"]]},
    "prepended-proof": lambda a: {**a, "proof": [LEAVES[0], *a["proof"]]},
    "proof-of-neighbour-leaf": lambda a: {
        **a,
        "proof": merkle.inclusion_proof((a["index"] + 1) % a["size"], LEAVES[: a["size"]]),
    },
    "wrong-index-plus-one": lambda a: {**a, "index": a["index"] + 1},
    "wrong-index-minus-one": lambda a: {**a, "index": a["index"] - 1},
    "wrong-size-deeper": lambda a: {**a, "size": other_depth_size(a["index"], a["size"], +1)},
    "wrong-size-shallower": lambda a: {**a, "size": other_depth_size(a["index"], a["size"], -1)},
    "wrong-leaf": lambda a: {**a, "leaf": merkle.leaf_hash(b"not in the tree")},
    "leaf-data-instead-of-hash": lambda a: {**a, "leaf": flip(a["leaf"], 31)},
    "wrong-root": lambda a: {**a, "root": flip(a["root"])},
    "index-equals-size": lambda a: {**a, "index": a["size"]},
    "index-beyond-size": lambda a: {**a, "index": a["size"] + 5},
    "negative-index": lambda a: {**a, "index": -1},
    "negative-size": lambda a: {**a, "size": -a["size"]},
    "zero-size": lambda a: {**a, "index": 0, "size": 0},
    "short-leaf": lambda a: {**a, "leaf": a["leaf"][:31]},
    "short-root": lambda a: {**a, "root": a["root"][:31]},
    "long-proof-element": lambda a: {**a, "proof": [a["proof"][0] + b"\x00", *a["proof"][1:]]},
    "not-bytes": lambda a: {**a, "leaf": a["leaf"].hex()},
    "none-proof-element": lambda a: {**a, "proof": [None, *a["proof"][1:]]},
    "bool-index": lambda a: {**a, "index": True, "size": 2},
}


@pytest.mark.parametrize(("index", "size"), INCLUSION_BASES)
def test_inclusion_base_cases_verify(index: int, size: int) -> None:
    assert merkle.verify_inclusion(**inclusion_case(index, size))


@pytest.mark.parametrize("mutation", INCLUSION_MUTATIONS.values(), ids=INCLUSION_MUTATIONS.keys())
@pytest.mark.parametrize(("index", "size"), INCLUSION_BASES)
def test_verify_inclusion_rejects(index: int, size: int, mutation: Mutation) -> None:
    assert merkle.verify_inclusion(**mutation(inclusion_case(index, size))) is False


def test_verify_inclusion_size_binding_is_the_checkpoints_job() -> None:
    # Documented limit of RFC 9162 2.1.3.2: the path for leaf 4 of 7 is also a valid path shape for a
    # tree of 8 whose right subtree is leaf 6 alone, so the same root "verifies" at size 8. The size is
    # bound to the root by the signed checkpoint, never by the proof.
    args = inclusion_case(4, 7)
    assert merkle.verify_inclusion(**{**args, "size": 8})


@pytest.mark.parametrize("size", range(1, 17))
def test_verify_inclusion_rejects_every_bit_flip_and_length_change(size: int) -> None:
    for index in range(size):
        args = inclusion_case(index, size)
        proof = args["proof"]
        for i in range(len(proof)):
            for at in (0, 31):
                bad = [*proof[:i], flip(proof[i], at), *proof[i + 1 :]]
                assert not merkle.verify_inclusion(**{**args, "proof": bad})
            assert not merkle.verify_inclusion(**{**args, "proof": proof[:i]})
        for extra in (LEAVES[0], args["root"], args["leaf"]):
            assert not merkle.verify_inclusion(**{**args, "proof": [*proof, extra]})


def consistency_case(size1: int, size2: int) -> Args:
    return {
        "size1": size1,
        "size2": size2,
        "root1": merkle.root(LEAVES[:size1]),
        "root2": merkle.root(LEAVES[:size2]),
        "proof": merkle.consistency_proof(size1, LEAVES[:size2]),
    }


def other_proof_size2(size1: int, size2: int, direction: int) -> int:
    return other_length_size(lambda n: proof_length(size1, n), size2, direction, size1)


CONSISTENCY_BASES = [(3, 7), (6, 8), (5, 13), (4, 7), (1, 2), (7, 64)]

CONSISTENCY_MUTATIONS: dict[str, Mutation] = {
    "modified-first-proof-element": with_proof_element(0),
    "modified-last-proof-element": lambda a: with_proof_element(len(a["proof"]) - 1)(a),
    "truncated-proof": lambda a: {**a, "proof": a["proof"][:-1]},
    "empty-proof": lambda a: {**a, "proof": []},
    "extended-proof": lambda a: {**a, "proof": [*a["proof"], LEAVES[0]]},
    "prepended-root1": lambda a: {**a, "proof": [a["root1"], *a["proof"]]},
    "swapped-roots": lambda a: {**a, "root1": a["root2"], "root2": a["root1"]},
    "wrong-root1": lambda a: {**a, "root1": flip(a["root1"])},
    "wrong-root2": lambda a: {**a, "root2": flip(a["root2"])},
    "wrong-size1-plus-one": lambda a: {**a, "size1": a["size1"] + 1},
    "wrong-size1-minus-one": lambda a: {**a, "size1": a["size1"] - 1},
    "wrong-size2-larger": lambda a: {**a, "size2": other_proof_size2(a["size1"], a["size2"], +1)},
    "wrong-size2-smaller": lambda a: {**a, "size2": other_proof_size2(a["size1"], a["size2"], -1)},
    "size1-zero": lambda a: {**a, "size1": 0, "root1": merkle.EMPTY_ROOT},
    "size1-zero-empty-proof": lambda a: {**a, "size1": 0, "root1": merkle.EMPTY_ROOT, "proof": []},
    "size2-less-than-size1": lambda a: {
        **a,
        "size1": a["size2"],
        "size2": a["size1"],
        "root1": a["root2"],
        "root2": a["root1"],
    },
    "equal-sizes-with-proof": lambda a: {**a, "size2": a["size1"], "root2": a["root1"]},
    "equal-sizes-different-roots": lambda a: {**a, "size2": a["size1"], "proof": []},
    "negative-size1": lambda a: {**a, "size1": -a["size1"]},
    "short-root1": lambda a: {**a, "root1": a["root1"][:31]},
    "long-root2": lambda a: {**a, "root2": a["root2"] + b"\x00"},
    "short-proof-element": lambda a: {**a, "proof": [a["proof"][0][:31], *a["proof"][1:]]},
    "none-root": lambda a: {**a, "root1": None},
    "float-size": lambda a: {**a, "size2": float(a["size2"])},
}


@pytest.mark.parametrize(("size1", "size2"), CONSISTENCY_BASES)
def test_consistency_base_cases_verify(size1: int, size2: int) -> None:
    assert merkle.verify_consistency(**consistency_case(size1, size2))


@pytest.mark.parametrize("mutation", CONSISTENCY_MUTATIONS.values(), ids=CONSISTENCY_MUTATIONS.keys())
@pytest.mark.parametrize(("size1", "size2"), CONSISTENCY_BASES)
def test_verify_consistency_rejects(size1: int, size2: int, mutation: Mutation) -> None:
    assert merkle.verify_consistency(**mutation(consistency_case(size1, size2))) is False


@pytest.mark.parametrize("size2", range(1, 17))
def test_verify_consistency_rejects_every_bit_flip_and_length_change(size2: int) -> None:
    for size1 in range(1, size2 + 1):
        args = consistency_case(size1, size2)
        proof = args["proof"]
        for i in range(len(proof)):
            for at in (0, 31):
                bad = [*proof[:i], flip(proof[i], at), *proof[i + 1 :]]
                assert not merkle.verify_consistency(**{**args, "proof": bad})
            assert not merkle.verify_consistency(**{**args, "proof": proof[:i]})
        for extra in (LEAVES[0], args["root1"], args["root2"]):
            assert not merkle.verify_consistency(**{**args, "proof": [*proof, extra]})


def test_verify_consistency_size_binding_is_the_checkpoints_job() -> None:
    # As for inclusion: the proof from 3 to 7 has the same shape as one from 3 to 8, so with the same
    # roots it "verifies" at size 8 too. Sizes are bound to roots by signed checkpoints.
    args = consistency_case(3, 7)
    assert merkle.verify_consistency(**{**args, "size2": 8})


def test_verify_consistency_equal_sizes() -> None:
    root = merkle.root(LEAVES[:5])
    assert merkle.verify_consistency(5, 5, root, root, [])
    assert merkle.verify_consistency(5, 5, root, root, ()) is True


@pytest.mark.parametrize("size2", range(1, 9))
def test_verify_consistency_rejects_other_trees(size2: int) -> None:
    # A proof between two trees that share no prefix (an edited early leaf) never verifies.
    edited = [merkle.leaf_hash(b"edited"), *LEAVES[1:size2]]
    for size1 in range(1, size2):
        proof = merkle.consistency_proof(size1, edited)
        old_root = merkle.root(LEAVES[:size1])
        assert not merkle.verify_consistency(size1, size2, old_root, merkle.root(edited), proof)
