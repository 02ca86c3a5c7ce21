"""The level-at-a-time version tree agrees with the leaf-at-a-time RFC 6962 reference, however it is grown."""

from __future__ import annotations

import numpy as np
import pytest

from mlwarden.audit import merkle
from mlwarden.data.tree import EMPTY_ROOT, TreeState, tree_of


def leaves(n: int, seed: int = 0) -> np.ndarray:  # type: ignore[type-arg]
    return np.random.default_rng(seed).integers(0, 256, (n, 32), dtype=np.uint8)


@pytest.mark.parametrize("n", [0, 1, 2, 3, 4, 5, 7, 8, 9, 1000, 4096, 5001])
def test_root_matches_the_reference(n: int) -> None:
    data = leaves(n)
    assert tree_of(data).root() == merkle.root([row.tobytes() for row in data])


@pytest.mark.parametrize("cuts", [(1,), (2, 3), (1000, 1), (4095, 2), (17, 17, 17, 4000)])
def test_growing_in_steps_gives_the_same_tree(cuts: tuple[int, ...]) -> None:
    data = leaves(sum(cuts) + 5, seed=1)
    state, start = TreeState(), 0
    for cut in (*cuts, 5):
        state = state.extend(data[start : start + cut])
        start += cut
    assert state == tree_of(data)


def test_the_empty_tree() -> None:
    assert tree_of(leaves(0)).root() == EMPTY_ROOT == merkle.EMPTY_ROOT


def test_json_round_trip_and_shape_check() -> None:
    state = tree_of(leaves(13))
    assert TreeState.from_json(13, state.to_json()) == state
    with pytest.raises(ValueError, match="compact range"):
        TreeState.from_json(12, state.to_json())
