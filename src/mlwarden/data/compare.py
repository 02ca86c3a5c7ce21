"""Diff and blame over versions, by row fingerprint.

A diff is a multiset difference: a row that appears twice in A and once in B was removed once. Pieces
that both versions share are skipped without reading them: only the rows that differ are hashed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow as pa

from mlwarden.data.frames import DIGEST, POSITION, frame
from mlwarden.data.rows import Chunk, VersionView, iter_pieces
from mlwarden.data.sha import DIGEST_SIZE
from mlwarden.data.versions import Manifest, Piece
from mlwarden.errors import UsageError
from mlwarden.store.blobs import BlobStore

_OCCURRENCE = "_occurrence"


@dataclass(frozen=True)
class RowDiff:
    added: pl.DataFrame  # rows of B not in A, with provenance columns
    removed: pl.DataFrame  # rows of A not in B
    unchanged: int


def diff(blobs: BlobStore, a: VersionView, b: VersionView) -> RowDiff:
    shared = set(a.manifest) & set(b.manifest)
    only_a = tuple(p for p in a.manifest if p not in shared)
    only_b = tuple(p for p in b.manifest if p not in shared)
    rows_a = _numbered(_rows(blobs, a, only_a))
    rows_b = _numbered(_rows(blobs, b, only_b))
    keys = [DIGEST, _OCCURRENCE]
    removed = rows_a.join(rows_b.select(keys), on=keys, how="anti").drop(_OCCURRENCE)
    added = rows_b.join(rows_a.select(keys), on=keys, how="anti").drop(_OCCURRENCE)
    unchanged = sum(p.rows for p in shared) + rows_a.height - removed.height
    return RowDiff(added.sort(POSITION), removed.sort(POSITION), unchanged)


def _rows(blobs: BlobStore, view: VersionView, pieces: Manifest) -> pl.DataFrame:
    frames = [frame(chunk) for chunk in iter_pieces(blobs, view, pieces)]
    if not frames:
        empty = pa.RecordBatch.from_pylist([], schema=view.schema.arrow_schema())
        frames = [frame(Chunk(Piece("", 0, 0), 0, empty, np.empty((0, DIGEST_SIZE), dtype=np.uint8)))]
    return pl.concat(frames)


def _numbered(rows: pl.DataFrame) -> pl.DataFrame:
    """Number the copies of each digest 0, 1, 2...: joining on (digest, copy) is a multiset difference."""
    return rows.with_columns(pl.int_range(pl.len()).over(DIGEST).alias(_OCCURRENCE))


@dataclass(frozen=True)
class Matches:
    rows: pl.DataFrame  # at most ``limit`` matching rows, with provenance columns
    total: int


def blame(blobs: BlobStore, view: VersionView, *, where: str | None, digest: bytes | None, limit: int) -> Matches:
    """The rows of a version matching a SQL condition over its columns, or having a given row digest."""
    condition = _condition(where, digest)
    kept: list[pl.DataFrame] = []
    total = kept_rows = 0
    for part in _frames(blobs, view):
        try:
            found = part.filter(condition)
        except pl.exceptions.PolarsError as exc:
            raise UsageError(
                f"cannot evaluate --where {where!r}: {exc}", hint="e.g. --where \"label = 'cat' AND x > 3\""
            ) from None
        total += found.height
        if kept_rows < limit and found.height:
            kept.append(found.head(limit - kept_rows))
            kept_rows += kept[-1].height
    rows = pl.concat(kept) if kept else pl.DataFrame()
    return Matches(rows, total)


def _frames(blobs: BlobStore, view: VersionView) -> Iterator[pl.DataFrame]:
    for chunk in iter_pieces(blobs, view):
        yield frame(chunk)


def _condition(where: str | None, digest: bytes | None) -> pl.Expr:
    if (where is None) == (digest is None):
        raise UsageError("give exactly one of --where and --row-digest")
    if digest is not None:
        return pl.col(DIGEST) == pl.lit(digest, dtype=pl.Binary)
    try:
        return pl.sql_expr(str(where))
    except pl.exceptions.PolarsError as exc:
        raise UsageError(f"invalid --where {where!r}: {exc}", hint="write a SQL condition over the columns") from None
