"""Versions as data: manifests of segment pieces, references, and the version digest.

A version is an ordered list of pieces, each a row range of one ingestion's segment. Appending adds a
piece; replacing starts over with one; a revert drops pieces. The version digest (docs/digests.md)::

    SHA-256( "mlwarden.dataset-version.v1\\n" || SHA-256(schema JSON) || row count (u64 LE) || tree root )

where the tree is the RFC 6962 Merkle tree over the version's row digests in order.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass

from mlwarden.data.schema import Schema
from mlwarden.data.tree import TreeState
from mlwarden.domain.digests import Digest
from mlwarden.errors import UsageError

VERSION_DOMAIN = b"mlwarden.dataset-version.v1\n"
_NAME_RE = re.compile(r"[a-z][a-z0-9_.-]{0,127}")


@dataclass(frozen=True)
class Piece:
    """Rows ``[start, stop)`` of the segment an ingestion stored."""

    ingestion: str
    start: int
    stop: int

    @property
    def rows(self) -> int:
        return self.stop - self.start


Manifest = tuple[Piece, ...]


def manifest_to_json(manifest: Manifest) -> str:
    return json.dumps([[p.ingestion, p.start, p.stop] for p in manifest], separators=(",", ":"))


def manifest_from_json(text: str) -> Manifest:
    return tuple(Piece(str(i), int(a), int(b)) for i, a, b in json.loads(text))


def without(manifest: Manifest, ingestions: Iterable[str]) -> Manifest:
    dropped = set(ingestions)
    return tuple(p for p in manifest if p.ingestion not in dropped)


def manifest_digest(manifest: Manifest) -> str:
    """What audit events record of a manifest (its JSON form's digest)."""
    return str(Digest.of_bytes(manifest_to_json(manifest).encode()))


def version_digest(schema: Schema, tree: TreeState) -> Digest:
    body = VERSION_DOMAIN + schema.digest() + tree.size.to_bytes(8, "little") + tree.root()
    return Digest.parse("sha256:" + hashlib.sha256(body).hexdigest())


def validate_dataset_name(name: str) -> str:
    """Dataset names: lowercase, safe in paths, URLs and logs (no '/', '..', '@' or spaces)."""
    if not _NAME_RE.fullmatch(name):
        raise UsageError(
            f"invalid dataset name {name[:80]!r}",
            hint="use 1-128 characters: a lowercase letter, then lowercase letters, digits, '_', '.' or '-'",
        )
    return name


@dataclass(frozen=True)
class Reference:
    """``NAME``, ``NAME@N``, ``NAME@sha256:...`` or a bare ``sha256:...`` version digest."""

    name: str | None
    number: int | None = None
    digest: Digest | None = None

    @classmethod
    def parse(cls, text: str) -> Reference:
        if text.startswith("sha256:"):
            return cls(None, digest=Digest.parse(text))
        name, sep, version = text.partition("@")
        validate_dataset_name(name)
        if not sep:
            return cls(name)
        if version.startswith("sha256:"):
            return cls(name, digest=Digest.parse(version))
        if not version.isdigit() or int(version) < 1 or len(version) > 12:
            raise UsageError(
                f"invalid version {version[:40]!r} in {text[:80]!r}", hint="write NAME@3 or NAME@sha256:..."
            )
        return cls(name, number=int(version))

    def __str__(self) -> str:
        suffix = f"@{self.number}" if self.number else f"@{self.digest}" if self.digest else ""
        return f"{self.name or ''}{suffix}" if self.name else str(self.digest)
