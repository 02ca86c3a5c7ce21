"""Provenance defense and RONI, done right: retrain without a group, measure on a trusted set.

Both ask the same question of a group of rows: does the model trained without it do *better* on trusted
data? The loss is the per-row log-loss on the trusted ("quiz") rows ``X_ref``/``y_ref``; the impact of a
group is ``loss(with everything) - loss(without the group)``, positive when the group hurts. ART's
RONIDefense takes that difference with the opposite sign (it flags rows that help) and recalibrates per
point (thousands of fits for a hundred points). A group is flagged when its impact is significant: the
paired per-row loss differences have a t statistic above ``t`` and the mean gain is at least
``min_gain`` (in nats).

``ProvenanceDefense``: the groups are the sources or ingestions (``groups``, required). One fit on all
rows, one fit without each group: g + 1 fits, at most two per group.

``GroupRoni`` (Reject On Negative Impact, Nelson et al. 2008, at group level): without ``groups`` the
rows are cut into small groups of similar rows (k-means within each label, ~sqrt(n) rows each), so n / size
+ 1 fits of O(n) each: O(n^1.5) in all, not the O(n^2) of one retraining per row. Flipped or injected
rows
look alike and land in the same group, which then hurts measurably where one row alone would not.

* Need labels and a trusted set (labelled). Trains models: the default is NumPy softmax regression; any
  scikit-learn classifier can be passed.
* Catch: sources or clusters of rows whose labels make the model worse on trusted data (label flips,
  a malicious source). Miss: backdoors (a trigger does not hurt clean trusted accuracy: the trusted set
  has no triggers), poison spread too thin over groups, and harm the trusted set does not measure.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

from mlwarden.defense.detectors._models import _fit_predict
from mlwarden.defense.detectors._numeric import squash, two_means
from mlwarden.defense.detectors.interface import (
    Detector,
    DetectorError,
    Floats,
    GroupScore,
    Inputs,
    Ints,
    RowScores,
    empty,
)


class _LeaveGroupOut(Detector):
    needs_labels = True
    needs_reference = True
    needs_model = True

    def __init__(self, estimator: Any = "softmax", *, t: float = 3.0, min_gain: float = 0.002) -> None:
        self.estimator, self.t, self.min_gain = estimator, t, min_gain

    def _judge(self, inputs: Inputs, segment: Ints, names: list[str]) -> RowScores:
        y, X_ref, y_ref = inputs.labels(), inputs.reference(), inputs.y_ref
        if y_ref is None:
            raise DetectorError(f"{self.name} needs the trusted rows' labels (y_ref)")
        k = len(inputs.classes)
        if len(np.unique(y)) < 2:
            return empty(self.name, len(y), "one label class: no model to train")
        base = _losses(_fit_predict(self.estimator, inputs.X, y, X_ref, k), y_ref)
        fits = 1
        scores, flagged = np.zeros(len(y)), np.zeros(len(y), dtype=bool)
        reasons: dict[int, str] = {}
        out: list[GroupScore] = []
        for g, name in enumerate(names):
            rows = segment == g
            keep = ~rows
            if not rows.any():
                continue
            if len(np.unique(y[keep])) < 2:
                out.append(GroupScore(name, int(rows.sum()), 0, 0.0, False, "the rest has one class: not judged"))
                continue
            without = _losses(_fit_predict(self.estimator, inputs.X[keep], y[keep], X_ref, k), y_ref)
            fits += 1
            gain = base - without  # > 0: the model is better without the group
            mean = float(gain.mean())
            sd = float(gain.std(ddof=1)) if len(gain) > 1 else 0.0
            t = mean / (sd / math.sqrt(len(gain))) if sd > 0 else (math.inf if mean > 0 else 0.0)
            bad = t > self.t and mean >= self.min_gain
            score = float(squash(np.array([max(t, 0.0)]), self.t)[0])
            scores[rows] = score
            flagged[rows] = bad
            why = f"the trusted log-loss falls by {mean:.4f} without it (t={t:.1f})"
            if bad:
                for i in np.flatnonzero(rows):
                    reasons[int(i)] = f"group {name!r}: {why}"
            out.append(GroupScore(name, int(rows.sum()), int(rows.sum()) if bad else 0, score, bad, why if bad else ""))
        return RowScores(self.name, scores, flagged, reasons, tuple(out), fits)


def _losses(proba: Floats, y: Ints) -> Floats:
    return np.asarray(-np.log(np.clip(proba[np.arange(len(y)), y], 1e-12, 1.0)), dtype=np.float64)


class ProvenanceDefense(_LeaveGroupOut):
    name: ClassVar[str] = "provenance"
    cost = "g + 1 model fits (g groups), each on the batch"

    def _detect(self, inputs: Inputs) -> RowScores:
        if inputs.groups is None:
            raise DetectorError("provenance needs a group (source or ingestion) per row", hint="pass groups=")
        names, segment = np.unique(inputs.groups, return_inverse=True)
        if len(names) < 2:
            return empty(self.name, len(inputs.X), "one group: nothing to compare it with")
        return self._judge(inputs, segment.astype(np.int64), [str(n) for n in names])


class GroupRoni(_LeaveGroupOut):
    name: ClassVar[str] = "roni"
    cost = "n / size + 1 model fits of O(n) each (size ~ sqrt(n)): O(n^1.5)"

    def __init__(
        self,
        estimator: Any = "softmax",
        *,
        size: int | None = None,
        t: float = 3.0,
        min_gain: float = 0.002,
        seed: int = 0,
    ) -> None:
        super().__init__(estimator, t=t, min_gain=min_gain)
        self.size, self.seed = size, seed

    def _detect(self, inputs: Inputs) -> RowScores:
        segment, names = small_groups(inputs.X, inputs.labels(), self.size, np.random.default_rng(self.seed))
        result = self._judge(inputs, segment, names)
        if inputs.groups is None:
            return result
        from mlwarden.defense.detectors.interface import group_scores

        return RowScores(
            result.detector,
            result.scores,
            result.flagged,
            result.reasons,
            group_scores(result.scores, result.flagged, inputs.groups),
            result.fits,
        )


def small_groups(X: Floats, y: Ints, size: int | None, rng: np.random.Generator) -> tuple[Ints, list[str]]:
    """Rows cut into groups of about ``size`` similar rows of one label (recursive 2-means splits)."""
    size = size or max(8, int(math.sqrt(len(X))))
    segment = np.empty(len(X), dtype=np.int64)
    names: list[str] = []
    for c in np.unique(y):
        pending = [np.flatnonzero(y == c)]
        while pending:
            rows = pending.pop()
            if len(rows) <= size or len(rows) < 4:
                segment[rows] = len(names)
                names.append(f"class{c}-{len(names)}")
                continue
            labels = two_means(X[rows], rng, restarts=1, iterations=20)
            if labels.min() == labels.max():
                labels = (np.arange(len(rows)) % 2).astype(np.int64)
            pending += [rows[labels == 0], rows[labels == 1]]
    return segment, names
