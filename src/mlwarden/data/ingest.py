"""Staging an ingestion: conform each batch, fingerprint it, store it, all in one bounded-memory pass.

Nothing here touches the metadata database. The result (a stored segment blob and the row-digest
trees) becomes visible only when the service commits the ingestion and its version in one transaction,
so a crash at any point before that leaves no version (at worst an unreferenced blob, which `data
verify` does not count as damage).
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

import pyarrow as pa

from mlwarden.data.columns import conform, infer_schema
from mlwarden.data.fingerprint import row_digests
from mlwarden.data.readers import BatchSource
from mlwarden.data.schema import Schema
from mlwarden.data.segments import SegmentWriter
from mlwarden.data.sha import warm_up
from mlwarden.data.tree import TreeState
from mlwarden.domain.digests import Digest
from mlwarden.errors import InputError
from mlwarden.store.blobs import BlobStore


class Observer(Protocol):
    """Sees each conformed record batch as it is staged (the ingestion gate's profile, checks, sample)."""

    def start(self, schema: Schema) -> None: ...

    def add(self, batch: pa.RecordBatch) -> None: ...


@dataclass(frozen=True)
class Staged:
    """A stored segment, ready to be committed as an ingestion."""

    schema: Schema
    rows: int
    segment: Digest
    segment_bytes: int
    segment_tree: TreeState  # over this ingestion's rows alone
    tree: TreeState  # the base version's tree extended with them


def stage(
    source: BatchSource, schema: Schema | None, base: TreeState, blobs: BlobStore, observer: Observer | None = None
) -> Staged:
    """Read ``source`` to the end: conform, fingerprint and store every batch.

    Two threads share the work, both mostly outside the GIL: this one reads, conforms and fingerprints
    batch k+1 and grows the trees while the other writes batch k (Parquet, zstd), which costs about as
    much. At most two batches are in memory.
    """
    if source.large:
        warm_up()
    schema = schema or infer_schema(source.schema)
    if observer is not None:
        observer.start(schema)
    segment_tree, tree = TreeState(), base
    with SegmentWriter(blobs, schema) as writer, ThreadPoolExecutor(1, thread_name_prefix="segment") as pool:
        written: Future[None] | None = None
        for batch in source.batches:
            conformed = conform(batch, schema)
            if written is not None:
                written.result()
            written = pool.submit(writer.write, conformed)
            digests = row_digests(conformed, schema)
            segment_tree = segment_tree.extend(digests)
            tree = segment_tree if base.size == 0 else tree.extend(digests)
            if observer is not None:
                observer.add(conformed)
        if written is not None:
            written.result()
        if writer.rows == 0:
            raise InputError(f"{source.name} has no rows", hint="an ingestion needs at least one row")
        segment, size = writer.finish()
    return Staged(schema, writer.rows, segment, size, segment_tree, tree)
