"""Scanning a whole dataset version for poison, and tracing it to the sources that brought it.

Every row is scored by the detectors its data allows (docs/defenses.md); a row's suspicion is its highest
score, with the detector and the reason behind it. Detectors that compare against trusted rows judge each
group (a source, or an ingestion) against all the *other* groups' rows: a poisoned source stands out from
everyone else's data, and no trusted set is needed when there are at least two sources. Groups are then
ranked by how many more flagged rows they hold than the rest (a one-sided binomial test), and a what-if
retraining without the top suspect shows what it does to a simple model's accuracy on the others' rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from mlwarden.defense.detectors import (
    ActivationClustering,
    ConfidentLabels,
    Detector,
    DuplicateFlood,
    Encoded,
    GroupRoni,
    KnnLabels,
    ProvenanceDefense,
    ReferenceOutliers,
    RowScores,
    SpectralSignature,
    encode,
)
from mlwarden.defense.detectors.interface import binomial_sf

SUSPECT_P_VALUE = 1e-3
MIN_GROUP_ROWS = 20  # a smaller group is judged within the others' reference only when it has this many


@dataclass(frozen=True)
class DetectorRun:
    name: str
    flagged: int
    note: str = ""


@dataclass(frozen=True)
class Scan:
    """Per row: the highest suspicion, which detector gave it and why; and what each detector did."""

    scores: npt.NDArray[np.float64]
    flagged: npt.NDArray[np.bool_]
    detector: list[str]
    reason: list[str]
    runs: list[DetectorRun]
    skipped: dict[str, str]  # columns not used as features, and why

    def top(self, limit: int) -> list[int]:
        """The most suspicious flagged rows, most suspicious first."""
        order = np.argsort(-self.scores, kind="stable")
        return [int(i) for i in order if self.flagged[i]][:limit]


@dataclass(frozen=True)
class GroupRank:
    group: str
    rows: int
    flagged: int
    others_rate: float  # the flagged fraction of every other group's rows together
    p_value: float
    mean_score: float

    @property
    def fraction(self) -> float:
        return self.flagged / self.rows if self.rows else 0.0

    @property
    def suspected(self) -> bool:
        return self.p_value < SUSPECT_P_VALUE and self.fraction >= 2 * self.others_rate

    def to_json(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "rows": self.rows,
            "flagged": self.flagged,
            "fraction": self.fraction,
            "others_rate": self.others_rate,
            "p_value": self.p_value,
            "mean_score": self.mean_score,
            "suspected": self.suspected,
        }


def scan_table(table: pa.Table, label: str | None, groups: Sequence[str], trusted: pa.Table | None = None) -> Scan:
    """Score every row of ``table`` (``groups``: each row's source or ingestion). With ``trusted`` rows
    (a version marked trusted), the reference-needing detectors judge every row against them, and the
    retraining detectors (provenance per group, RONI) measure harm on them; without, each group is judged
    against the other groups."""
    encoded = encode(table, trusted, label_column=label)
    group_ids = np.asarray(groups, dtype=object).astype(str)
    n = table.num_rows
    best, flagged = np.zeros(n), np.zeros(n, dtype=bool)
    named_by = np.full(n, -1.0)  # the score of the flagging detector a row's reason comes from
    detector, reason = [""] * n, [""] * n
    runs: list[DetectorRun] = []
    if encoded.X.shape[1] == 0:
        return Scan(best, flagged, detector, reason, [DetectorRun("features", 0, "no usable column")], encoded.skipped)
    for result in _results(encoded, group_ids):
        runs.append(DetectorRun(result.detector, int(result.flagged.sum()), result.note))
        best, flagged = np.maximum(best, result.scores), flagged | result.flagged
        take = result.flagged & (result.scores > named_by)  # the most confident flagging detector explains
        for i in np.flatnonzero(take):
            detector[i], reason[i] = result.detector, result.reasons.get(int(i), "")
        named_by = np.where(take, result.scores, named_by)
    return Scan(best, flagged, detector, reason, runs, encoded.skipped)


def _results(encoded: Encoded, groups: npt.NDArray[np.str_]) -> list[RowScores]:
    X, (y, y_ref) = encoded.X, _labels(encoded)  # noqa: N806
    labelled = y is not None and len(set(y.tolist())) > 1
    results: list[RowScores] = []
    if labelled:
        results += [ConfidentLabels("softmax").detect(X, y), KnnLabels().detect(X, y)]
    results.append(DuplicateFlood().detect(X, y, groups=groups))
    referenced: list[Detector] = [ReferenceOutliers()]
    if labelled:
        referenced += [SpectralSignature(), ActivationClustering()]
    if encoded.X_ref is not None and len(encoded.X_ref) >= MIN_GROUP_ROWS:
        results += [d.detect(X, y, X_ref=encoded.X_ref, y_ref=y_ref) for d in referenced]
        if labelled and y_ref is not None:
            results += [d.detect(X, y, groups=groups, X_ref=encoded.X_ref, y_ref=y_ref) for d in _retraining(groups)]
    elif len(set(groups.tolist())) > 1:
        results += [_each_against_the_rest(d, X, y, groups) for d in referenced]
    return results


def _retraining(groups: npt.NDArray[np.str_]) -> list[Detector]:
    return [ProvenanceDefense(), GroupRoni()] if len(set(groups.tolist())) > 1 else [GroupRoni()]


def _labels(encoded: Encoded) -> tuple[npt.NDArray[np.int64] | None, npt.NDArray[np.int64] | None]:
    """The labels of the rows and of the trusted rows as class indices of one set (whatever their type)."""
    if encoded.y is None:
        return None, None
    both = list(encoded.y) + list(encoded.y_ref or [])
    index = {c: i for i, c in enumerate(sorted(set(both), key=lambda v: (str(type(v)), str(v))))}

    def codes(values: list[Any]) -> npt.NDArray[np.int64]:
        return np.fromiter((index[v] for v in values), dtype=np.int64, count=len(values))

    return codes(encoded.y), None if encoded.y_ref is None else codes(encoded.y_ref)


def _each_against_the_rest(detector: Detector, X: Any, y: Any, groups: npt.NDArray[np.str_]) -> RowScores:  # noqa: N803
    """Each group's rows judged with every other group's rows as the reference."""
    scores, flagged = np.zeros(len(X)), np.zeros(len(X), dtype=bool)
    reasons: dict[int, str] = {}
    notes = []
    for group in sorted(set(groups.tolist())):
        inside = np.flatnonzero(groups == group)
        outside = groups != group
        if len(inside) < MIN_GROUP_ROWS:
            notes.append(f"{group}: {len(inside)} rows, not judged")
            continue
        y_in = None if y is None else y[inside]
        y_out = None if y is None else y[outside]
        part = detector.detect(X[inside], y_in, X_ref=X[outside], y_ref=y_out)
        scores[inside], flagged[inside] = part.scores, part.flagged
        reasons.update({int(inside[i]): why for i, why in part.reasons.items()})
        if part.note:
            notes.append(f"{group}: {part.note}")
    return RowScores(detector.name, scores, flagged, reasons, note="; ".join(notes))


def rank_groups(scan: Scan, groups: Sequence[str]) -> list[GroupRank]:
    """Groups by suspicion: the most significant excess of flagged rows over the other groups first."""
    group_ids = np.asarray(groups, dtype=object).astype(str)
    ranks = []
    for group in sorted(set(group_ids.tolist())):
        inside = group_ids == group
        rows, hits = int(inside.sum()), int(scan.flagged[inside].sum())
        others = int((~inside).sum())
        rate = float(scan.flagged[~inside].sum()) / others if others else 0.0
        # A floor keeps a perfectly clean rest from making one flagged row damning.
        p_value = binomial_sf(hits, rows, max(rate, 1.0 / max(others, 1), 1e-3))
        ranks.append(GroupRank(group, rows, hits, rate, p_value, float(scan.scores[inside].mean()) if rows else 0.0))
    return sorted(ranks, key=lambda r: (r.p_value, -r.fraction, r.group))


def what_if(table: pa.Table, label: str, groups: Sequence[str], drop: str, *, seed: int = 0) -> dict[str, Any]:
    """A logistic regression trained with and without group ``drop``, both tested on held-out rows of the
    other groups (30%): does the suspect help or hurt the others' accuracy?"""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split

    encoded = encode(table, None, label_column=label)
    if encoded.y is None or encoded.X.shape[1] == 0:
        return {"dropped": drop, "note": "no label or no features: nothing to retrain"}
    X, (y, _) = encoded.X, _labels(encoded)  # noqa: N806
    assert y is not None  # noqa: S101 - checked above
    group_ids = np.asarray(groups, dtype=object).astype(str)
    rest = np.flatnonzero(group_ids != drop)
    if len(rest) < 20 or len(set(y[rest].tolist())) < 2:
        return {"dropped": drop, "note": "too few rows of the other groups to test on"}
    stratify = y[rest] if min(np.unique(y[rest], return_counts=True)[1]) >= 2 else None
    train, test = train_test_split(rest, test_size=0.3, random_state=seed, stratify=stratify)
    suspect = np.flatnonzero(group_ids == drop)
    with_it = np.concatenate([train, suspect])
    accuracy = {}
    for name, rows in (("with", with_it), ("without", train)):
        if len(set(y[rows].tolist())) < 2:
            return {"dropped": drop, "note": f"the training rows {name} the suspect hold one class"}
        model = LogisticRegression(max_iter=1000).fit(X[rows], y[rows])
        accuracy[name] = float((model.predict(X[test]) == y[test]).mean())
    return {
        "dropped": drop,
        "test_rows": len(test),
        "accuracy_with": accuracy["with"],
        "accuracy_without": accuracy["without"],
        "gain_without": accuracy["without"] - accuracy["with"],
    }
