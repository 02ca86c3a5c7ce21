"""Duplicate and near-duplicate floods: many copies of (almost) one row, typically from one source.

A row's copies are the rows with the same label (when labels are given) within ``radius`` of it, in
standardised units (Euclidean distance over ``sqrt(d)``, i.e. the root-mean-square difference per feature;
0 finds exact copies only). A row is part of a flood when the batch holds at least ``min_copies`` copies
of it and many more than the reference would explain: more than ``factor`` times the number its
neighbourhood in the reference predicts (scaled to the batch's size), plus ``min_copies``. With groups,
the reason names the group that holds most of the copies.

* No labels needed (used when given), no model. A reference makes it sound on data with natural
  duplicates (categorical rows, discrete pixels); without one, any ``min_copies`` close rows are a flood.
* Cost: one brute-force neighbour pass (up to 64 neighbours), O(n^2 d); the gate samples the batch.
* Catches: copy floods, jittered copies within ``radius``. Misses: copies spread wider than ``radius``
  (the outlier and label detectors may still see them), floods of rows as common in the reference.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from mlwarden.defense.detectors._numeric import neighbours, squash
from mlwarden.defense.detectors.interface import Detector, Floats, Inputs, Ints, RowScores, group_scores

MAX_COPIES_COUNTED = 64


class DuplicateFlood(Detector):
    name: ClassVar[str] = "duplicate_flood"
    cost = "one brute-force neighbour pass, O(n^2 d)"

    def __init__(self, *, radius: float = 0.01, min_copies: int = 8, factor: float = 4.0) -> None:
        self.radius, self.min_copies, self.factor = radius, min_copies, factor

    def _detect(self, inputs: Inputs) -> RowScores:
        X, y = inputs.X, inputs.y
        n, d = X.shape
        bound = (self.radius**2) * d + 1e-12  # squared Euclidean distance
        idx, copies = _copies(X, y, X, y, bound, same=True)
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
                near = idx[i][: int(min(copies[i], idx.shape[1]))]
                names, many = np.unique(inputs.groups[np.append(near, i)], return_counts=True)
                where = f", {many.max()} of them from {str(names[np.argmax(many)])!r}"
            capped = "+" if copies[i] >= MAX_COPIES_COUNTED else ""
            reasons[int(i)] = (
                f"{int(copies[i]) + 1}{capped} rows within {self.radius} SD (the reference explains "
                f"{expected[i]:.1f}){where}"
            )
        return RowScores(self.name, scores, flagged, reasons, group_scores(scores, flagged, inputs.groups))


def _copies(
    X: Floats, y: Ints | None, pool: Floats, pool_y: Ints | None, bound: float, *, same: bool
) -> tuple[Ints, Floats]:
    """Each row's neighbours in ``pool`` (nearest first) and how many of them are copies (same label,
    within ``bound``), counting at most ``MAX_COPIES_COUNTED``."""
    idx, dist = neighbours(X, MAX_COPIES_COUNTED, None if same else pool)
    close = dist <= bound
    if y is not None and pool_y is not None:
        close &= pool_y[idx] == y[:, None]
    return idx, close.sum(axis=1).astype(np.float64)
