"""Duplicate and near-duplicate floods: many copies of (almost) one row, typically from one source.

A row's copies are the rows with the same label (when labels are given) within ``radius`` of it, in
standardised units (Euclidean distance over ``sqrt(d)``, i.e. the root-mean-square difference per feature;
0 finds exact copies only). A row is part of a flood when the batch holds at least ``min_copies`` copies
of it and many more than the reference would explain: more than ``factor`` times the number its
neighbourhood in the reference predicts (scaled to the batch's size), plus ``min_copies``. With groups,
the reason names the group that holds most of the copies.

* No labels needed (used when given), no model. A reference makes it sound on data with natural
  duplicates (categorical rows, discrete pixels); without one, any ``min_copies`` close rows are a flood.
* Cost: rows are sorted by a random projection and only rows whose projections lie within the radius
  are compared (two copies project within the radius of each other): O(n log n + n d) on data without
  copies, O(c^2 d) more for a flood of c copies.
* Catches: copy floods, jittered copies within ``radius``. Misses: copies spread wider than ``radius``
  (the outlier and label detectors may still see them), floods of rows as common in the reference.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from mlwarden.defense.detectors._numeric import squash
from mlwarden.defense.detectors.interface import Detector, Floats, Inputs, Ints, RowScores, group_scores

MAX_COPIES_COUNTED = 64
PAIRS_PER_BLOCK = 1 << 20


class DuplicateFlood(Detector):
    name: ClassVar[str] = "duplicate_flood"
    cost = "one sort along a random projection, O(n log n + n d), plus O(c^2 d) per flood of c copies"

    def __init__(self, *, radius: float = 0.01, min_copies: int = 8, factor: float = 4.0) -> None:
        self.radius, self.min_copies, self.factor = radius, min_copies, factor

    def _detect(self, inputs: Inputs) -> RowScores:
        X, y = inputs.X, inputs.y
        n, d = X.shape
        bound = (self.radius**2) * d + 1e-12  # squared Euclidean distance
        near, copies = _copies(X, y, X, y, bound, same=True)
        expected = np.zeros(n)
        if inputs.X_ref is not None:
            _, in_ref = _copies(X, y, inputs.X_ref, inputs.y_ref, bound, same=False)
            expected = in_ref * n / len(inputs.X_ref)
        excess = (copies + 1) / (self.factor * expected + self.min_copies)
        flagged = (copies + 1 >= self.min_copies) & (excess > 1.0)
        scores = squash(excess, 1.0)
        reasons: dict[int, str] = {}
        for i in np.flatnonzero(flagged):
            where = ""
            if inputs.groups is not None:
                names, many = np.unique(inputs.groups[np.append(near[int(i)], i)], return_counts=True)
                where = f", {many.max()} of them from {str(names[np.argmax(many)])!r}"
            capped = "+" if copies[i] >= MAX_COPIES_COUNTED else ""
            reasons[int(i)] = (
                f"{int(copies[i]) + 1}{capped} rows within {self.radius} SD (the reference explains "
                f"{expected[i]:.1f}){where}"
            )
        return RowScores(self.name, scores, flagged, reasons, group_scores(scores, flagged, inputs.groups))


def _copies(
    X: Floats, y: Ints | None, pool: Floats, pool_y: Ints | None, bound: float, *, same: bool
) -> tuple[dict[int, Ints], Floats]:
    """Each row's copies in ``pool`` (same label, squared distance within ``bound``; itself excluded when
    ``pool`` is ``X``): the copies' indices (at most ``MAX_COPIES_COUNTED``) of the rows that have any, and
    how many each has, counting at most ``MAX_COPIES_COUNTED``.

    Two rows within distance r project within r of each other on any unit vector, so after sorting the
    pool along one random direction only the rows in a window of width 2r around a row's projection can
    be its copies; on data without copies that window holds the row alone."""
    radius = float(np.sqrt(bound))
    direction = np.random.default_rng(0).normal(size=X.shape[1])
    direction /= max(float(np.linalg.norm(direction)), 1e-12)
    along = pool @ direction
    order = np.argsort(along, kind="stable")
    ranked = along[order]
    projected = X @ direction
    low = np.searchsorted(ranked, projected - radius, side="left")
    width = np.searchsorted(ranked, projected + radius, side="right") - low
    counts = np.zeros(len(X))
    found: dict[int, Ints] = {}
    for rows in _blocks(width):
        row = np.repeat(rows, width[rows])  # one entry per (row, candidate) pair, by row
        first = np.repeat(np.cumsum(width[rows]) - width[rows], width[rows])
        candidate = order[np.repeat(low[rows], width[rows]) + np.arange(len(row)) - first]
        gap = pool[candidate] - X[row]
        close = np.einsum("ij,ij->i", gap, gap) <= bound
        if same:
            close &= candidate != row
        if y is not None and pool_y is not None:
            close &= pool_y[candidate] == y[row]
        row, candidate = row[close], candidate[close]
        for i, start_, stop in zip(*_runs(row), strict=True):
            found[i] = candidate[start_ : start_ + min(stop - start_, MAX_COPIES_COUNTED)]
            counts[i] = min(stop - start_, MAX_COPIES_COUNTED)
    return found, counts


def _blocks(width: Ints) -> list[Ints]:
    """Consecutive rows, in blocks of at most ``PAIRS_PER_BLOCK`` candidate pairs (a flood of c copies has
    c^2 of them: the block bounds the memory of their differences)."""
    blocks, start, total = [], 0, 0
    for i, w in enumerate(width.tolist()):
        if total and total + w > PAIRS_PER_BLOCK:
            blocks.append(np.arange(start, i))
            start, total = i, 0
        total += w
    blocks.append(np.arange(start, len(width)))
    return blocks


def _runs(row: Ints) -> tuple[list[int], list[int], list[int]]:
    """For a sorted array, each distinct value with the start and stop of its run."""
    if not len(row):
        return [], [], []
    starts = np.flatnonzero(np.r_[True, row[1:] != row[:-1]])
    stops = np.r_[starts[1:], len(row)]
    return row[starts].tolist(), starts.tolist(), stops.tolist()
