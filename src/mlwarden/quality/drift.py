"""Drift tests for the ingestion gate: is a new batch drawn from the same distribution as the accepted data?

Every column is tested on its own (``drift_tests``: Kolmogorov-Smirnov for numbers, chi-squared for
categories), then the p-values of all tested columns and the label are corrected together. Without the
correction a batch of 20 unchanged columns would trip a 1% gate on some column about 18% of the time; with
Holm's step-down procedure (Holm 1979, the default) the chance that an unchanged batch is flagged on any
column is at most ``alpha``, whatever the dependence between columns. Bonferroni gives the same guarantee
with less power; Benjamini-Hochberg (1995) controls the false discovery rate instead, which equals the
family-wise rate only when nothing drifted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mlwarden.data.columns import float64_values
from mlwarden.data.schema import Column, ColumnType, Schema
from mlwarden.errors import UsageError
from mlwarden.quality.drift_tests import (
    ColumnDrift,
    DriftKind,
    FloatArray,
    categorical_drift,
    category_table,
    numeric_drift,
    untested,
)

if TYPE_CHECKING:
    import polars as pl

__all__ = [
    "ColumnDrift",
    "Correction",
    "DriftKind",
    "DriftReport",
    "adjust",
    "categorical_drift",
    "category_table",
    "drift_report",
    "numeric_drift",
]

_NUMERIC_TYPES = frozenset(
    {ColumnType.INT, ColumnType.FLOAT, ColumnType.DECIMAL, ColumnType.DATE, ColumnType.TIMESTAMP}
    | {ColumnType.TIMESTAMP_UTC}
)
_CATEGORICAL_TYPES = frozenset({ColumnType.STRING, ColumnType.BOOL})


class Correction(StrEnum):
    """Multiple-testing corrections: what the gate's ``alpha`` bounds."""

    HOLM = "holm"  # family-wise error rate, step-down (Holm 1979): uniformly more powerful than Bonferroni
    BONFERRONI = "bonferroni"  # family-wise error rate, single step
    BH = "bh"  # false discovery rate (Benjamini & Hochberg 1995), valid for independent or PRDS p-values


@dataclass(frozen=True)
class DriftReport:
    """The drift tests of one batch against its reference, after the correction across columns."""

    alpha: float
    correction: str
    columns: tuple[ColumnDrift, ...]
    label: ColumnDrift | None = None

    @property
    def drifted(self) -> bool:
        """True when any column or the label drifted: the batch should not pass the gate unreviewed."""
        return bool(self.drifted_columns())

    def drifted_columns(self) -> list[str]:
        """The drifted columns in schema order, then the label column if its distribution moved."""
        return [d.column for d in self._all() if d.drifted]

    def untested_columns(self) -> dict[str, str]:
        """Column -> why it was not tested; not drift, but nothing vouches for these columns either."""
        return {d.column: d.reason for d in self._all() if not d.tested}

    def to_json(self) -> dict[str, Any]:
        return {
            "alpha": self.alpha,
            "correction": self.correction,
            "drifted": self.drifted,
            "columns": [d.to_json() for d in self.columns],
            "label": self.label.to_json() if self.label is not None else None,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DriftReport:
        label = data.get("label")
        return cls(
            alpha=float(data["alpha"]),
            correction=str(data["correction"]),
            columns=tuple(ColumnDrift.from_json(item) for item in data["columns"]),
            label=ColumnDrift.from_json(label) if label is not None else None,
        )

    def _all(self) -> list[ColumnDrift]:
        return [*self.columns, *([self.label] if self.label is not None else [])]


def adjust(p_values: Sequence[float], method: str = "holm") -> list[float]:
    """Adjusted p-values, in the input order: reject hypothesis i at level alpha when ``adjusted[i] < alpha``.

    Holm (1979): the i-th smallest p-value times (m - i + 1), made non-decreasing by a running maximum.
    Bonferroni: p times m. Benjamini-Hochberg (1995): the i-th smallest times m / i, made non-decreasing by
    a running minimum from the largest down. All clipped to [0, 1]; a smaller p never gets a larger
    adjusted p.
    """
    correction = _correction(method)
    p = np.asarray(p_values, dtype=np.float64)
    if p.size == 0:
        return []
    if not np.all((p >= 0.0) & (p <= 1.0)):  # also catches NaN
        raise UsageError("p-values must lie in [0, 1]", hint="a test that could not run should be left out")
    m = p.size
    order = np.argsort(p, kind="stable")
    ranked = p[order]
    if correction is Correction.BONFERRONI:
        adjusted = ranked * m
    elif correction is Correction.HOLM:
        adjusted = np.maximum.accumulate(ranked * (m - np.arange(m)))
    else:
        adjusted = np.minimum.accumulate((ranked * m / np.arange(1, m + 1))[::-1])[::-1]
    result = np.empty(m)
    result[order] = np.minimum(adjusted, 1.0)
    return [float(x) for x in result]


def drift_report(
    reference: pa.Table | pl.DataFrame,
    current: pa.Table | pl.DataFrame,
    schema: Schema,
    *,
    alpha: float = 0.01,
    correction: str = "holm",
    label_column: str | None = None,
    columns: Sequence[str] | None = None,
    seed: int = 0,
) -> DriftReport:
    """Test every column of ``schema`` (or ``columns``) and the label for drift, then correct across them.

    Types decide the test: int, float, decimal, date and timestamps are numeric (KS); string and bool are
    categorical (chi-squared); binary is not tested. Ints stay numeric even with few distinct values, since
    KS is valid (conservative) with ties, but the label is always categorical: a class-balance shift is what
    label drift means. A column that cannot be tested (all null, constant, too few rows, identifier-like,
    absent from a batch) is reported with test "none" and its reason, and stays out of the correction.
    ``seed`` fixes the subsample of very large columns, so a report can be reproduced.
    """
    reference, current = _arrow(reference), _arrow(current)
    method = _correction(correction)
    if not 0.0 < alpha < 1.0:
        raise UsageError(f"alpha must lie strictly between 0 and 1, not {alpha}")
    names = list(columns) if columns is not None else schema.names
    raw = [_column_drift(reference, current, schema.column(name), seed) for name in names if name != label_column]
    if label_column is not None:
        schema.column(label_column)  # a label that is not in the contract is a usage error
        raw.append(_label_drift(reference, current, label_column))
    tested = [i for i, d in enumerate(raw) if d.tested]
    adjusted = adjust([raw[i].p_value for i in tested], method)
    for i, p in zip(tested, adjusted, strict=True):
        raw[i] = replace(raw[i], adjusted_p=p, drifted=p < alpha)
    label = raw.pop() if label_column is not None else None
    return DriftReport(alpha=alpha, correction=method.value, columns=tuple(raw), label=label)


def _arrow(data: pa.Table | pl.DataFrame) -> pa.Table:
    """Arrow tables as they are; a polars frame (the SDK accepts one) converted."""
    return data if isinstance(data, pa.Table) else data.to_arrow()


def _correction(method: str) -> Correction:
    try:
        return Correction(method)
    except ValueError:
        choices = ", ".join(c.value for c in Correction)
        raise UsageError(f"unknown correction {method!r}", hint=f"use one of: {choices}") from None


def _column_drift(reference: pa.Table, current: pa.Table, column: Column, seed: int) -> ColumnDrift:
    kind = _kind(column.type)
    missing = _missing(reference, current, column.name)
    if missing:
        return untested(column.name, kind, missing)
    if kind is DriftKind.NUMERIC:
        return numeric_drift(column.name, _numbers(reference, column.name), _numbers(current, column.name), seed=seed)
    if kind is DriftKind.CATEGORICAL:
        return categorical_drift(column.name, _counts(reference, column.name), _counts(current, column.name))
    return untested(column.name, kind, "binary column: raw bytes have no distribution to compare")


def _label_drift(reference: pa.Table, current: pa.Table, name: str) -> ColumnDrift:
    missing = _missing(reference, current, name)
    if missing:
        return untested(name, DriftKind.CATEGORICAL, missing)
    return categorical_drift(name, _counts(reference, name), _counts(current, name))


def _kind(column_type: ColumnType) -> DriftKind:
    if column_type in _NUMERIC_TYPES:
        return DriftKind.NUMERIC
    if column_type in _CATEGORICAL_TYPES:
        return DriftKind.CATEGORICAL
    return DriftKind.BINARY


def _missing(reference: pa.Table, current: pa.Table, name: str) -> str:
    sides = [side for side, t in (("reference", reference), ("current batch", current)) if name not in t.column_names]
    return f"column missing from the {' and the '.join(sides)}" if sides else ""


def _numbers(table: pa.Table, name: str) -> FloatArray:
    """A column as float64 with nulls as NaN; dates and timestamps by their physical value (days, microseconds)."""
    floats: FloatArray = float64_values(table.column(name))
    return floats


def _counts(table: pa.Table, name: str) -> dict[str, int]:
    """Non-null category -> rows; bools become "true"/"false", other types their string form."""
    column = table.column(name)
    text = column if pa.types.is_large_string(column.type) else pc.cast(column, pa.large_string())
    counted = pc.value_counts(pc.drop_null(text))
    # two flat lists, not a list of dicts: 5x faster on high-cardinality columns (ids)
    return dict(zip(counted.field("values").to_pylist(), counted.field("counts").to_pylist(), strict=True))
