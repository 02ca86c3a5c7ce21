"""An Arrow table (and its reference) as the numeric matrix the detectors read.

* Numbers and booleans: floats; nulls, NaN and infinities imputed with the base's median, plus a
  ``COLUMN.missing`` indicator when either side has any; then centred on the base's median and divided by
  its robust spread (IQR / 1.349, else the standard deviation, else 1), clipped to +-50.
* Strings and binaries: one-hot over the base's most frequent values (at most ``max_categories``),
  dropping the most frequent one, so a value the base never saw encodes like the most frequent one
  (an unseen category is the contract's and drift's business, not a poisoning signal). Columns with more
  values: the value's share in the base, standardised.
* Skipped: times and dates (they move with every batch), identifiers (integers or strings all distinct
  in the base: a new batch brings new ones, which says nothing about poisoning) and columns constant in
  both sides.

The base is the reference when there is one (both sides then live in the reference's coordinates), else
the batch. Labels are returned as given (Python values), not encoded.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from mlwarden.data.columns import float64_values
from mlwarden.defense.detectors.interface import Floats

MAX_CATEGORIES = 20
CLIP = 50.0
MIN_ID_ROWS = 10
SPREAD_FLOOR = 1e-9


@dataclass(frozen=True)
class Encoded:
    X: Floats
    X_ref: Floats | None
    y: list[Any] | None
    y_ref: list[Any] | None
    features: tuple[str, ...]
    skipped: dict[str, str] = field(default_factory=dict)  # column -> why it is not a feature


def encode(
    table: pa.Table,
    reference: pa.Table | None = None,
    *,
    label_column: str | None = None,
    max_categories: int = MAX_CATEGORIES,
) -> Encoded:
    """Encode ``table`` (and ``reference``, in the same coordinates); see the module docstring."""
    base = reference if reference is not None else table
    columns, names, skipped = [], [], {}
    ref_columns: list[Floats] = []
    for name in table.column_names:
        if name == label_column:
            continue
        if reference is not None and name not in reference.column_names:
            skipped[name] = "not in the reference"
            continue
        kind = table.schema.field(name).type
        why = _skip_reason(kind, base.column(name))
        if why:
            skipped[name] = why
            continue
        if _numeric(kind):
            parts = _numbers(name, table.column(name), reference)
        else:
            parts = _categories(name, table.column(name), reference, max_categories)
        for label, values, ref_values in parts:
            if _constant(values, ref_values):
                skipped.setdefault(name, "constant")
                continue
            names.append(label)
            columns.append(values)
            if ref_values is not None:
                ref_columns.append(ref_values)
    rows, ref_rows = table.num_rows, reference.num_rows if reference is not None else 0
    X = np.column_stack(columns) if columns else np.zeros((rows, 0))
    X_ref = None
    if reference is not None:
        X_ref = np.column_stack(ref_columns) if ref_columns else np.zeros((ref_rows, 0))
    y = y_ref = None
    if label_column is not None and label_column in table.column_names:
        y = table.column(label_column).to_pylist()
        if reference is not None and label_column in reference.column_names:
            y_ref = reference.column(label_column).to_pylist()
    return Encoded(X, X_ref, y, y_ref, tuple(names), skipped)


def _constant(values: Floats, ref_values: Floats | None) -> bool:
    both = values if ref_values is None else np.concatenate([values, ref_values])
    return len(both) == 0 or bool(np.all(both == both[0]))


def _numeric(kind: pa.DataType) -> bool:
    return bool(
        pa.types.is_integer(kind)
        or pa.types.is_floating(kind)
        or pa.types.is_boolean(kind)
        or pa.types.is_decimal(kind)
    )


def _skip_reason(kind: pa.DataType, base: pa.ChunkedArray) -> str:
    if pa.types.is_temporal(kind):
        return "a time column: it moves with every batch"
    textual = pa.types.is_string(kind) or pa.types.is_large_string(kind)
    if pa.types.is_integer(kind) or textual:
        values = base.drop_null()
        if len(values) >= MIN_ID_ROWS and len(values.unique()) == len(values):
            return "an identifier: every value is distinct"
        return ""
    if _numeric(kind):
        return ""
    if pa.types.is_binary(kind) or pa.types.is_large_binary(kind) or pa.types.is_dictionary(kind):
        return ""
    return f"type {kind} is not encoded"


def _floats(column: pa.ChunkedArray) -> Floats:
    # Read from Arrow's buffers: to_numpy() on a column with nulls imports pandas (0.3 s per ingestion).
    values = np.array(float64_values(column), dtype=np.float64)  # a writable copy
    values[~np.isfinite(values)] = np.nan
    return values


Part = tuple[str, Floats, Floats | None]


def _numbers(name: str, column: pa.ChunkedArray, reference: pa.Table | None) -> list[Part]:
    values = _floats(column)
    ref_values = _floats(reference.column(name)) if reference is not None else None
    base_values = ref_values if ref_values is not None else values
    finite = base_values[np.isfinite(base_values)]
    if not len(finite):  # all null in the base: only the missing indicator can say anything
        finite = values[np.isfinite(values)]
    median = float(np.median(finite)) if len(finite) else 0.0
    q1, q3 = np.quantile(finite, [0.25, 0.75]) if len(finite) else (0.0, 0.0)
    scale = _spread(float(q3 - q1) / 1.349, float(finite.std()) if len(finite) else 0.0, centre=median)
    parts: list[Part] = []
    missing = np.isnan(values)
    ref_missing = np.isnan(ref_values) if ref_values is not None else None
    if missing.any() or (ref_missing is not None and ref_missing.any()):
        parts.append((f"{name}.missing", missing.astype(np.float64), _as_float(ref_missing)))

    def scaled(v: Floats) -> Floats:
        return np.clip((np.where(np.isnan(v), median, v) - median) / scale, -CLIP, CLIP)

    parts.append((name, scaled(values), scaled(ref_values) if ref_values is not None else None))
    return parts


def _spread(*candidates: float, centre: float) -> float:
    """The first candidate spread that is more than float noise around ``centre``, else 1.

    The standard deviation of a constant column can come out as 1e-19 rather than 0; dividing by it
    would put every other value at the clip bound."""
    floor = SPREAD_FLOOR * max(1.0, abs(centre))
    return next((s for s in candidates if s > floor), 1.0)


def _as_float(mask: Any) -> Floats | None:
    return None if mask is None else np.asarray(mask, dtype=np.float64)


def _categories(name: str, column: pa.ChunkedArray, reference: pa.Table | None, max_categories: int) -> list[Part]:
    values = column.to_pylist()
    ref_values = reference.column(name).to_pylist() if reference is not None else None
    counts = Counter(ref_values if ref_values is not None else values)
    ordered = [v for v, _ in counts.most_common()]
    if len(ordered) <= max_categories:
        # the most frequent value is the all-zeros row
        return [
            (
                f"{name}={value}",
                np.fromiter((v == value for v in values), dtype=np.float64, count=len(values)),
                np.fromiter((v == value for v in ref_values), dtype=np.float64, count=len(ref_values))
                if ref_values is not None
                else None,
            )
            for value in ordered[1:]
        ]
    total = sum(counts.values())
    share = {v: c / total for v, c in counts.items()}
    encoded = np.fromiter((share.get(v, 0.0) for v in values), dtype=np.float64, count=len(values))
    ref_encoded = (
        np.fromiter((share.get(v, 0.0) for v in ref_values), dtype=np.float64, count=len(ref_values))
        if ref_values is not None
        else None
    )
    base_encoded = ref_encoded if ref_encoded is not None else encoded
    centre = float(np.median(base_encoded))
    spread = _spread(float(base_encoded.std()), centre=centre)
    return [
        (
            f"{name}.frequency",
            np.clip((encoded - centre) / spread, -CLIP, CLIP),
            np.clip((ref_encoded - centre) / spread, -CLIP, CLIP) if ref_encoded is not None else None,
        )
    ]
