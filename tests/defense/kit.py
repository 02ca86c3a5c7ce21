"""Small synthetic data with known poison, shared by the detector tests."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Data = tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]


def blobs(n: int, *, classes: int = 3, d: int = 6, seed: int = 0, spread: float = 4.0) -> Data:
    """Well separated Gaussian classes."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, spread, (classes, d))
    y = rng.integers(0, classes, n).astype(np.int64)
    return centres[y] + rng.normal(0, 1, (n, d)), y


def flip(y: npt.NDArray[np.int64], rate: float, seed: int = 1) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    rng = np.random.default_rng(seed)
    poisoned = np.zeros(len(y), dtype=bool)
    poisoned[rng.choice(len(y), int(rate * len(y)), replace=False)] = True
    out = y.copy()
    out[poisoned] = (y[poisoned] + 1) % (y.max() + 1)
    return out, poisoned


def backdoor(
    X: npt.NDArray[np.float64], y: npt.NDArray[np.int64], rate: float, target: int = 0, seed: int = 2
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    """All-to-one: two features set far beyond their range, label set to ``target``."""
    rng = np.random.default_rng(seed)
    poisoned = np.zeros(len(y), dtype=bool)
    poisoned[rng.choice(np.flatnonzero(y != target), int(rate * len(y)), replace=False)] = True
    X, y = X.copy(), y.copy()
    cols = np.array([0, 1])
    X[np.ix_(poisoned, cols)] = X[:, cols].max(axis=0) + 3.0
    y[poisoned] = target
    return X, y, poisoned
