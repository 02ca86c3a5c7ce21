"""Uniform row samples that merge: bottom-k sampling.

Every row gets a pseudo-random key in [0, 1); a sample keeps the k rows with the smallest keys. The
k smallest keys of a union are among the k smallest of each part, so merging two samples (concatenate,
keep the k smallest) gives exactly the sample of the union: a version's sample is the merge of its
ingestions' samples, and an append costs its batch, not the dataset. The keys come from a generator
seeded by the ingestion's id, so a sample can be recomputed and checked.

Drift tests compare a batch with the sample of its reference version (uniform, so the tests stay
valid); docs/validation.md gives the sizes.
"""

from __future__ import annotations

import hashlib

import numpy as np
import polars as pl
import pyarrow as pa

KEY = "__mlwarden_key"
STORED_ROWS = 20_000  # kept per ingestion (the reference side of drift tests)
BATCH_ROWS = 50_000  # kept of an incoming batch for its drift tests


def seed_for(name: str) -> int:
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little")


class BottomK:
    """The k rows with the smallest keys among all rows added so far."""

    def __init__(self, capacity: int, seed: int) -> None:
        self.capacity = capacity
        self._rng = np.random.default_rng(seed)
        self._parts: list[pl.DataFrame] = []
        self._held = 0
        self._threshold = 1.0  # keys at or above it can no longer enter the sample

    def add(self, batch: pa.RecordBatch) -> None:
        keys = self._rng.random(batch.num_rows)
        keep = np.flatnonzero(keys < self._threshold)
        if not len(keep):
            return
        frame = pl.DataFrame(batch.take(pa.array(keep)))
        self._parts.append(frame.with_columns(pl.Series(KEY, keys[keep])))
        self._held += len(keep)
        if self._held >= 2 * self.capacity:
            self._compact()

    def _compact(self) -> None:
        merged = pl.concat(self._parts).sort(KEY).head(self.capacity)
        self._parts = [merged]
        self._held = merged.height
        if merged.height == self.capacity:
            self._threshold = float(merged[KEY][-1])

    def frame(self) -> pl.DataFrame | None:
        """The sample with its key column (None when nothing was added)."""
        if not self._parts:
            return None
        self._compact()
        return self._parts[0]


def merge_samples(samples: list[pl.DataFrame], capacity: int) -> pl.DataFrame | None:
    """The sample of the union of the rows the samples were drawn from."""
    present = [s for s in samples if s.height]
    if not present:
        return None
    return pl.concat(present).sort(KEY).head(capacity)


def without_key(sample: pl.DataFrame) -> pl.DataFrame:
    return sample.drop(KEY)
