"""One column, two samples: has the distribution moved? The per-column half of ``mlwarden.quality.drift``.

Numbers get the two-sample Kolmogorov-Smirnov test (Smirnov 1948), which needs no distributional
assumption and sees any change of shape, not only of the mean. Categories get Pearson's chi-squared test
of homogeneity on the 2 x K table of counts (reference row, current row). Both return raw p-values; the
correction across columns is done once for the whole batch by ``drift.drift_report``.

Effect sizes sit beside the p-values because at 100k rows a test flags differences too small to matter:
the gate decides on p-values, people read the effect sizes (Wasserstein distance in reference standard
deviations, population stability index, Jensen-Shannon distance).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt

from mlwarden.errors import UsageError
from mlwarden.quality.distributions import chi2_sf, kolmogorov_sf

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

MIN_ROWS = 10  # below this neither test's p-value is trustworthy, and a gate should not act on one
MIN_EXPECTED = 5.0  # Cochran's (1954) rule for the chi-squared approximation: expected count >= 5 per cell
HIGH_CARDINALITY = 0.5  # more distinct values than this share of rows: an identifier, not a distribution
PSI_BINS = 10  # deciles of the reference, the usual PSI binning (Siddiqi 2006)
PSI_EPSILON = 1e-4  # share given to an empty bin so that PSI stays finite
NO_TEST = "none"


class DriftKind(StrEnum):
    """How a column is compared: by its values (numeric) or by category counts (categorical)."""

    NUMERIC = "numeric"
    CATEGORICAL = "categorical"
    BINARY = "binary"  # raw bytes: no distribution to compare, always reported as not tested


@dataclass(frozen=True)
class ColumnDrift:
    """The drift test of one column. ``adjusted_p`` and ``drifted`` are set by the batch-wide correction."""

    column: str
    kind: DriftKind
    test: str  # "ks", "chi2", or "none" (then ``reason`` says why)
    statistic: float
    p_value: float
    adjusted_p: float
    drifted: bool
    scores: dict[str, float] = field(default_factory=dict)
    reference_rows: int = 0  # values that entered the comparison (non-null, finite), before any sampling
    current_rows: int = 0
    reason: str = ""

    @property
    def tested(self) -> bool:
        return self.test != NO_TEST

    def to_json(self) -> dict[str, Any]:
        return {
            "column": self.column,
            "kind": self.kind.value,
            "test": self.test,
            "statistic": self.statistic,
            "p_value": self.p_value,
            "adjusted_p": self.adjusted_p,
            "drifted": self.drifted,
            "scores": dict(self.scores),
            "reference_rows": self.reference_rows,
            "current_rows": self.current_rows,
            "reason": self.reason,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ColumnDrift:
        return cls(
            column=str(data["column"]),
            kind=DriftKind(data["kind"]),
            test=str(data["test"]),
            statistic=float(data["statistic"]),
            p_value=float(data["p_value"]),
            adjusted_p=float(data["adjusted_p"]),
            drifted=bool(data["drifted"]),
            scores={str(k): float(v) for k, v in data["scores"].items()},
            reference_rows=int(data["reference_rows"]),
            current_rows=int(data["current_rows"]),
            reason=str(data.get("reason", "")),
        )


def untested(
    column: str, kind: DriftKind, reason: str, rows: tuple[int, int] = (0, 0), scores: Mapping[str, float] | None = None
) -> ColumnDrift:
    """A column that was not tested: p = 1, so it never counts as drift and never enters the correction."""
    return ColumnDrift(column, kind, NO_TEST, 0.0, 1.0, 1.0, False, dict(scores or {}), rows[0], rows[1], reason)


def numeric_drift(
    column: str, reference: npt.ArrayLike, current: npt.ArrayLike, *, max_sample: int = 200_000, seed: int = 0
) -> ColumnDrift:
    """Two-sample Kolmogorov-Smirnov test of one numeric column, before the batch-wide correction.

    Nulls (passed as NaN), NaN and +-inf are dropped and counted in ``scores`` (``reference_nonfinite``,
    ``current_nonfinite``): KS compares distributions of finite values; a change in the share of missing
    values is the job of the quality checks. Sides larger than ``max_sample`` are reduced to a seeded
    uniform sample without replacement, which keeps the p-value valid and the run time bounded.
    The asymptotic distribution is used (``method="asymp"``): the exact one is quadratic in n, and
    with ties (integer columns) KS is conservative, so false alarms stay bounded either way.
    """
    if max_sample < MIN_ROWS:
        raise UsageError(f"max_sample must be at least {MIN_ROWS}, not {max_sample}")
    ref_all, cur_all = _as_float(reference), _as_float(current)
    ref, cur = ref_all[np.isfinite(ref_all)], cur_all[np.isfinite(cur_all)]
    counts = {
        "reference_nonfinite": float(ref_all.size - ref.size),
        "current_nonfinite": float(cur_all.size - cur.size),
    }
    rows = (int(ref.size), int(cur.size))
    reason = _too_few(*rows, "finite values")
    if reason:
        return untested(column, DriftKind.NUMERIC, reason, rows, counts)
    if ref.min() == ref.max() == cur.min() == cur.max():
        reason = f"constant: every value on both sides is {ref[0]:g}"
        return untested(column, DriftKind.NUMERIC, reason, rows, {"wasserstein": 0.0, "psi": 0.0, **counts})
    rng = np.random.default_rng(seed)
    # Sorted once here, so the sorts inside KS and Wasserstein run on sorted input and PSI can bisect.
    ref, cur = np.sort(_sample(ref, max_sample, rng)), np.sort(_sample(cur, max_sample, rng))
    statistic, p_value = _ks(ref, cur)
    scores = {"wasserstein": _wasserstein(ref, cur), "psi": _numeric_psi(ref, cur), **counts}
    return ColumnDrift(column, DriftKind.NUMERIC, "ks", statistic, p_value, p_value, False, scores, *rows)


def categorical_drift(
    column: str, reference: Mapping[str, int], current: Mapping[str, int], *, max_categories: int = 50
) -> ColumnDrift:
    """Chi-squared test of homogeneity (Pearson 1900) of category counts, before the batch-wide correction.

    The 2 x K table is built by ``category_table``: categories too rare for the chi-squared approximation,
    and those beyond the ``max_categories`` most frequent, are pooled into one "other" bucket. A category
    that appears only in the current batch has a zero in the reference row of the table, which the test
    counts as evidence of drift like any other shift of shares.
    """
    if max_categories < 1:
        raise UsageError(f"max_categories must be at least 1, not {max_categories}")
    ref, cur = _positive(reference), _positive(current)
    n_ref, n_cur = sum(ref.values()), sum(cur.values())
    rows = (n_ref, n_cur)
    reason = _too_few(n_ref, n_cur, "non-null values") or _high_cardinality(len(ref), n_ref)
    if reason:
        return untested(column, DriftKind.CATEGORICAL, reason, rows)
    new_share = sum(n for category, n in cur.items() if category not in ref) / n_cur
    table = category_table(ref, cur, max_categories=max_categories)
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2:
        single = len(ref.keys() | cur.keys()) == 1
        reason = "a single category on both sides" if single else "too few rows per category for the chi-squared test"
        return untested(column, DriftKind.CATEGORICAL, reason, rows, {"new_share": new_share})
    # No Yates correction: every cell has an expected count of at least 5, where the plain Pearson statistic
    # is accurate and Yates' is needlessly conservative (Haviland 1990).
    statistic, p_value = _chi2_homogeneity(table)
    scores = {"jensen_shannon": _jensen_shannon(table), "psi": _psi(table[0], table[1]), "new_share": new_share}
    return ColumnDrift(column, DriftKind.CATEGORICAL, "chi2", statistic, p_value, p_value, False, scores, *rows)


def category_table(ref: Mapping[str, int], cur: Mapping[str, int], *, max_categories: int = 50) -> IntArray:
    """The 2 x K contingency table (row 0 reference, row 1 current) that the chi-squared test runs on.

    Categories are ranked by their count in both batches together, not in the reference alone. Under the
    null hypothesis that ranking depends only on the table's margins, which the test conditions on, so it
    biases nothing; ranking by the reference alone would keep exactly the categories whose reference counts
    came out high by chance, and a long flat tail (a thousand categories of similar size) would then alarm
    on every batch. A category is kept when its expected count is at least 5 in both rows (Cochran 1954)
    and it is among the ``max_categories`` most frequent; the rest share one "other" bucket, which is
    folded into the smallest kept category when it is itself too small to test.
    """
    n_ref, n_cur = sum(ref.values()), sum(cur.values())
    total = n_ref + n_cur
    pooled = {c: ref.get(c, 0) + cur.get(c, 0) for c in ref.keys() | cur.keys()}
    ranked = sorted(pooled, key=lambda c: (-pooled[c], c))
    smaller = min(n_ref, n_cur)
    keep = [c for c in ranked if pooled[c] * smaller / total >= MIN_EXPECTED][:max_categories]
    ref_row, cur_row = [ref.get(c, 0) for c in keep], [cur.get(c, 0) for c in keep]
    other_ref, other_cur = n_ref - sum(ref_row), n_cur - sum(cur_row)
    if (other_ref + other_cur) * smaller / total >= MIN_EXPECTED or not keep:
        ref_row.append(other_ref)
        cur_row.append(other_cur)
    else:
        ref_row[-1] += other_ref
        cur_row[-1] += other_cur
    return np.array([ref_row, cur_row], dtype=np.int64)


def _as_float(values: npt.ArrayLike) -> FloatArray:
    """Values as float64, with datetimes as microseconds since the epoch and NaT as NaN."""
    array = np.asarray(values).ravel()
    if array.dtype.kind in "mM":
        missing = np.isnat(array)
        unit = "datetime64[us]" if array.dtype.kind == "M" else "timedelta64[us]"
        result = array.astype(unit).astype(np.int64).astype(np.float64)
        result[missing] = np.nan
        return result
    return array.astype(np.float64)


def _too_few(n_ref: int, n_cur: int, what: str) -> str:
    if n_ref == 0 or n_cur == 0:
        side = "both sides" if n_ref == n_cur == 0 else "the reference" if n_ref == 0 else "the current batch"
        return f"all values are null or non-finite in {side}"
    if min(n_ref, n_cur) < MIN_ROWS:
        return f"too few rows to test: {n_ref} reference and {n_cur} current {what}, {MIN_ROWS} needed on each side"
    return ""


def _high_cardinality(distinct: int, rows: int) -> str:
    # Judged on the reference only: a column that was categorical and turns identifier-like in the
    # current batch is itself drift, and the test sees it (the new values land in the "other" bucket).
    if distinct > HIGH_CARDINALITY * rows:
        return f"high cardinality: {distinct} distinct values in {rows} reference rows (an identifier-like column)"
    return ""


def _positive(counts: Mapping[str, int]) -> dict[str, int]:
    negative = [category for category, n in counts.items() if n < 0]
    if negative:
        raise UsageError(f"negative category counts for {negative[:3]}", hint="pass counts of rows per category")
    return {category: int(n) for category, n in counts.items() if n > 0}


def _sample(values: FloatArray, size: int, rng: np.random.Generator) -> FloatArray:
    if values.size <= size:
        return values
    return values[rng.choice(values.size, size=size, replace=False)]


def _ks(ref: FloatArray, cur: FloatArray) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov on sorted samples: D = sup |F_ref - F_cur| and its asymptotic p-value,
    Kolmogorov's limit distribution at sqrt(n m / (n + m)) D (Smirnov 1948); scipy's ks_2samp "asymp" uses the
    finite-n distribution instead, whose p-values are a little smaller: this test is the more conservative."""
    both = np.concatenate([ref, cur])
    gap = np.abs(
        np.searchsorted(ref, both, side="right") / ref.size - np.searchsorted(cur, both, side="right") / cur.size
    )
    statistic = float(gap.max())
    effective = ref.size * cur.size / (ref.size + cur.size)
    return statistic, float(min(1.0, max(0.0, kolmogorov_sf(float(np.sqrt(effective) * statistic)))))


def _chi2_homogeneity(table: IntArray) -> tuple[float, float]:
    """Pearson's chi-squared statistic of a 2 x K table against independence, and its p-value."""
    observed = table.astype(np.float64)
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0)) / observed.sum()
    statistic = float(np.sum((observed - expected) ** 2 / expected))
    dof = (observed.shape[0] - 1) * (observed.shape[1] - 1)
    return statistic, chi2_sf(int(dof), statistic)


def _wasserstein(ref: FloatArray, cur: FloatArray) -> float:
    """Earth mover's distance in units of the reference standard deviation, so columns compare (0 if constant).

    In one dimension it is the area between the two empirical CDFs (both sides sorted)."""
    scale = float(np.std(ref))
    if scale <= 0:
        return 0.0
    both = np.sort(np.concatenate([ref, cur]))
    widths = np.diff(both)
    cdf_ref = np.searchsorted(ref, both[:-1], side="right") / ref.size
    cdf_cur = np.searchsorted(cur, both[:-1], side="right") / cur.size
    return float(np.sum(np.abs(cdf_ref - cdf_cur) * widths)) / scale


def _numeric_psi(ref: FloatArray, cur: FloatArray) -> float:
    """PSI over the reference's deciles, bins (-inf, q1], (q1, q2], ..., (q9, inf); both sides sorted.

    Tied quantiles (integer or constant columns) merge their bins; closing bins on the right keeps values
    above a constant reference out of its bin, so a constant column that moved still scores.
    """
    edges = np.unique(np.quantile(ref, np.linspace(0.0, 1.0, PSI_BINS + 1)[1:-1]))
    return _psi(_bin_counts(ref, edges), _bin_counts(cur, edges))


def _bin_counts(ordered: FloatArray, edges: FloatArray) -> IntArray:
    """Counts of sorted values in the bins that ``edges`` close on the right."""
    below = np.searchsorted(ordered, edges, side="right")
    return np.diff(np.concatenate(([0], below, [ordered.size]))).astype(np.int64)


def _psi(ref_counts: npt.NDArray[Any], cur_counts: npt.NDArray[Any]) -> float:
    """Population stability index, sum of (q - p) ln(q / p) over bins (a symmetrised Kullback-Leibler)."""
    p = np.maximum(ref_counts / ref_counts.sum(), PSI_EPSILON)
    q = np.maximum(cur_counts / cur_counts.sum(), PSI_EPSILON)
    return float(np.sum((q - p) * np.log(q / p)))


def _jensen_shannon(table: IntArray) -> float:
    """Jensen-Shannon distance (base 2, so in [0, 1]) between the two rows' category shares."""
    p, q = table[0] / table[0].sum(), table[1] / table[1].sum()
    m = (p + q) / 2
    divergence = (_kl2(p, m) + _kl2(q, m)) / 2
    return float(np.sqrt(max(divergence, 0.0)))


def _kl2(p: npt.NDArray[Any], m: npt.NDArray[Any]) -> float:
    """Kullback-Leibler divergence in bits, terms with p = 0 contributing 0."""
    present = p > 0
    return float(np.sum(p[present] * np.log2(p[present] / m[present])))
