"""Uniform row samples that merge: bottom-k sampling.

Every row gets a pseudo-random key in [0, 1); a sample keeps the k rows with the smallest keys. The
k smallest keys of a union are among the k smallest of each part, so merging two samples (concatenate,
keep the k smallest) gives exactly the sample of the union: a version's sample is the merge of its
ingestions' samples, and an append costs its batch, not the dataset. The keys come from a generator
seeded by the ingestion's id, so a sample can be recomputed and checked.

Drift tests compare a batch with the sample of its reference version (uniform, so the tests stay
valid); docs/validation.md gives the sizes. Samples are Arrow tables (no polars import on the ingest path).
"""

from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa

from mlwarden.data.columns import float64_values, int64_array

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
        self._parts: list[pa.Table] = []
        self._held = 0
        self._threshold = 1.0  # keys at or above it can no longer enter the sample

    def add(self, batch: pa.RecordBatch) -> None:
        keys = self._rng.random(batch.num_rows)
        keep = np.flatnonzero(keys < self._threshold)
        if len(keep) > self.capacity:  # only the batch's own k smallest can enter: take no more rows
            keep = keep[np.argpartition(keys[keep], self.capacity - 1)[: self.capacity]]
            keep.sort()
        if not len(keep):
            return
        kept = pa.Table.from_batches([batch.take(int64_array(keep))])
        column = pa.Array.from_buffers(pa.float64(), len(keep), [None, pa.py_buffer(np.ascontiguousarray(keys[keep]))])
        self._parts.append(kept.append_column(KEY, column))
        self._held += len(keep)
        if self._held >= 2 * self.capacity:
            self._compact()

    def _compact(self) -> None:
        merged = _smallest(self._parts, self.capacity)
        self._parts = [merged]
        self._held = merged.num_rows
        if merged.num_rows == self.capacity:
            self._threshold = float(merged.column(KEY)[-1].as_py())

    def table(self) -> pa.Table | None:
        """The sample with its key column, by key (None when nothing was added)."""
        if not self._parts:
            return None
        self._compact()
        return self._parts[0]


def _smallest(parts: list[pa.Table], capacity: int) -> pa.Table:
    """The ``capacity`` rows with the smallest keys, by key: chosen on the key column in NumPy (a
    partition, then a sort of the chosen only), so that the table itself is taken from once."""
    merged = pa.concat_tables(parts) if len(parts) > 1 else parts[0]
    keys = float64_values(merged.column(KEY))
    chosen = np.argpartition(keys, capacity - 1)[:capacity] if len(keys) > capacity else np.arange(len(keys))
    chosen = chosen[np.argsort(keys[chosen], kind="stable")]
    return merged.take(int64_array(chosen)).combine_chunks()


def merge_samples(samples: list[pa.Table], capacity: int) -> pa.Table | None:
    """The sample of the union of the rows the samples were drawn from."""
    present = [s for s in samples if s.num_rows]
    return _smallest(present, capacity) if present else None


def without_key(sample: pa.Table) -> pa.Table:
    return sample.drop_columns([KEY])
