"""The detectors' one small interface: numeric rows in, a per-row suspicion score and decision out.

A ``Detector`` sees a matrix ``X`` (rows x numeric features, already encoded: ``features.encode`` turns an
Arrow table into one), optionally the labels ``y``, a group id per row (the row's source or ingestion:
``groups``) and trusted or reference rows (``X_ref``, ``y_ref``: an accepted version, or a set marked
trusted). It returns ``RowScores``: a score in [0, 1] per row (higher is more suspicious; 0.5 is where
the detector's own decision threshold lies, unless its docstring says otherwise), a boolean decision per
row, a short reason for each flagged row, and, when groups were given, one aggregate per group.

Each detector says what it needs as class attributes (``needs_labels``, ``needs_reference``,
``needs_model``) and what it costs (``cost``), so that a caller (the ingestion gate, forensics) can pick
the ones its inputs allow. Inputs that cannot be judged raise ``DetectorError`` (a ``UsageError``) with a
hint; inputs too small to say anything give an all-zero ``RowScores`` with a ``note``.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from mlwarden.errors import UsageError

Floats = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]
Ints = npt.NDArray[np.int64]

MIN_ROWS = 10


class DetectorError(UsageError):
    """A detector was given inputs it cannot judge (wrong shapes, NaN, missing labels or reference)."""

    default_hint = "encode tables with mlwarden.defense.detectors.features.encode (it imputes and scales)"


@dataclass(frozen=True)
class GroupScore:
    """One group's (source's, ingestion's) aggregate."""

    group: str
    rows: int
    flagged: int
    mean_score: float
    suspicious: bool
    reason: str = ""

    @property
    def flagged_fraction(self) -> float:
        return self.flagged / self.rows if self.rows else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "group": self.group,
            "rows": self.rows,
            "flagged": self.flagged,
            "flagged_fraction": self.flagged_fraction,
            "mean_score": self.mean_score,
            "suspicious": self.suspicious,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class RowScores:
    """What a detector says about each row (and each group)."""

    detector: str
    scores: Floats  # per row, in [0, 1]; higher is more suspicious
    flagged: Bools  # per row: the detector's decision
    reasons: Mapping[int, str] = field(default_factory=dict)  # row index -> why, for flagged rows
    groups: tuple[GroupScore, ...] = ()
    fits: int = 0  # model fits spent (the cost a benchmark reports)
    note: str = ""  # e.g. why nothing was judged
    stats: Mapping[str, float] = field(default_factory=dict)  # detector-specific numbers (e.g. oof_accuracy)

    @property
    def rows(self) -> int:
        return len(self.scores)

    @property
    def flagged_rows(self) -> Ints:
        return np.flatnonzero(self.flagged).astype(np.int64)

    @property
    def flagged_fraction(self) -> float:
        return float(self.flagged.mean()) if len(self.flagged) else 0.0

    def suspicious_groups(self) -> list[str]:
        return [g.group for g in self.groups if g.suspicious]


@dataclass(frozen=True)
class Inputs:
    """Checked inputs: float64 arrays, labels as class indices 0..k-1 (``classes`` maps them back)."""

    X: Floats
    y: Ints | None
    classes: tuple[Any, ...]
    groups: npt.NDArray[np.str_] | None
    X_ref: Floats | None
    y_ref: Ints | None

    def labels(self) -> Ints:
        if self.y is None:
            raise DetectorError("this detector needs labels (y)")
        return self.y

    def reference(self) -> Floats:
        if self.X_ref is None:
            raise DetectorError("this detector needs trusted or reference rows (X_ref)")
        return self.X_ref


class Detector(ABC):
    """A poisoning detector. Subclasses set the class attributes and implement ``_detect``."""

    name: ClassVar[str]
    needs_labels: ClassVar[bool] = False
    needs_reference: ClassVar[bool] = False  # trusted or accepted rows required
    needs_model: ClassVar[bool] = False  # trains models (see ``cost``)
    cost: ClassVar[str] = ""  # one line: time and model fits, in n rows, d features, k classes, g groups

    def detect(
        self,
        X: npt.ArrayLike,
        y: npt.ArrayLike | None = None,
        *,
        groups: Sequence[str] | npt.ArrayLike | None = None,
        X_ref: npt.ArrayLike | None = None,
        y_ref: npt.ArrayLike | None = None,
    ) -> RowScores:
        """Score every row of ``X`` (see the module docstring for the arguments)."""
        inputs = check_inputs(self, X, y, groups, X_ref, y_ref)
        if len(inputs.X) < MIN_ROWS:
            return empty(self.name, len(inputs.X), f"{len(inputs.X)} rows: too few to judge (at least {MIN_ROWS})")
        return self._detect(inputs)

    @abstractmethod
    def _detect(self, inputs: Inputs) -> RowScores: ...


def empty(name: str, rows: int, note: str) -> RowScores:
    return RowScores(name, np.zeros(rows), np.zeros(rows, dtype=bool), note=note)


def _matrix(value: npt.ArrayLike, what: str) -> Floats:
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DetectorError(f"{what} must be numeric: {exc}") from None
    if array.ndim == 1:
        array = array.reshape(-1, 1)
    if array.ndim != 2:
        raise DetectorError(f"{what} must be 2-D (rows x features), not {array.ndim}-D")
    if array.shape[1] == 0:
        raise DetectorError(f"{what} has no feature columns")
    if not np.isfinite(array).all():
        raise DetectorError(f"{what} holds NaN or infinite values")
    return array


def check_inputs(
    detector: Detector,
    X: npt.ArrayLike,
    y: npt.ArrayLike | None,
    groups: Sequence[str] | npt.ArrayLike | None,
    X_ref: npt.ArrayLike | None,
    y_ref: npt.ArrayLike | None,
) -> Inputs:
    """Shapes, types and finiteness checked; labels of both sides mapped to one set of class indices."""
    x = _matrix(X, "X")
    if detector.needs_labels and y is None:
        raise DetectorError(f"{detector.name} needs labels (y)", hint="pass y, or use a detector without labels")
    if detector.needs_reference and X_ref is None:
        raise DetectorError(
            f"{detector.name} needs trusted or reference rows (X_ref)", hint="pass X_ref (and y_ref) from a trusted set"
        )
    x_ref = _matrix(X_ref, "X_ref") if X_ref is not None else None
    if x_ref is not None and x_ref.shape[1] != x.shape[1]:
        raise DetectorError(f"X_ref has {x_ref.shape[1]} features, X has {x.shape[1]}: encode both together")
    labels, labels_ref, classes = _labels(x, y, x_ref, y_ref)
    group_ids = None
    if groups is not None:
        group_ids = np.asarray([str(g) for g in np.asarray(groups, dtype=object).ravel()])
        if len(group_ids) != len(x):
            raise DetectorError(f"groups has {len(group_ids)} entries for {len(x)} rows")
    return Inputs(x, labels, classes, group_ids, x_ref, labels_ref)


def _labels(
    x: Floats, y: npt.ArrayLike | None, x_ref: Floats | None, y_ref: npt.ArrayLike | None
) -> tuple[Ints | None, Ints | None, tuple[Any, ...]]:
    if y is None:
        return None, None, ()
    raw = np.asarray(y, dtype=object).ravel()
    if len(raw) != len(x):
        raise DetectorError(f"y has {len(raw)} labels for {len(x)} rows")
    raw_ref = None
    if y_ref is not None:
        raw_ref = np.asarray(y_ref, dtype=object).ravel()
        if x_ref is None or len(raw_ref) != len(x_ref):
            raise DetectorError("y_ref needs X_ref with one row per label")
    values = list(raw) + (list(raw_ref) if raw_ref is not None else [])
    classes = tuple(sorted(set(values), key=lambda v: (str(type(v)), str(v))))
    index = {c: i for i, c in enumerate(classes)}
    codes = np.fromiter((index[v] for v in raw), dtype=np.int64, count=len(raw))
    codes_ref = None
    if raw_ref is not None:
        codes_ref = np.fromiter((index[v] for v in raw_ref), dtype=np.int64, count=len(raw_ref))
    return codes, codes_ref, classes


# -- group aggregates -----------------------------------------------------------------------------------------


def binomial_sf(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p), exactly (log-space sum; no scipy import on the gate's path)."""
    if k <= 0:
        return 1.0
    if k > n or p <= 0.0:
        return 0.0
    if p >= 1.0:
        return 1.0
    i = np.arange(k, n + 1, dtype=np.float64)
    log_terms = (
        math.lgamma(n + 1)
        - np.array([math.lgamma(v + 1) for v in i])
        - np.array([math.lgamma(n - v + 1) for v in i])
        + i * math.log(p)
        + (n - i) * math.log1p(-p)
    )
    top = float(log_terms.max())
    return float(min(1.0, math.exp(top) * np.exp(log_terms - top).sum()))


def group_scores(
    scores: Floats,
    flagged: Bools,
    groups: npt.NDArray[np.str_] | None,
    *,
    alpha: float = 0.01,
    min_fraction: float = 0.05,
) -> tuple[GroupScore, ...]:
    """Per group: rows, flagged rows, mean score, and whether the group holds significantly more flagged
    rows than the others (one-sided binomial test against the other groups' flagged rate, Bonferroni over
    groups, and at least ``min_fraction`` of the group flagged)."""
    if groups is None:
        return ()
    names, inverse = np.unique(groups, return_inverse=True)
    rows = np.bincount(inverse, minlength=len(names))
    hits = np.bincount(inverse, weights=flagged.astype(np.float64), minlength=len(names)).astype(np.int64)
    sums = np.bincount(inverse, weights=scores, minlength=len(names))
    total_rows, total_hits = int(rows.sum()), int(hits.sum())
    out = []
    for i, name in enumerate(names):
        n, k = int(rows[i]), int(hits[i])
        other_n, other_k = total_rows - n, total_hits - k
        base = (other_k + 1) / (other_n + 2)  # the others' flagged rate (Laplace: never 0)
        p_value = binomial_sf(k, n, base) * len(names)
        fraction = k / n if n else 0.0
        suspicious = len(names) > 1 and p_value < alpha and fraction >= min_fraction
        reason = f"{k} of {n} rows flagged ({fraction:.1%}; the other groups {base:.1%})" if suspicious else ""
        out.append(GroupScore(str(name), n, k, float(sums[i] / n) if n else 0.0, suspicious, reason))
    return tuple(out)
