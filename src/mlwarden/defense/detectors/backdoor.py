"""Backdoor triggers, per class: centred spectral signatures and activation clustering.

Both look at a representation of the rows: the features themselves (``representation="features"``, no
model), or the hidden layer of a small scikit-learn MLP trained on the batch (``"hidden"``, one fit). A
trigger that a model learns moves the poisoned rows of its target class along one direction; both
detectors look for that direction inside each class.

``SpectralSignature`` (Tran et al., "Spectral Signatures in Backdoor Attacks", NeurIPS 2018): centre the
class's representations on their mean, take the top singular vector, project. ART's implementation
projects uncentred activations; then the top direction is the class mean, not the poison's, and the
scores carry no signal (the issue measured AUROC 0.14-0.30 on all-to-all backdoors). The decision here is
a robust z-score of the projection: centred and scaled by the median and MAD of the *reference's* rows of
that class when a reference is given (then poison may even be most of a class), else of the batch's.

``ActivationClustering`` (Chen et al., 2018): 2-means of the class's representations on their top 10
principal axes. ART flags the smaller cluster of every class, so about a third of the clean classes lose
rows (FPR ~0.32 in the issue's measurement). Here a cluster is flagged only if the split is real and
foreign: without a reference, the smaller cluster holds at most ``max_share`` of the class and the
silhouette is at least ``min_silhouette``; with a reference, the cluster further from the reference's rows
of that class is flagged when the silhouette is at least ``min_silhouette`` and at most ``max_ref_share``
of the reference's rows fall into it (a natural sub-mode of the class shows up in the reference too).

* Need labels (per class); the reference is optional but makes both sound when poison is most of a class.
* Cost: O(n d^2) per class (features); ``"hidden"`` adds one MLP fit.
* Catch: triggers (pixel patches, features at extreme values), all-to-one and all-to-all, clean-label
  triggers. Miss: triggers too weak to dominate a class's variance (spectral), poison under ~1-2% of a
  class (activation clustering needs a cluster), and triggers inside the clean distribution.
"""

from __future__ import annotations

import warnings
from typing import ClassVar

import numpy as np

from mlwarden.defense.detectors._numeric import principal_axes, robust_z, silhouette, squash, top_direction, two_means
from mlwarden.defense.detectors.interface import Bools, Detector, Floats, Inputs, Ints, RowScores, empty, group_scores

MIN_CLASS_ROWS = 10


def representation(inputs: Inputs, kind: str, seed: int) -> tuple[Floats, Floats | None, int]:
    """The rows (and the reference's) in the chosen representation, and the fits spent."""
    if kind == "features":
        return inputs.X, inputs.X_ref, 0
    if kind != "hidden":
        raise ValueError(f"representation must be features or hidden, not {kind!r}")
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    labels = inputs.labels()
    model = MLPClassifier(hidden_layer_sizes=(64,), max_iter=300, random_state=seed)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(inputs.X, labels)

    def hidden(rows: Floats) -> Floats:
        return np.asarray(np.maximum(rows @ model.coefs_[0] + model.intercepts_[0], 0.0), dtype=np.float64)

    return hidden(inputs.X), hidden(inputs.X_ref) if inputs.X_ref is not None else None, 1


class SpectralSignature(Detector):
    name: ClassVar[str] = "spectral_signature"
    needs_labels = True
    cost = "one SVD per class, O(n d^2); 'hidden' adds one MLP fit"

    def __init__(self, representation: str = "features", *, z: float = 4.0, alpha: float = 0.005, seed: int = 0):
        self.representation, self.z, self.alpha, self.seed = representation, z, alpha, seed

    def _detect(self, inputs: Inputs) -> RowScores:
        y, y_ref = inputs.labels(), inputs.y_ref
        rep, rep_ref, fits = representation(inputs, self.representation, self.seed)
        scores, flagged = np.zeros(len(y)), np.zeros(len(y), dtype=bool)
        reasons: dict[int, str] = {}
        for c in np.unique(y):
            rows = np.flatnonzero(y == c)
            if len(rows) < MIN_CLASS_ROWS:
                continue
            R = rep[rows]
            mean = R.mean(axis=0)
            v = top_direction(R - mean)
            proj = (R - mean) @ v
            threshold = self.z
            ref_rows = rep_ref[y_ref == c] if rep_ref is not None and y_ref is not None else None
            if ref_rows is not None and len(ref_rows) >= MIN_CLASS_ROWS:
                ref_proj = (ref_rows - mean) @ v
                z = robust_z(proj, ref_proj)
                threshold = max(threshold, float(np.quantile(robust_z(ref_proj), 1.0 - self.alpha)))
            else:
                z = robust_z(proj)
            scores[rows] = squash(z, threshold)
            hit = z > threshold
            flagged[rows] = hit
            for i, value in zip(rows[hit], z[hit], strict=True):
                reasons[int(i)] = f"class {inputs.classes[c]!r}: {value:.1f} robust SDs along its top direction"
        return RowScores(self.name, scores, flagged, reasons, group_scores(scores, flagged, inputs.groups), fits)


class ActivationClustering(Detector):
    name: ClassVar[str] = "activation_clustering"
    needs_labels = True
    cost = "2-means on 10 principal axes per class, O(n d^2); 'hidden' adds one MLP fit"

    def __init__(
        self,
        representation: str = "features",
        *,
        max_share: float = 0.35,
        min_silhouette: float = 0.3,
        max_ref_share: float = 0.05,
        axes: int = 10,
        seed: int = 0,
    ) -> None:
        self.representation, self.max_share, self.min_silhouette = representation, max_share, min_silhouette
        self.max_ref_share, self.axes, self.seed = max_ref_share, axes, seed

    def _detect(self, inputs: Inputs) -> RowScores:
        y, y_ref = inputs.labels(), inputs.y_ref
        if len(y) < 2 * MIN_CLASS_ROWS:
            return empty(self.name, len(y), "too few rows to cluster")
        rep, rep_ref, fits = representation(inputs, self.representation, self.seed)
        rng = np.random.default_rng(self.seed)
        scores, flagged = np.zeros(len(y)), np.zeros(len(y), dtype=bool)
        reasons: dict[int, str] = {}
        for c in np.unique(y):
            rows = np.flatnonzero(y == c)
            if len(rows) < 2 * MIN_CLASS_ROWS:
                continue
            ref_rows = rep_ref[y_ref == c] if rep_ref is not None and y_ref is not None else None
            verdict = self._split(rep[rows], ref_rows, rng)
            if verdict is None:
                continue
            suspect, score, why = verdict
            scores[rows] = score
            flagged[rows[suspect]] = True
            for i in rows[suspect]:
                reasons[int(i)] = f"class {inputs.classes[c]!r}: {why}"
        return RowScores(self.name, scores, flagged, reasons, group_scores(scores, flagged, inputs.groups), fits)

    def _split(self, R: Floats, ref: Floats | None, rng: np.random.Generator) -> tuple[Bools, Floats, str] | None:
        mean = R.mean(axis=0)
        axes = principal_axes(R - mean, self.axes)
        Z = (R - mean) @ axes
        labels: Ints = two_means(Z, rng)
        sizes = np.bincount(labels, minlength=2)
        if sizes.min() == 0:
            return None
        sil = silhouette(Z, labels, rng)
        centres = np.stack([Z[labels == 0].mean(axis=0), Z[labels == 1].mean(axis=0)])
        if ref is not None and len(ref) >= MIN_CLASS_ROWS:
            Zr = (ref - mean) @ axes
            ref_centre = Zr.mean(axis=0)
            far = int(np.argmax(((centres - ref_centre) ** 2).sum(axis=1)))
            ref_side = np.argmin(((Zr[:, None, :] - centres[None]) ** 2).sum(axis=2), axis=1)
            ref_share = float((ref_side == far).mean())
            foreign = sil >= self.min_silhouette and ref_share <= self.max_ref_share
            why = f"a cluster the reference lacks (silhouette {sil:.2f}, {ref_share:.0%} of the reference in it)"
        else:
            far = int(np.argmin(sizes))
            share = float(sizes[far] / len(R))
            foreign = sil >= self.min_silhouette and share <= self.max_share
            why = f"a small separate cluster ({share:.0%} of the class, silhouette {sil:.2f})"
        # score: how clearly a row belongs to the far cluster, scaled by how real the split is
        d = np.sqrt(((Z[:, None, :] - centres[None]) ** 2).sum(axis=2))
        towards = d[:, 1 - far] / np.maximum(d[:, 0] + d[:, 1], 1e-12)
        strength = min(1.0, max(0.0, sil) / max(self.min_silhouette, 1e-12))
        score = np.asarray(towards * strength, dtype=np.float64)
        suspect: Bools = (labels == far) if foreign else np.zeros(len(R), dtype=bool)
        return suspect, score, why
