"""What the gate's batch-level steps see: the incoming batch beside its reference."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pyarrow as pa

from mlwarden.data.schema import Schema

if TYPE_CHECKING:
    import polars as pl


@dataclass(frozen=True)
class Evidence:
    schema: Schema
    label_column: str | None
    current: pa.Table  # the batch, or a uniform sample of it (quality.sample.BATCH_ROWS rows)
    current_rows: int  # rows in the whole batch
    reference: pa.Table | None  # a uniform sample of the reference version; None: no reference yet
    reference_version: int | None
    source: str | None = None
    _frames: dict[str, pl.DataFrame] = field(default_factory=dict, repr=False, compare=False)

    def current_frame(self) -> pl.DataFrame:
        """The batch as a polars frame (made once; polars loads only for steps that use it)."""
        return self._frame("current", self.current)

    def reference_frame(self) -> pl.DataFrame | None:
        return self._frame("reference", self.reference) if self.reference is not None else None

    def _frame(self, name: str, table: pa.Table) -> pl.DataFrame:
        if name not in self._frames:
            import polars as pl

            self._frames[name] = pl.DataFrame(table)
        return self._frames[name]
