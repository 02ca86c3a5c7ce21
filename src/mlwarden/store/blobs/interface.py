"""The blob-store extension point: what every backend (local folder, S3, ...) must provide.

Invariant 2 of DESIGN.md lives here: a blob is stored under the digest the *store* computes while it
writes, so no method accepts a caller's digest for writing, and every read re-checks the content against
its digest before handing it out. A mismatch is an ``IntegrityError``, never a silent return.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import BinaryIO, Protocol

from mlwarden.domain.digests import Digest

ProgressCallback = Callable[[int], None]
"""Called with the number of bytes just processed (an increment, not a running total)."""


class BlobProblem(StrEnum):
    """Why ``verify`` flagged an entry."""

    CONTENT_MISMATCH = "content mismatch"
    UNREADABLE = "unreadable"
    MISPLACED = "misplaced/unknown file"


@dataclass(frozen=True)
class BadBlob:
    """One entry that failed verification.

    ``digest`` is the digest the entry's location claims, or ``None`` when the location is not a valid
    blob name (a stray or misplaced file). ``location`` is backend-specific (a relative path, a key).
    """

    digest: Digest | None
    location: str
    reason: BlobProblem


@dataclass(frozen=True)
class BlobVerifyReport:
    """Result of re-hashing every blob in a store."""

    checked: int
    checked_bytes: int
    bad: tuple[BadBlob, ...] = ()

    @property
    def ok(self) -> bool:
        """True when every blob matched its digest and nothing unexpected was found."""
        return not self.bad


class BlobStore(Protocol):
    """Content-addressed, write-once blob storage."""

    def put_bytes(self, data: bytes) -> Digest:
        """Store ``data``; return the digest the store computed. Storing existing content is a no-op."""
        ...

    def put_stream(self, stream: BinaryIO) -> Digest:
        """Store everything read from ``stream``, in chunks (never whole in memory); return its digest."""
        ...

    def staging(self, suffix: str = "") -> AbstractContextManager[Path]:
        """A fresh scratch path to write a file to; removed on exit unless ``adopt`` took it."""
        ...

    def adopt(self, path: Path) -> Digest:
        """Store the file at ``path`` (from ``staging``) under the digest the store computes, moving it."""
        ...

    def get_bytes(self, digest: Digest) -> bytes:
        """Return the content, re-verified. Raises ``NotFound`` if absent, ``IntegrityError`` on mismatch."""
        ...

    def copy_to(self, digest: Digest, dst: BinaryIO) -> None:
        """Stream the content into ``dst``, verifying it completely before the first byte is written.

        Raises like ``get_bytes``; on a mismatch ``dst`` receives nothing.
        """
        ...

    def exists(self, digest: Digest) -> bool:
        """Whether a blob is stored under ``digest`` (without re-hashing it)."""
        ...

    def size(self, digest: Digest) -> int:
        """Stored size in bytes (without re-hashing). Raises ``NotFound`` if absent."""
        ...

    def iter_digests(self) -> Iterator[Digest]:
        """Every stored digest, by location only (use ``verify`` to check content)."""
        ...

    def verify(self, progress: ProgressCallback | None = None) -> BlobVerifyReport:
        """Re-hash every blob and report mismatches, unreadable entries and unknown files."""
        ...
