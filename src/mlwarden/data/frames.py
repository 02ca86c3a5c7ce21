"""A version's rows as polars frames with provenance columns, their statistics and their JSON form."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import numpy as np
import polars as pl

from mlwarden.data.rows import Chunk
from mlwarden.data.schema import Schema

POSITION, INGESTION, DIGEST = "_position", "_ingestion", "_digest"
PROVENANCE = (POSITION, INGESTION, DIGEST)


def frame(chunk: Chunk) -> pl.DataFrame:
    """The chunk as a polars frame with its provenance columns appended."""
    data = pl.DataFrame(chunk.batch)
    n = chunk.batch.num_rows
    return data.with_columns(
        pl.Series(POSITION, np.arange(chunk.position, chunk.position + n, dtype=np.int64)),
        pl.Series(INGESTION, [chunk.piece.ingestion] * n, dtype=pl.String),
        pl.Series(DIGEST, [d.tobytes() for d in chunk.digests], dtype=pl.Binary),
    )


def jsonable_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """A row's values as JSON: floats stay numbers unless not finite ("NaN", "inf"), times ISO 8601."""
    return {key: _json_value(value) for key, value in row.items()}


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    return value


def column_stats(data: pl.DataFrame, schema: Schema) -> dict[str, dict[str, Any]]:
    """Per column: count and nulls; min, max, mean and std for numbers; min and max for times; distinct
    values for strings and booleans."""
    stats: dict[str, dict[str, Any]] = {}
    for column in schema.columns:
        series = data.get_column(column.name)
        entry: dict[str, Any] = {"count": series.len(), "nulls": series.null_count()}
        if series.len() > series.null_count():
            entry.update(_typed_stats(series))
        stats[column.name] = {k: _json_value(v) for k, v in entry.items()}
    return stats


def _typed_stats(series: pl.Series) -> dict[str, Any]:
    if series.dtype.is_numeric():
        floats = series.cast(pl.Float64)
        return {"min": floats.min(), "max": floats.max(), "mean": floats.mean(), "std": floats.std()}
    if series.dtype.is_temporal():
        return {"min": series.min(), "max": series.max()}
    return {"distinct": series.n_unique()}
