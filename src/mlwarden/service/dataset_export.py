"""Materializing a version as a file, re-checking its digest on the way out."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Protocol

import polars as pl
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.ipc as pa_ipc
import pyarrow.parquet as pq

from mlwarden.data.rows import VersionView, iter_pieces
from mlwarden.data.tree import TreeState
from mlwarden.data.versions import version_digest
from mlwarden.domain.digests import Digest
from mlwarden.errors import IntegrityError, UsageError
from mlwarden.store.blobs import BlobStore

FORMATS = {
    ".parquet": "parquet",
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".arrow": "arrow",
    ".ipc": "arrow",
}


class _Writer(Protocol):
    def write(self, batch: pa.RecordBatch) -> None: ...


def export_format(out: Path) -> str:
    """The format a file name asks for, or a UsageError."""
    fmt = FORMATS.get(out.suffix.lower())
    if fmt is None:
        raise UsageError(f"cannot tell the format of {out.name}", hint="end the name in " + ", ".join(FORMATS))
    if not out.parent.is_dir():
        raise UsageError(f"no folder {out.parent} to write {out.name} in")
    return fmt


def export_version(blobs: BlobStore, view: VersionView, expected: Digest, out: Path) -> int:
    """Write every row of the version to ``out``; the file appears only if the rows match ``expected``."""
    fmt = export_format(out)
    tmp = out.with_name(f".{out.name}.partial-{os.getpid()}")
    tree = TreeState()
    try:
        with _writer(fmt, tmp, view.schema.arrow_schema()) as writer:
            for chunk in iter_pieces(blobs, view):
                tree = tree.extend(chunk.digests)
                writer.write(chunk.batch)
        if version_digest(view.schema, tree) != expected:
            raise IntegrityError(
                f"the stored rows do not match version digest {expected}",
                hint="run `mlwarden data verify` to find the damaged segment",
            )
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return tree.size


@contextmanager
def _writer(fmt: str, path: Path, schema: pa.Schema) -> Iterator[_Writer]:
    if fmt == "jsonl":
        with path.open("wb") as f:
            yield _JsonLines(f)
        return
    opened = {
        "parquet": lambda: pq.ParquetWriter(str(path), schema, compression="zstd"),
        "csv": lambda: pa_csv.CSVWriter(str(path), schema),
        "arrow": lambda: pa_ipc.new_file(str(path), schema),
    }[fmt]()
    try:
        yield _ArrowWriter(opened)
    finally:
        opened.close()


class _ArrowWriter:
    def __init__(self, writer: object) -> None:
        self._writer = writer

    def write(self, batch: pa.RecordBatch) -> None:
        self._writer.write_batch(batch)  # type: ignore[attr-defined]


class _JsonLines:
    def __init__(self, f: IO[bytes]) -> None:
        self._f = f

    def write(self, batch: pa.RecordBatch) -> None:
        pl.DataFrame(batch).write_ndjson(self._f)
