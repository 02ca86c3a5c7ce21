"""API tokens: ``mlw_<token id>_<secret>``.

- ``mlw_`` makes a leaked token recognisable to secret scanners and to people.
- token id: 12 random lowercase hex characters (48 bits). It is public and is the lookup key, so a
  check costs one indexed read and one hash, never a scan. The database must keep it unique (and the
  issuer retry on the rare collision).
- secret: 32 bytes from ``secrets`` (256 bits), urlsafe base64 without padding (43 characters).

Only ``sha256(secret)`` is stored. A fast hash is right here and wrong for passwords: a password is
low-entropy and guessable, so its hash must make each guess expensive (argon2id). The secret is 256
uniformly random bits; no amount of guessing speed makes searching 2**256 feasible, so a slow hash would
only cost the server time on every API call while adding no protection. A stolen token table therefore
reveals nothing usable.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, field

from mlwarden.domain.events import TokenId
from mlwarden.errors import AuthenticationError

TOKEN_PREFIX = "mlw_"
TOKEN_ID_CHARS = 12
SECRET_BYTES = 32
SECRET_CHARS = 43  # ceil(32 * 8 / 6) base64 characters, no padding
TOKEN_CHARS = len(TOKEN_PREFIX) + TOKEN_ID_CHARS + 1 + SECRET_CHARS

# The secret's alphabet includes "_", so split by position, not by "_".
_TOKEN_RE = re.compile(r"mlw_([0-9a-f]{12})_([A-Za-z0-9_-]{43})", re.ASCII)


@dataclass(frozen=True)
class IssuedToken:
    """A new token: show ``plaintext`` to the user once, store ``token_id`` and ``secret_hash``."""

    token_id: TokenId
    plaintext: str = field(repr=False)
    secret_hash: str


@dataclass(frozen=True)
class ParsedToken:
    """A well-formed token as presented by a client (not yet checked against the store)."""

    token_id: TokenId
    secret: str = field(repr=False)


def hash_secret(secret: str) -> str:
    """The stored form of a secret: SHA-256 hex of its ASCII text."""
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


def issue_token() -> IssuedToken:
    """Create a fresh token from the OS CSPRNG."""
    token_id = TokenId(secrets.token_hex(TOKEN_ID_CHARS // 2))
    secret = secrets.token_urlsafe(SECRET_BYTES)
    plaintext = f"{TOKEN_PREFIX}{token_id}_{secret}"
    return IssuedToken(token_id=token_id, plaintext=plaintext, secret_hash=hash_secret(secret))


def _is_canonical_base64(secret: str) -> bool:
    """True if ``secret`` is the one canonical encoding of 32 bytes.

    43 characters carry 258 bits; the last 2 must be zero. Rejecting the other spellings keeps one
    secret to one text, so nothing downstream can be confused by equivalent variants.
    """
    try:
        raw = base64.urlsafe_b64decode(secret + "=")
    except (binascii.Error, ValueError):
        return False
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii") == secret


def parse_token(plaintext: str) -> ParsedToken:
    """Split a presented token, or raise ``AuthenticationError`` for anything malformed.

    The message never repeats the input: a mistyped token is still mostly a secret and must not reach
    logs.
    """
    if not isinstance(plaintext, str) or len(plaintext) != TOKEN_CHARS:
        raise AuthenticationError("malformed API token: wrong length")
    match = _TOKEN_RE.fullmatch(plaintext)
    if match is None:
        raise AuthenticationError("malformed API token: expected mlw_<12 hex>_<43 base64url characters>")
    token_id, secret = match.groups()
    if not _is_canonical_base64(secret):
        raise AuthenticationError("malformed API token: secret is not canonical base64url")
    return ParsedToken(token_id=TokenId(token_id), secret=secret)


def secret_matches(secret: str, stored_hash: str) -> bool:
    """Compare a presented secret with its stored hash in constant time."""
    try:
        presented = hash_secret(secret).encode("ascii")
        stored = stored_hash.encode("ascii")
    except (UnicodeEncodeError, AttributeError):
        return False
    return hmac.compare_digest(presented, stored)
