"""Secrets at rest that mlwarden must read back (TOTP secrets): AES-256-GCM under a workspace key file.

Unlike passwords and API tokens, a TOTP secret cannot be stored hashed: checking a code needs the
secret itself. It is sealed with AES-256-GCM (``cryptography``'s ``AESGCM``, NIST SP 800-38D) under a
32-byte key in ``.mlwarden/keys/secrets.key``, beside the checkpoint signing key, so a copy of the
database alone (a backup, a replica, a dump) reveals no second factor.

* **Nonce:** 12 random bytes per sealing. A key seals one secret per enrollment, far below the 2**32
  random-nonce sealings NIST SP 800-38D section 8.3 allows per key.
* **Associated data** binds each ciphertext to what it is for and whose it is
  (``mlwarden-seal-v1``, the purpose, the subject such as a user id): a sealed secret copied into
  another user's row, or reused for another purpose, fails to open.
* **Stored form:** ``v1:`` then unpadded base64url of nonce || ciphertext || 16-byte tag.
* **Key file:** created on first use with ``O_CREAT | O_EXCL`` and mode 0600 (then linked into place,
  so a concurrent process never reads a half-written key, and an existing key is never replaced);
  refused when it is group- or world-accessible, not a regular file, or not 32 bytes.

Whoever holds the key file and the database can open every sealed secret: back the key up with the
database, and keep it as private as the signing key.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from mlwarden.errors import ConfigError, IntegrityError, NotFound
from mlwarden.fsutil import read_owner_only

KEY_FILE = "keys/secrets.key"  # relative to the workspace's .mlwarden folder
KEY_BYTES = 32
NONCE_BYTES = 12
_VERSION = "v1"
_AAD_PREFIX = b"mlwarden-seal-v1"
_MAX_SEALED_CHARS = 4096  # far more than any sealed secret; bounds what a planted row can make us decode


class Sealer:
    """Seals and opens small secrets with one workspace key."""

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise ValueError(f"a sealing key has {KEY_BYTES} bytes")
        self._aead = AESGCM(key)

    def seal(self, plaintext: bytes, *, purpose: str, subject: str) -> str:
        nonce = secrets.token_bytes(NONCE_BYTES)
        sealed = nonce + self._aead.encrypt(nonce, plaintext, _associated_data(purpose, subject))
        return f"{_VERSION}:" + base64.urlsafe_b64encode(sealed).decode("ascii").rstrip("=")

    def open(self, sealed: str, *, purpose: str, subject: str) -> bytes:
        """The plaintext, or ``IntegrityError`` when the text was altered, moved to another subject or
        purpose, or sealed under another key (the message never includes the sealed text)."""
        version, _, body = sealed.partition(":")
        if version != _VERSION or not body or len(body) > _MAX_SEALED_CHARS:
            raise IntegrityError(f"a sealed {purpose} secret is malformed", hint=_TAMPER_HINT)
        try:
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        except (binascii.Error, ValueError):
            raise IntegrityError(f"a sealed {purpose} secret is malformed", hint=_TAMPER_HINT) from None
        nonce, ciphertext = raw[:NONCE_BYTES], raw[NONCE_BYTES:]
        try:
            return self._aead.decrypt(nonce, ciphertext, _associated_data(purpose, subject))
        except (InvalidTag, ValueError):
            raise IntegrityError(
                f"a sealed {purpose} secret does not open: altered, moved from another row, or sealed "
                "under another key",
                hint=_TAMPER_HINT,
            ) from None


_TAMPER_HINT = (
    "check `mlwarden audit verify`; if the database or .mlwarden/keys/secrets.key was changed or restored "
    "separately, the factor must be enrolled again"
)


def _associated_data(purpose: str, subject: str) -> bytes:
    # Length-prefixed, so ("a", "bc") and ("ab", "c") never give the same bytes.
    parts = [_AAD_PREFIX, purpose.encode("utf-8"), subject.encode("utf-8")]
    return b"".join(len(p).to_bytes(4, "big") + p for p in parts)


def load_sealer(path: Path, *, create: bool = False) -> Sealer:
    """The sealer of the key file at ``path``; with ``create``, make the key first if there is none."""
    if create:
        try:
            return Sealer(_read_key(path))
        except NotFound:
            _create_key(path)
    return Sealer(_read_key(path))


def _create_key(path: Path) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(tmp, flags, 0o600)
    try:
        with open(fd, "wb", closefd=True) as handle:
            handle.write(secrets.token_bytes(KEY_BYTES))
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(tmp, path)  # atomic, and never replaces a key another process made meanwhile
        except FileExistsError:
            pass  # theirs wins; every process then reads the same key
    finally:
        tmp.unlink(missing_ok=True)


def _read_key(path: Path) -> bytes:
    key = read_owner_only(
        path,
        what="the secrets key",
        limit=KEY_BYTES,
        missing_hint="restore it from the backup made with the database; without it enrolled factors cannot be checked",
        exposed_hint="if others could read it, have every user enroll their factor again",
    )
    if len(key) != KEY_BYTES:
        raise ConfigError(f"the secrets key {path} does not hold {KEY_BYTES} bytes", hint="restore it from a backup")
    return key
