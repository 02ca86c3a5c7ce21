"""argon2id password hashing: policy, round trips, rehash on parameter change, never raising on login."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher, Type, extract_parameters

from mlwarden.errors import UsageError
from mlwarden.identity.passwords import (
    DEFAULT_HASHER,
    DEFAULT_PARAMETERS,
    MAX_LENGTH,
    MIN_LENGTH,
    PasswordCheck,
    check_password,
    hash_password,
)

# Minimal costs so the suite stays fast; the default parameters get one real test below.
CHEAP = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1, hash_len=16, salt_len=16)
CHEAPER_CHANGED = PasswordHasher(time_cost=2, memory_cost=8, parallelism=1, hash_len=16, salt_len=16)
PW = "correct horse battery staple"


def test_default_parameters_are_rfc9106_second_recommendation() -> None:
    stored = hash_password(PW)
    assert stored.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    params = extract_parameters(stored)
    assert params == DEFAULT_PARAMETERS
    assert params.type is Type.ID and params.salt_len == 16 and params.hash_len == 32
    assert check_password(stored, PW) == PasswordCheck(ok=True, new_hash=None)


def test_round_trip_and_salted() -> None:
    a = hash_password(PW, hasher=CHEAP)
    b = hash_password(PW, hasher=CHEAP)
    assert a != b  # random salt
    assert check_password(a, PW, hasher=CHEAP).ok
    assert check_password(b, PW, hasher=CHEAP).ok


def test_wrong_password_is_false_not_an_error() -> None:
    stored = hash_password(PW, hasher=CHEAP)
    assert check_password(stored, PW + "!", hasher=CHEAP) == PasswordCheck(ok=False)
    assert check_password(stored, "", hasher=CHEAP) == PasswordCheck(ok=False)
    assert check_password(stored, "x" * (MAX_LENGTH + 1), hasher=CHEAP) == PasswordCheck(ok=False)


@pytest.mark.parametrize(
    "stored",
    [
        "",
        "not a hash",
        "$argon2id$v=19$m=8,t=1,p=1$garbage",
        "$2b$12$abcdefghijklmnopqrstuuJ6c5yqAqQbq0Ww2YFYmU9rQ.9r8uoa",  # bcrypt
        # absurd cost parameters must not be attempted (memory bomb)
        "$argon2id$v=19$m=4294967295,t=1,p=1$c29tZXNhbHRzb21lc2FsdA$aGFzaGhhc2hoYXNoaGFzaA",
        "$argon2id$v=19$m=8,t=4294967295,p=1$c29tZXNhbHRzb21lc2FsdA$aGFzaGhhc2hoYXNoaGFzaA",
    ],
)
def test_invalid_stored_hash_is_false(stored: str) -> None:
    assert check_password(stored, PW, hasher=CHEAP) == PasswordCheck(ok=False)


def test_rehash_when_parameters_change() -> None:
    old = hash_password(PW, hasher=CHEAP)
    result = check_password(old, PW, hasher=CHEAPER_CHANGED)
    assert result.ok
    assert result.new_hash is not None
    assert extract_parameters(result.new_hash).time_cost == 2
    assert check_password(result.new_hash, PW, hasher=CHEAPER_CHANGED) == PasswordCheck(ok=True)


def test_no_rehash_on_wrong_password() -> None:
    old = hash_password(PW, hasher=CHEAP)
    assert check_password(old, "wrong password!!", hasher=CHEAPER_CHANGED) == PasswordCheck(ok=False)


def test_default_hasher_uses_default_parameters() -> None:
    assert DEFAULT_HASHER.time_cost == DEFAULT_PARAMETERS.time_cost
    assert DEFAULT_HASHER.memory_cost == DEFAULT_PARAMETERS.memory_cost
    assert DEFAULT_HASHER.parallelism == DEFAULT_PARAMETERS.parallelism
    assert DEFAULT_HASHER.type is Type.ID


@pytest.mark.parametrize(
    ("pw", "fragment"),
    [
        ("", "empty"),
        ("a" * (MIN_LENGTH - 1), "shorter"),
        ("x" * (MAX_LENGTH + 1), "longer"),
    ],
)
def test_policy_rejects(pw: str, fragment: str) -> None:
    with pytest.raises(UsageError, match=fragment) as info:
        hash_password(pw, hasher=CHEAP)
    assert info.value.hint


def test_policy_boundaries_accepted() -> None:
    for pw in ("a" * MIN_LENGTH, "b" * MAX_LENGTH):
        assert check_password(hash_password(pw, hasher=CHEAP), pw, hasher=CHEAP).ok


def test_unicode_is_normalised() -> None:
    composed = "p\u00e4ssword-long-enough"  # ä as one code point
    decomposed = "pa\u0308ssword-long-enough"  # a + combining diaeresis
    stored = hash_password(composed, hasher=CHEAP)
    assert check_password(stored, decomposed, hasher=CHEAP).ok
