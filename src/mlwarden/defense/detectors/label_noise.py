"""Label noise and label flips: confident learning on out-of-fold probabilities, and k-NN consistency.

``ConfidentLabels`` follows the confident-learning rule (Northcutt et al., "Confident Learning:
Estimating Uncertainty in Dataset Labels", JAIR 2021), implemented here: each class ``j`` gets a threshold
``t_j``, the mean out-of-fold probability of ``j`` among the rows labelled ``j``; a row labelled ``l`` is
confidently of class ``j`` when ``p_j >= t_j`` (the largest such ``p_j`` wins), and flagged when that
class is not ``l``. Per-class thresholds make it work on classes a model is unsure of as well as on easy
ones; a class no row carries (an attack can relabel a whole class) gets the threshold 0.5. The score is
the normalised margin ``(1 + max_{j != l} p_j - p_l) / 2``.

* Needs labels; no trusted data. Trusted rows, if given, join every fold's training side, each counting
  as many batch rows as it takes for every trusted class to weigh as much as the batch's largest class:
  a batch that relabels a whole class cannot outvote them (``trusted_weight`` sets it).
* Cost: ``folds`` fits of the probability model (the default, NumPy softmax regression: O(n d k) per
  iteration, 300 iterations; well under a second for 5,000 x 30) plus one k-NN pass (O(n^2 d) brute force).
* Catches random and class-pair flips (the flipped row sits among rows of its true class). Misses flips
  a model cannot tell from the truth: rows on the class boundary ("margin" flips), classes the features do
  not separate, and clean-label poison (the label is right).

``KnnLabels`` flags a row when most of its ``k`` nearest neighbours (the other rows and trusted rows)
carry another label. No model; O(n^2 d) brute force. Catches the same flips, is less sensitive at class
boundaries, and is blind where a flipped row has its own flipped twins nearby (a dense flood of flips).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from mlwarden.defense.detectors._models import knn_proba, oof_proba
from mlwarden.defense.detectors.interface import Detector, Floats, Inputs, Ints, RowScores, empty, group_scores


class ConfidentLabels(Detector):
    name: ClassVar[str] = "confident_labels"
    needs_labels = True
    needs_model = True
    cost = "folds fits of the probability model + one k-NN pass; ~0.5 s for 5,000 rows x 30 features"

    def __init__(
        self,
        estimator: Any = "ensemble",
        *,
        folds: int = 5,
        k: int = 10,
        trusted_weight: float | None = None,
        seed: int = 0,
    ) -> None:
        self.estimator, self.folds, self.k, self.seed = estimator, folds, k, seed
        self.trusted_weight = trusted_weight

    def _detect(self, inputs: Inputs) -> RowScores:
        y = inputs.labels()
        k_classes = len(inputs.classes)
        if len(np.unique(y)) < 2:
            return empty(self.name, len(y), "one label class in the batch: no label can be confused with another")
        folds = max(2, min(self.folds, int(np.bincount(y).max())))
        proba, fits = oof_proba(
            inputs.X,
            y,
            k_classes,
            estimator=self.estimator,
            folds=folds,
            rng=np.random.default_rng(self.seed),
            X_ref=inputs.X_ref,
            y_ref=inputs.y_ref,
            k_neighbours=self.k,
            ref_weight=self._ref_weight(y, inputs.y_ref),
        )
        scores, flagged, guess = confident_flags(proba, y)
        reasons = {
            int(i): f"labelled {inputs.classes[y[i]]!r}, confidently {inputs.classes[guess[i]]!r} "
            f"(p={proba[i, guess[i]]:.2f} vs {proba[i, y[i]]:.2f})"
            for i in np.flatnonzero(flagged)
        }
        groups = group_scores(scores, flagged, inputs.groups)
        return RowScores(self.name, scores, flagged, reasons, groups, fits, stats=signal_stats(proba, y))

    def _ref_weight(self, y: Ints, y_ref: Ints | None) -> float:
        """How many batch rows a trusted row counts as: given, or enough that the trusted rows of every class
        weigh at least as much as the batch's largest class (at least 1), so that a batch relabelling a
        whole class as another cannot outvote the trusted rows of either."""
        if self.trusted_weight is not None:
            return self.trusted_weight
        if y_ref is None or not len(y_ref):
            return 1.0
        return max(1.0, float(np.bincount(y).max()) / float(np.bincount(y_ref)[np.unique(y_ref)].min()))


def confident_flags(proba: Floats, y: Any) -> tuple[Floats, Any, Any]:
    """Confident-learning decisions: (scores, flagged, the confident class of each row)."""
    n, k = proba.shape
    thresholds = np.full(k, np.nan)
    for c in range(k):
        own = y == c
        if own.any():
            thresholds[c] = float(proba[own, c].mean())
    # a class no row is labelled with (an attack may relabel all of it): a majority of the probability, so
    # its rows relabelled elsewhere can still be confidently of it (the trusted rows teach the model it)
    thresholds[np.isnan(thresholds)] = 0.5
    above = proba >= thresholds[None, :]
    masked = np.where(above, proba, -1.0)
    guess = np.argmax(masked, axis=1)
    confident = above.any(axis=1)
    flagged = confident & (guess != y)
    own_p = proba[np.arange(n), y]
    others = proba.copy()
    others[np.arange(n), y] = -1.0
    scores = np.clip((1.0 + others.max(axis=1) - own_p) / 2.0, 0.0, 1.0)
    return scores, flagged, guess


class KnnLabels(Detector):
    name: ClassVar[str] = "knn_labels"
    needs_labels = True
    cost = "one brute-force k-NN pass, O(n^2 d); ~0.2 s for 5,000 rows x 30 features"

    def __init__(self, k: int = 10, max_agreement: float = 0.5) -> None:
        self.k, self.max_agreement = k, max_agreement

    def _detect(self, inputs: Inputs) -> RowScores:
        y = inputs.labels()
        k_classes = len(inputs.classes)
        if len(np.unique(y)) < 2 and inputs.y_ref is None:
            return empty(self.name, len(y), "one label class and no reference: no neighbour can disagree")
        # knn_proba smooths with 1/k_classes; undo it to read plain neighbour shares
        smoothed = knn_proba(inputs.X, y, k_classes, self.k, inputs.X_ref, inputs.y_ref)
        k = min(self.k, len(inputs.X) - 1 + (len(inputs.X_ref) if inputs.X_ref is not None else 0))
        shares = (smoothed * (k + 1.0) - 1.0 / k_classes) / max(k, 1)
        own = shares[np.arange(len(y)), y]
        others = shares.copy()
        others[np.arange(len(y)), y] = -1.0
        best_other = np.argmax(others, axis=1)
        flagged = (own < self.max_agreement) & (others.max(axis=1) > own)
        scores = np.clip(1.0 - own, 0.0, 1.0)
        reasons = {
            int(i): f"{shares[i, best_other[i]] * k:.0f} of {k} nearest rows are labelled "
            f"{inputs.classes[best_other[i]]!r}, {own[i] * k:.0f} {inputs.classes[y[i]]!r}"
            for i in np.flatnonzero(flagged)
        }
        stats = signal_stats(shares, y)
        return RowScores(self.name, scores, flagged, reasons, group_scores(scores, flagged, inputs.groups), stats=stats)


def signal_stats(proba: Floats, y: Any) -> dict[str, float]:
    """How well the out-of-fold model predicts the labels, beside always guessing the majority class."""
    return {
        "oof_accuracy": float((np.argmax(proba, axis=1) == y).mean()),
        "majority": float(np.bincount(y).max() / len(y)),
    }
