"""Signing keys on disk, in PKCS#8 PEM, readable by their owner only.

The checkpoint key is Ed25519; the model-signing key (``mlwarden.supplychain``) is ECDSA P-256, the key
type the OpenSSF ``model_signing`` verifier accepts.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePrivateKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mlwarden.errors import AlreadyExists, ConfigError
from mlwarden.fsutil import fsync_dir, read_owner_only

_MAX_KEY_FILE_BYTES = 64 * 1024

PrivateKey = Ed25519PrivateKey | EllipticCurvePrivateKey


def generate_signing_key() -> Ed25519PrivateKey:
    """Return a new random Ed25519 private key."""
    return Ed25519PrivateKey.generate()


def save_private_key(key: PrivateKey, path: Path) -> None:
    """Write ``key`` as unencrypted PKCS#8 PEM to a new file readable only by its owner (mode 0600).

    The key is written and synced under a fresh temporary name (O_CREAT | O_EXCL, final mode in one
    step, so it is never readable by others, not even briefly), then linked into place: link(2) never
    replaces an existing file (or symlink), which raises ``AlreadyExists``, and a concurrent reader sees
    either no key or the whole key, never a half-written one.
    """
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(tmp, flags, 0o600)
    try:
        with open(fd, "wb", closefd=True) as handle:
            handle.write(pem)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            raise AlreadyExists(
                f"{path} exists already; refusing to overwrite a signing key",
                hint="keep the existing key, or move it away first (what it signed needs its public key)",
            ) from None
    finally:
        tmp.unlink(missing_ok=True)  # never leave a temporary copy of the key behind
    fsync_dir(path.parent)


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """Read an Ed25519 private key written by ``save_private_key``.

    Raises ``NotFound`` when the file is missing, and ``ConfigError`` when it is group- or
    world-accessible (a leaked log key lets anyone sign checkpoints), not a regular file, or not an
    unencrypted Ed25519 PEM key.
    """
    key = _read_pem_private_key(path)
    if not isinstance(key, Ed25519PrivateKey):
        raise _not_a_key(path, "Ed25519")
    return key


def load_ec_private_key(path: Path) -> EllipticCurvePrivateKey:
    """Read an elliptic-curve (ECDSA) private key written by ``save_private_key``; errors as
    ``load_private_key``."""
    key = _read_pem_private_key(path)
    if not isinstance(key, EllipticCurvePrivateKey):
        raise _not_a_key(path, "ECDSA")
    return key


def _read_pem_private_key(path: Path) -> object:
    data = read_owner_only(
        path,
        what="signing key",
        limit=_MAX_KEY_FILE_BYTES,
        missing_hint="check the workspace's key path",
        exposed_hint="if others could read it, treat the key as exposed",
    )
    try:
        return serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        return None


def _not_a_key(path: Path, kind: str) -> ConfigError:
    return ConfigError(
        f"{path} is not an unencrypted {kind} private key in PEM form",
        hint="point the workspace at the key file it created, or generate a new key",
    )
