"""What the gate's batch-level steps see: the incoming batch beside its reference."""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from mlwarden.data.schema import Schema


@dataclass(frozen=True)
class Evidence:
    schema: Schema
    label_column: str | None
    current: pl.DataFrame  # the batch, or a uniform sample of it (quality.sample.BATCH_ROWS rows)
    current_rows: int  # rows in the whole batch
    reference: pl.DataFrame | None  # a uniform sample of the reference version; None: no reference yet
    reference_version: int | None
    source: str | None = None
