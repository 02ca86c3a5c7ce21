"""Content digests: the names under which blobs are stored and by which everything refers to them.

Text format (version 1 of the digest format, see DESIGN.md invariant 6): ``sha256:<64 lowercase hex>``,
the same ``algorithm:encoded`` shape OCI image digests use
(https://github.com/opencontainers/image-spec/blob/main/descriptor.md#digests). The algorithm prefix is
the version tag: a future algorithm gets a new prefix and old digests keep their meaning.

Only lowercase hex is accepted. A digest is a storage key and an approval binds to it, so each digest
must have exactly one spelling; accepting ``ABC…`` and ``abc…`` would give two texts for one blob and
two keys on case-sensitive stores.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from mlwarden.errors import UsageError

SHA256 = "sha256"
_HEX_RE = re.compile(r"[0-9a-f]{64}")
_HEX_LEN = 64
# Longest text worth looking at; anything longer is rejected before any parsing.
_MAX_TEXT = len(SHA256) + 1 + _HEX_LEN
_HINT = "write a digest as 'sha256:' followed by 64 lowercase hex characters"


def _shorten(text: str) -> str:
    """Quote user input for an error message without echoing something huge."""
    return repr(text if len(text) <= 80 else text[:77] + "...")


@dataclass(frozen=True, order=True)
class Digest:
    """A SHA-256 content digest; the constructor rejects anything that is not canonical."""

    algorithm: str
    hex: str

    def __post_init__(self) -> None:
        if self.algorithm != SHA256:
            raise UsageError(f"unsupported digest algorithm {_shorten(str(self.algorithm))}", hint=_HINT)
        if not isinstance(self.hex, str) or len(self.hex) != _HEX_LEN or not _HEX_RE.fullmatch(self.hex):
            raise UsageError(f"malformed sha256 digest value {_shorten(str(self.hex))}", hint=_HINT)

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"

    @classmethod
    def parse(cls, text: str) -> Digest:
        """Parse ``sha256:<hex>``; reject everything else (other algorithms, bare hex, paths...)."""
        if not isinstance(text, str) or len(text) > _MAX_TEXT:
            raise UsageError(f"not a digest: {_shorten(str(text))}", hint=_HINT)
        algorithm, sep, hex_ = text.partition(":")
        if not sep:
            raise UsageError(f"not a digest: {_shorten(text)} has no 'sha256:' prefix", hint=_HINT)
        return cls(algorithm, hex_)

    @classmethod
    def of_bytes(cls, data: bytes) -> Digest:
        """Digest of an in-memory byte string."""
        return cls(SHA256, hashlib.sha256(data).hexdigest())


class Hasher:
    """Incremental SHA-256 that also counts bytes, for streaming writes and verification."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self._size = 0

    def update(self, chunk: bytes) -> None:
        """Feed the next chunk."""
        self._hash.update(chunk)
        self._size += len(chunk)

    @property
    def size(self) -> int:
        """Bytes fed so far."""
        return self._size

    def digest(self) -> Digest:
        """Digest of everything fed so far (the hasher stays usable)."""
        return Digest(SHA256, self._hash.hexdigest())
