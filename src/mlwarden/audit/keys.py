"""The checkpoint signing key on disk: an Ed25519 private key in PKCS#8 PEM, readable by its owner only."""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mlwarden.errors import AlreadyExists, ConfigError
from mlwarden.fsutil import read_owner_only

_MAX_KEY_FILE_BYTES = 64 * 1024


def generate_signing_key() -> Ed25519PrivateKey:
    """Return a new random Ed25519 private key."""
    return Ed25519PrivateKey.generate()


def save_private_key(key: Ed25519PrivateKey, path: Path) -> None:
    """Write ``key`` as unencrypted PKCS#8 PEM to a new file readable only by its owner (mode 0600).

    The file is created with its final mode in one step (O_CREAT | O_EXCL), so it is never readable by
    others, not even briefly, and an existing file (or symlink) is never overwritten: ``AlreadyExists``.
    """
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError:
        raise AlreadyExists(
            f"{path} exists already; refusing to overwrite a signing key",
            hint="keep the existing key, or move it away first (checkpoints it signed need its public key)",
        ) from None
    try:
        with open(fd, "wb", closefd=True) as handle:
            handle.write(pem)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        path.unlink(missing_ok=True)  # never leave a half-written key behind
        raise


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """Read an Ed25519 private key written by ``save_private_key``.

    Raises ``NotFound`` when the file is missing, and ``ConfigError`` when it is group- or
    world-accessible (a leaked log key lets anyone sign checkpoints), not a regular file, or not an
    unencrypted Ed25519 PEM key.
    """
    data = read_owner_only(
        path,
        what="signing key",
        limit=_MAX_KEY_FILE_BYTES,
        missing_hint="check the workspace's key path",
        exposed_hint="if others could read it, treat the key as exposed",
    )
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        key = None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(
            f"{path} is not an unencrypted Ed25519 private key in PEM form",
            hint="point the workspace at the key file it created, or generate a new key",
        )
    return key
