"""Per-class outliers relative to the accepted reference (or a trusted set).

For each class, a model of the reference's rows of that class (robust Mahalanobis distance by default,
or scikit-learn's IsolationForest) scores the batch's rows labelled with it. The decision threshold is
calibrated on the reference itself: each reference row is scored out of sample (5-fold cross-conformal),
each class's scores are divided by the median of its reference rows' scores, and a batch row is flagged
when it is further out than all but ``alpha`` of the reference rows of every class together (a class of
27 reference rows alone could not set a 99% bound: its maximum is a 1-in-28 bound). So on a clean batch
drawn like the reference, about ``alpha`` of the rows are flagged whatever the data's shape.

Robust Mahalanobis: the location and covariance of the most central 90% of the rows (two "C-steps"
of Rousseeuw's MCD, trimmed and re-estimated), shrunk towards a multiple of the identity so that it
stays invertible with fewer rows than features and on constant features (a feature constant in the
reference is then very unusual when it moves: a pixel trigger on an empty corner).

* Needs the reference (trusted or accepted rows); labels optional (without them: one class).
* No trained classifier. Cost: Mahalanobis O(n d^2 + d^3) per class, milliseconds; IsolationForest
  5 forest fits per class.
* Catches triggers and injected rows that sit outside their class (backdoor patches, out-of-range
  values, rows of one class labelled as another far away). Misses poison inside the class's own
  distribution (adaptive attacks, flips between overlapping classes) and new categories (encoded as
  the most frequent one: the contract and drift see those).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from mlwarden.defense.detectors._numeric import squash
from mlwarden.defense.detectors.interface import (
    Detector,
    Floats,
    Inputs,
    Ints,
    RowScores,
    group_scores,
)

MIN_CLASS_ROWS = 10
CROSS_FOLDS = 5


class ReferenceOutliers(Detector):
    name: ClassVar[str] = "reference_outliers"
    needs_reference = True
    cost = "Mahalanobis: O(n d^2 + d^3) per class (milliseconds); isolation_forest: 5 forest fits per class"

    def __init__(self, method: str = "mahalanobis", *, alpha: float = 0.01, seed: int = 0) -> None:
        if method not in ("mahalanobis", "isolation_forest"):
            raise ValueError(f"method must be mahalanobis or isolation_forest, not {method!r}")
        self.method, self.alpha, self.seed = method, alpha, seed

    def _detect(self, inputs: Inputs) -> RowScores:
        X, X_ref = inputs.X, inputs.reference()
        use_labels = inputs.y is not None and inputs.y_ref is not None
        y = inputs.y if use_labels and inputs.y is not None else np.zeros(len(X), dtype=np.int64)
        y_ref = inputs.y_ref if use_labels and inputs.y_ref is not None else np.zeros(len(X_ref), dtype=np.int64)
        rng = np.random.default_rng(self.seed)
        scores, flagged = np.zeros(len(X)), np.zeros(len(X), dtype=bool)
        reasons: dict[int, str] = {}
        fits, skipped = 0, []
        per_class: list[tuple[Any, Any, Floats, Floats]] = []  # (class, rows, held-out ref scores, batch scores)
        for c in np.unique(y):
            rows, ref = np.flatnonzero(y == c), X_ref[y_ref == c]
            name = inputs.classes[c] if use_labels else None
            if len(ref) < MIN_CLASS_ROWS:
                ref = X_ref  # too few reference rows of this class: against the whole reference
                if name is not None:
                    skipped.append(str(name))
            held_out, distance, spent = self._score(ref, X[rows], rng)
            fits += spent
            # each class's distances in units of its own typical held-out distance, so that one threshold
            # over every class's held-out rows together is calibrated (a class's own 99th percentile of
            # 27 rows would be its maximum: a false-alarm rate of 1/28, not alpha)
            unit = max(float(np.median(held_out)), 1e-12)
            per_class.append((name, rows, held_out / unit, distance / unit))
        pooled = np.concatenate([held for _, _, held, _ in per_class])
        threshold = max(float(np.quantile(pooled, 1.0 - self.alpha, method="higher")), 1e-12)
        for name, rows, _, distance in per_class:
            scores[rows] = squash(distance, threshold)
            hit = distance > threshold
            flagged[rows] = hit
            where = f"the reference's class {name!r}" if name is not None else "the reference"
            for i, d in zip(rows[hit], distance[hit], strict=True):
                reasons[int(i)] = (
                    f"outside {where}: {d:.3g} times its typical distance > {threshold:.3g} "
                    f"({1 - self.alpha:.0%} bound)"
                )
        note = f"classes judged against the whole reference (too few rows): {', '.join(skipped)}" if skipped else ""
        return RowScores(self.name, scores, flagged, reasons, group_scores(scores, flagged, inputs.groups), fits, note)

    def _score(self, ref: Floats, batch: Floats, rng: np.random.Generator) -> tuple[Floats, Floats, int]:
        """The reference rows' held-out outlyingness, the batch rows' outlyingness, and the fits spent.

        Cross-conformal: the reference is cut into folds; each fold's rows are scored by the model of the
        other folds, and each batch row by the model of one fold drawn at random. So a clean batch row is
        scored exactly as a held-out reference row is, and ``alpha`` is its false-alarm rate.
        """
        fold = rng.permutation(len(ref)) % CROSS_FOLDS
        pick = rng.integers(CROSS_FOLDS, size=len(batch))
        held_out, scored = np.empty(len(ref)), np.empty(len(batch))
        for f in range(CROSS_FOLDS):
            test = fold == f
            model = self._fit(ref[~test], rng)
            held_out[test] = self._outlyingness(model, ref[test])
            if (pick == f).any():
                scored[pick == f] = self._outlyingness(model, batch[pick == f])
        spent = CROSS_FOLDS if self.method == "isolation_forest" else 0
        return held_out, scored, spent

    def _fit(self, rows: Floats, rng: np.random.Generator) -> Any:
        if self.method == "isolation_forest":
            from sklearn.ensemble import IsolationForest

            return IsolationForest(n_estimators=100, random_state=int(rng.integers(2**31))).fit(rows)
        return robust_gaussian(rows)

    def _outlyingness(self, model: Any, rows: Floats) -> Floats:
        if self.method == "isolation_forest":
            return np.asarray(-model.score_samples(rows), dtype=np.float64)
        mean, precision = model
        centred = rows - mean
        return np.asarray(np.sqrt(np.einsum("ij,jk,ik->i", centred, precision, centred)), dtype=np.float64)


def robust_gaussian(rows: Floats, keep: float = 0.9, steps: int = 2) -> tuple[Floats, Floats]:
    """Location and precision of the central ``keep`` share of ``rows`` (trimmed C-steps), shrunk."""
    subset: Ints = np.arange(len(rows), dtype=np.int64)
    mean, precision = _shrunk(rows)
    for _ in range(steps):
        centred = rows - mean
        distance = np.einsum("ij,jk,ik->i", centred, precision, centred)
        subset = np.argsort(distance)[: max(2, int(keep * len(rows)))].astype(np.int64)
        mean, precision = _shrunk(rows[subset])
    return mean, precision


def _shrunk(rows: Floats) -> tuple[Floats, Floats]:
    d = rows.shape[1]
    mean = rows.mean(axis=0)
    cov = np.atleast_2d(np.cov(rows, rowvar=False, bias=True)) if len(rows) > 1 else np.zeros((d, d))
    scale = max(float(np.trace(cov)) / d, 1e-6)
    shrink = min(0.5, 0.05 + d / max(len(rows), 1))
    # a floor of 1e-2 of a unit variance: features constant in the reference still get a finite bound
    target = np.eye(d) * max(scale, 1e-2)
    return mean, np.linalg.pinv((1.0 - shrink) * cov + shrink * target)
