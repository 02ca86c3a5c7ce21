"""Time-based one-time passwords (TOTP, RFC 6238), via ``pyotp``.

Users get the parameters every authenticator app understands: HMAC-SHA-1, 6 digits, a 30-second time
step, and a 160-bit secret (20 bytes from ``secrets``, the length RFC 4226 section 4 recommends).
The functions take the digit count, digest and step as parameters so that the test vectors of RFC 6238
Appendix B (8 digits, SHA-1/SHA-256/SHA-512) run through exactly the code path users' codes take
(https://www.rfc-editor.org/rfc/rfc6238#appendix-B).

Accepted window: the current time step and one step either side (``WINDOW = 1``), i.e. a code is good
for between 60 and 90 seconds after it first appears. RFC 6238 section 5.2 recommends at most one
step of allowed transmission delay; a step back covers a code typed as it rolled over, a step ahead a
clock that runs a little slow on the server. Anything wider only widens what a guesser can hit.

This module is pure: replay protection (each step accepted at most once per user) and lockout live in
the service, which stores the last accepted step (``mlwarden.service.mfa``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Callable
from urllib.parse import quote, urlencode

import pyotp

from mlwarden.errors import UsageError

DIGITS = 6
STEP_SECONDS = 30
DIGEST = "sha1"
WINDOW = 1  # steps accepted either side of the current one
SECRET_BYTES = 20  # 160 bits (RFC 4226 section 4: at least 128, 160 recommended)
ISSUER = "mlwarden"

# Digests RFC 6238 names (section 1.2); authenticator apps generally support only SHA-1.
_DIGESTS: dict[str, Callable[..., object]] = {
    "sha1": hashlib.sha1,
    "sha256": hashlib.sha256,
    "sha512": hashlib.sha512,
}


def new_secret() -> bytes:
    """A fresh TOTP secret: 20 bytes from the OS CSPRNG."""
    return secrets.token_bytes(SECRET_BYTES)


def secret_base32(secret: bytes) -> str:
    """The secret as authenticator apps take it: RFC 4648 base32 without padding."""
    return base64.b32encode(secret).decode("ascii").rstrip("=")


def time_step(unix_time: float, step_seconds: int = STEP_SECONDS) -> int:
    """RFC 6238 section 4.2: T = floor((unix time - T0) / X), with T0 = 0."""
    if unix_time < 0:
        raise ValueError("TOTP is defined for times from the Unix epoch on")
    return int(unix_time) // step_seconds


def code_for_step(secret: bytes, step: int, *, digits: int = DIGITS, digest: str = DIGEST) -> str:
    """The HOTP value (RFC 4226 section 5.3) of ``secret`` at counter ``step``, zero-padded."""
    try:
        algorithm = _DIGESTS[digest]
    except KeyError:
        raise ValueError(f"unsupported TOTP digest {digest!r}") from None
    # pyotp checks the secret's length (>= 112 bits) and the digit count (6-10) itself.
    return pyotp.TOTP(secret_base32(secret), digits=digits, digest=algorithm).generate_otp(step)


def code_at(
    secret: bytes,
    unix_time: float,
    *,
    digits: int = DIGITS,
    digest: str = DIGEST,
    step_seconds: int = STEP_SECONDS,
) -> str:
    """The TOTP code of ``secret`` at ``unix_time`` (what the RFC 6238 Appendix B table lists)."""
    return code_for_step(secret, time_step(unix_time, step_seconds), digits=digits, digest=digest)


def validate_code(code: str, digits: int = DIGITS) -> str:
    """Return ``code`` if it is exactly ``digits`` ASCII digits; else ``UsageError``.

    The message never repeats what was typed: a mistyped code is still most of a valid one.
    """
    if not isinstance(code, str) or len(code) != digits or not (code.isascii() and code.isdigit()):
        raise UsageError(
            f"a code must be exactly {digits} digits",
            hint="type the code your authenticator app shows now, without spaces",
        )
    return code


def match_step(
    secret: bytes,
    code: str,
    unix_time: float,
    *,
    window: int = WINDOW,
    digits: int = DIGITS,
    digest: str = DIGEST,
    step_seconds: int = STEP_SECONDS,
) -> int | None:
    """The time step whose code ``code`` is, within ``window`` steps of ``unix_time``, or None.

    Every step of the window is compared, in constant time, whatever matched before. Should a code
    match two steps of the window (a one-in-a-million coincidence), the later step is returned: the
    caller stores it as the last one accepted, so no earlier code can be used after it.
    """
    validate_code(code, digits)
    current = time_step(unix_time, step_seconds)
    matched: int | None = None
    for step in range(max(current - window, 0), current + window + 1):
        expected = code_for_step(secret, step, digits=digits, digest=digest)
        if hmac.compare_digest(expected.encode("ascii"), code.encode("ascii")):
            matched = step
    return matched


def provisioning_uri(secret: bytes, account: str, *, issuer: str = ISSUER) -> str:
    """The ``otpauth://totp/...`` URI authenticator apps read from a QR code.

    Key Uri Format (https://github.com/google/google-authenticator/wiki/Key-Uri-Format): the label is
    ``issuer:account``, each part percent-encoded completely (an account holding "/" or "@" must not
    split the path), and every parameter is spelled out rather than left to the app's defaults.
    """
    label = quote(issuer, safe="") + ":" + quote(account, safe="")
    query = urlencode(
        {
            "secret": secret_base32(secret),
            "issuer": issuer,
            "algorithm": DIGEST.upper(),
            "digits": DIGITS,
            "period": STEP_SECONDS,
        },
        quote_via=quote,
    )
    return f"otpauth://totp/{label}?{query}"
