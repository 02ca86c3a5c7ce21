"""Numeric helpers shared by the detectors, in NumPy alone (the ingestion gate imports no scikit-learn:
importing it costs about a second, on every ``data add``)."""

from __future__ import annotations

import numpy as np

from mlwarden.defense.detectors.interface import Floats, Ints

CHUNK_CELLS = 4_000_000  # distance-matrix cells per block (32 MB of float64)


def neighbours(X: Floats, k: int, Y: Floats | None = None) -> tuple[Ints, Floats]:
    """The ``k`` nearest rows of ``Y`` (default: ``X`` itself, excluding each row) for each row of ``X``,
    by Euclidean distance, brute force in blocks: (indices, squared distances), nearest first."""
    same = Y is None
    base = X if Y is None else Y
    k = min(k, len(base) - (1 if same else 0))
    if k <= 0:
        return np.zeros((len(X), 0), dtype=np.int64), np.zeros((len(X), 0))
    base_sq = np.einsum("ij,ij->i", base, base)
    x_sq = np.einsum("ij,ij->i", X, X)
    step = max(1, CHUNK_CELLS // max(1, len(base)))
    idx = np.empty((len(X), k), dtype=np.int64)
    dist = np.empty((len(X), k))
    for start in range(0, len(X), step):
        stop = min(len(X), start + step)
        d = x_sq[start:stop, None] + base_sq[None, :] - 2.0 * (X[start:stop] @ base.T)
        np.maximum(d, 0.0, out=d)
        if same:
            d[np.arange(stop - start), np.arange(start, stop)] = np.inf
        part = np.argpartition(d, k - 1, axis=1)[:, :k]
        pd_ = np.take_along_axis(d, part, axis=1)
        order = np.argsort(pd_, axis=1, kind="stable")
        idx[start:stop] = np.take_along_axis(part, order, axis=1)
        dist[start:stop] = np.take_along_axis(pd_, order, axis=1)
    return idx, dist


def robust_z(values: Floats, center_from: Floats | None = None) -> Floats:
    """|v - median| / (1.4826 MAD), the median and MAD taken from ``center_from`` (default ``values``)."""
    base = values if center_from is None else center_from
    median = float(np.median(base))
    mad = float(np.median(np.abs(base - median))) * 1.4826
    if mad <= 1e-12:
        mad = float(np.std(base)) or 1.0
    return np.asarray(np.abs(values - median) / mad, dtype=np.float64)


def squash(value: Floats, threshold: float) -> Floats:
    """A non-negative statistic to [0, 1), monotone, with ``threshold`` at 0.5."""
    v = np.maximum(np.asarray(value, dtype=np.float64), 0.0)
    return np.asarray(v / (v + threshold), dtype=np.float64) if threshold > 0 else np.ones_like(v)


def empirical_tail(values: Floats, calibration: Floats) -> Floats:
    """For each value, the share of ``calibration`` values at least as large (an empirical p-value,
    with the +1 correction so it is never 0)."""
    ordered = np.sort(calibration)
    above = len(ordered) - np.searchsorted(ordered, values, side="left")
    return np.asarray((above + 1) / (len(ordered) + 1), dtype=np.float64)


def top_direction(centred: Floats) -> Floats:
    """The top right singular vector of a centred matrix (its first principal axis)."""
    if centred.shape[0] >= centred.shape[1]:
        cov = centred.T @ centred
        _, vectors = np.linalg.eigh(cov)
        return np.asarray(vectors[:, -1], dtype=np.float64)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    return np.asarray(vt[0], dtype=np.float64)


def principal_axes(centred: Floats, count: int) -> Floats:
    """The top ``count`` principal axes (columns) of a centred matrix."""
    count = max(1, min(count, centred.shape[1], centred.shape[0]))
    if centred.shape[0] >= centred.shape[1]:
        _, vectors = np.linalg.eigh(centred.T @ centred)
        return np.asarray(vectors[:, ::-1][:, :count], dtype=np.float64)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    return np.asarray(vt[:count].T, dtype=np.float64)


def two_means(Z: Floats, rng: np.random.Generator, restarts: int = 3, iterations: int = 50) -> Ints:
    """2-means (Lloyd, k-means++ starts, best of ``restarts``): a cluster label 0/1 per row."""
    best, best_inertia = np.zeros(len(Z), dtype=np.int64), np.inf
    for _ in range(restarts):
        first = Z[rng.integers(len(Z))]
        d = ((Z - first) ** 2).sum(axis=1)
        total = d.sum()
        second = Z[rng.choice(len(Z), p=d / total)] if total > 0 else Z[rng.integers(len(Z))]
        centres = np.stack([first, second])
        labels = np.zeros(len(Z), dtype=np.int64)
        for _ in range(iterations):
            dist = ((Z[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2)
            new = np.argmin(dist, axis=1).astype(np.int64)
            if np.array_equal(new, labels) and _ > 0:
                break
            labels = new
            for c in (0, 1):
                if (labels == c).any():
                    centres[c] = Z[labels == c].mean(axis=0)
        inertia = float(((Z - centres[labels]) ** 2).sum())
        if inertia < best_inertia:
            best, best_inertia = labels, inertia
    return best


def silhouette(Z: Floats, labels: Ints, rng: np.random.Generator, max_rows: int = 2_000) -> float:
    """The mean silhouette coefficient of a 2-cluster labelling (on a uniform sample of at most
    ``max_rows`` rows: the exact value needs all pairwise distances)."""
    if len(np.unique(labels)) < 2:
        return 0.0
    if len(Z) > max_rows:
        pick = rng.choice(len(Z), max_rows, replace=False)
        Z, labels = Z[pick], labels[pick]
        if len(np.unique(labels)) < 2:
            return 0.0
    sq = np.einsum("ij,ij->i", Z, Z)
    dist = np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2 * Z @ Z.T, 0.0))
    values = np.zeros(len(Z))
    for c in (0, 1):
        own = labels == c
        n_own = int(own.sum())
        if n_own <= 1:
            continue
        a = dist[np.ix_(own, own)].sum(axis=1) / (n_own - 1)
        b = dist[np.ix_(own, ~own)].mean(axis=1)
        values[own] = (b - a) / np.maximum(np.maximum(a, b), 1e-12)
    return float(values.mean())
