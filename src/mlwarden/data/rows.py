"""Reading a version's rows with their provenance: position, ingestion and row digest.

Everything here streams a batch at a time through ``segments.read_segment`` (which re-checks each blob's
digest) and recomputes row digests from the rows themselves, so a query never trusts a stored digest.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import pyarrow as pa

from mlwarden.data.fingerprint import row_digests
from mlwarden.data.schema import Schema
from mlwarden.data.segments import read_segment
from mlwarden.data.sha import Digests
from mlwarden.data.tree import TreeState
from mlwarden.data.versions import Manifest, Piece
from mlwarden.domain.digests import Digest
from mlwarden.store.blobs import BlobStore


@dataclass(frozen=True)
class VersionView:
    """What reading a version needs: its schema, its manifest and where each ingestion's rows live."""

    schema: Schema
    manifest: Manifest
    segments: Mapping[str, Digest]


@dataclass(frozen=True)
class Chunk:
    """A batch of a version's rows, where they sit in the version, and their digests."""

    piece: Piece
    position: int  # of the first row in the version
    batch: pa.RecordBatch
    digests: Digests


def iter_pieces(blobs: BlobStore, view: VersionView, pieces: Manifest | None = None) -> Iterator[Chunk]:
    """The rows of ``pieces`` (default: the whole manifest), with positions counted over the manifest."""
    wanted = set(pieces) if pieces is not None else None
    position = 0
    for piece in view.manifest:
        if wanted is None or piece in wanted:
            offset = position
            for batch in read_segment(blobs, view.segments[piece.ingestion], view.schema, piece.start, piece.stop):
                yield Chunk(piece, offset, batch, row_digests(batch, view.schema))
                offset += batch.num_rows
        position += piece.rows


def grow_tree(
    blobs: BlobStore, view: VersionView, pieces: Manifest | None = None, base: TreeState | None = None
) -> TreeState:
    """``base`` (default: empty) extended with the row digests of ``pieces``, recomputed from the rows."""
    tree = base or TreeState()
    for chunk in iter_pieces(blobs, view, pieces):
        tree = tree.extend(chunk.digests)
    return tree
