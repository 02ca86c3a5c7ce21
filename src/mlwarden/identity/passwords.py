"""Password hashing with argon2id (RFC 9106), via argon2-cffi.

Parameters: RFC 9106 section 4, "second recommended option" for memory-constrained environments:
argon2id, t=3 passes, m=64 MiB, p=4 lanes, 16-byte salt, 32-byte tag
(https://www.rfc-editor.org/rfc/rfc9106.html#section-4). This is stronger than the OWASP Password
Storage Cheat Sheet minimum for argon2id (m=19 MiB, t=2, p=1) and costs well under a second per login.
They are spelled out here rather than taken from argon2-cffi's defaults so that a library upgrade can
never change them silently; when they change on purpose, ``check_password`` returns a ``new_hash`` so
each stored hash is upgraded at the user's next successful login.

Passwords are NFKC-normalised before hashing and length checks (NIST SP 800-63B section 5.1.1.2), so
the same password typed on different keyboards or input methods hashes the same.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from argon2 import Parameters, PasswordHasher, Type, extract_parameters
from argon2.exceptions import InvalidHashError, VerificationError
from argon2.low_level import ARGON2_VERSION
from argon2.profiles import RFC_9106_HIGH_MEMORY

from mlwarden.errors import UsageError

MIN_LENGTH = 12
MAX_LENGTH = 1024  # long enough for any passphrase; bounds the work one login attempt can cause

DEFAULT_PARAMETERS = Parameters(
    type=Type.ID,
    version=ARGON2_VERSION,
    salt_len=16,
    hash_len=32,
    time_cost=3,
    memory_cost=64 * 1024,  # KiB
    parallelism=4,
)
DEFAULT_HASHER = PasswordHasher.from_parameters(DEFAULT_PARAMETERS)

# argon2-cffi trusts the stored hash's own cost parameters. A hash planted in (or restored into) the
# database with absurd costs would turn every login into a memory/CPU bomb, so a stored hash asking for
# more than RFC 9106's most expensive recommended profile (2 GiB) or these bounds counts as invalid.
_MAX_MEMORY_KIB = RFC_9106_HIGH_MEMORY.memory_cost
_MAX_TIME_COST = 16
_MAX_PARALLELISM = 16


@dataclass(frozen=True)
class PasswordCheck:
    """Outcome of a login check; ``new_hash`` is set when the stored hash should be replaced."""

    ok: bool
    new_hash: str | None = None


def _normalise(pw: str) -> str:
    return unicodedata.normalize("NFKC", pw)


def validate_new_password(pw: str) -> str:
    """Check the policy for a password being set; return the normalised password or raise ``UsageError``."""
    if not pw:
        raise UsageError("the password is empty", hint=f"choose a password of at least {MIN_LENGTH} characters")
    normalised = _normalise(pw)
    if len(normalised) > MAX_LENGTH:
        raise UsageError(f"the password is longer than {MAX_LENGTH} characters", hint="choose a shorter passphrase")
    if len(normalised) < MIN_LENGTH:
        raise UsageError(
            f"the password is shorter than {MIN_LENGTH} characters",
            hint=f"use at least {MIN_LENGTH} characters; a few unrelated words make a good passphrase",
        )
    return normalised


def hash_password(pw: str, *, hasher: PasswordHasher = DEFAULT_HASHER) -> str:
    """Hash a new password (after the policy check) into an encoded ``$argon2id$...`` string."""
    return hasher.hash(validate_new_password(pw))


def _costs_are_sane(stored_hash: str) -> bool:
    """Whether the hash parses and asks for no more work than the bounds above."""
    if not isinstance(stored_hash, str):
        return False
    try:
        params = extract_parameters(stored_hash)
    except InvalidHashError:
        return False
    return (
        params.memory_cost <= _MAX_MEMORY_KIB
        and params.time_cost <= _MAX_TIME_COST
        and params.parallelism <= _MAX_PARALLELISM
    )


def check_password(stored_hash: str, pw: str, *, hasher: PasswordHasher = DEFAULT_HASHER) -> PasswordCheck:
    """Check ``pw`` against ``stored_hash``. Never raises for a wrong password or a broken hash.

    The length policy for new passwords is not applied here (older passwords may predate it); only the
    upper bound is, so an attacker cannot make the server hash megabytes per attempt.
    """
    if not pw or len(pw) > MAX_LENGTH or not _costs_are_sane(stored_hash):
        return PasswordCheck(ok=False)
    normalised = _normalise(pw)
    try:
        hasher.verify(stored_hash, normalised)
    except (VerificationError, InvalidHashError):  # VerifyMismatchError is a VerificationError
        return PasswordCheck(ok=False)
    if hasher.check_needs_rehash(stored_hash):
        return PasswordCheck(ok=True, new_hash=hasher.hash(normalised))
    return PasswordCheck(ok=True)
