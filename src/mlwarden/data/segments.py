"""Segments: the rows one ingestion brought, stored once as a Parquet (zstd) blob.

A version never copies rows: it lists pieces of segments (``versions.Piece``). Reading a segment goes
through the blob store, which re-checks the blob's digest before a byte is used (invariant 2).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import AbstractContextManager

import pyarrow as pa
import pyarrow.parquet as pq

from mlwarden.data.schema import Schema
from mlwarden.domain.digests import Digest
from mlwarden.store.blobs import BlobStore

ROW_GROUP_ROWS = 1 << 17
READ_BATCH_ROWS = 1 << 16
COMPRESSION = "zstd"


class SegmentWriter(AbstractContextManager["SegmentWriter"]):
    """Writes conformed batches to a Parquet file in the blob store's staging area."""

    def __init__(self, blobs: BlobStore, schema: Schema) -> None:
        self._blobs = blobs
        self._staging = blobs.staging(".parquet")
        self._path = self._staging.__enter__()
        self._writer = pq.ParquetWriter(
            str(self._path),
            schema.arrow_schema(),
            compression=COMPRESSION,
            # Dictionary pages cost most of the write time here and made the files larger, not smaller:
            # zstd already squeezes repeated values.
            use_dictionary=False,
            write_statistics=True,
        )
        self.rows = 0

    def write(self, batch: pa.RecordBatch) -> None:
        self._writer.write_batch(batch, row_group_size=ROW_GROUP_ROWS)
        self.rows += batch.num_rows

    def finish(self) -> tuple[Digest, int]:
        """Close the file and store it; return its digest and size in bytes."""
        self._writer.close()
        size = self._path.stat().st_size
        return self._blobs.adopt(self._path), size

    def __exit__(self, *exc: object) -> None:
        self._writer.close()
        self._staging.__exit__(None, None, None)


def read_segment(
    blobs: BlobStore, digest: Digest, schema: Schema, start: int = 0, stop: int | None = None
) -> Iterator[pa.RecordBatch]:
    """Rows ``[start, stop)`` of a segment, in batches, after the blob's digest is re-checked."""
    with tempfile.TemporaryFile() as copy:
        blobs.copy_to(digest, copy)  # verifies the whole blob before the first byte is written
        copy.seek(0)
        parquet = pq.ParquetFile(copy)
        position = 0
        for batch in parquet.iter_batches(batch_size=READ_BATCH_ROWS):
            lo, hi = max(start - position, 0), batch.num_rows if stop is None else min(stop - position, batch.num_rows)
            position += batch.num_rows
            if hi > lo:
                yield _as_schema(batch.slice(lo, hi - lo), schema)
            if stop is not None and position >= stop:
                return


def _as_schema(batch: pa.RecordBatch, schema: Schema) -> pa.RecordBatch:
    target = schema.arrow_schema()
    return batch if batch.schema.equals(target) else batch.cast(target)
