"""TOTP (RFC 6238): the Appendix B vectors through the users' code path, secrets, code syntax, window."""

from __future__ import annotations

import base64
from urllib.parse import parse_qs, urlsplit

import pyotp
import pytest

from mlwarden.errors import UsageError
from mlwarden.identity import totp

# RFC 6238 Appendix B: 8 digits, the ASCII seeds below (20, 32 and 64 bytes for SHA-1, -256, -512).
SEEDS = {
    "sha1": b"12345678901234567890",
    "sha256": b"12345678901234567890123456789012",
    "sha512": b"1234567890123456789012345678901234567890123456789012345678901234",
}
VECTORS = [
    (59, {"sha1": "94287082", "sha256": "46119246", "sha512": "90693936"}),
    (1111111109, {"sha1": "07081804", "sha256": "68084774", "sha512": "25091201"}),
    (1111111111, {"sha1": "14050471", "sha256": "67062674", "sha512": "99943326"}),
    (1234567890, {"sha1": "89005924", "sha256": "91819424", "sha512": "93441116"}),
    (2000000000, {"sha1": "69279037", "sha256": "90698825", "sha512": "38618901"}),
    (20000000000, {"sha1": "65353130", "sha256": "77737706", "sha512": "47863826"}),
]


@pytest.mark.parametrize(("unix_time", "expected"), VECTORS)
@pytest.mark.parametrize("digest", ["sha1", "sha256", "sha512"])
def test_rfc6238_appendix_b_vectors(unix_time: int, expected: dict[str, str], digest: str) -> None:
    secret = SEEDS[digest]
    code = totp.code_at(secret, unix_time, digits=8, digest=digest)
    assert code == expected[digest]
    # ...and the same code is found by the function that checks users' codes, at its own step.
    step = totp.match_step(secret, code, unix_time, digits=8, digest=digest)
    assert step == unix_time // 30


def test_rfc6238_sha1_vectors_as_listed() -> None:
    """The SHA-1 rows exactly as the task and the RFC list them."""
    seed = b"12345678901234567890"
    listed = {
        59: "94287082",
        1111111109: "07081804",
        1111111111: "14050471",
        1234567890: "89005924",
        2000000000: "69279037",
        20000000000: "65353130",
    }
    assert {t: totp.code_at(seed, t, digits=8) for t in listed} == listed


def test_secrets_are_160_random_bits() -> None:
    secrets_made = {totp.new_secret() for _ in range(100)}
    assert len(secrets_made) == 100
    assert all(len(s) * 8 >= 160 for s in secrets_made)
    encoded = totp.secret_base32(next(iter(secrets_made)))
    assert len(encoded) == 32 and "=" not in encoded
    assert base64.b32decode(encoded) in secrets_made


def test_user_codes_match_what_authenticator_apps_compute() -> None:
    secret = totp.new_secret()
    app = pyotp.TOTP(totp.secret_base32(secret))  # SHA-1, 6 digits, 30 s: the app defaults
    for moment in (0, 29, 30, 1_700_000_000, 1_700_000_029):
        assert totp.code_at(secret, moment) == app.at(moment)


MALFORMED = ["", "12345", "1234567", "12345a", " 123456", "123456 ", "１２３４５６", "١٢٣٤٥٦", "+12345", "-12345"]


@pytest.mark.parametrize("code", MALFORMED)
def test_malformed_codes_are_usage_errors_that_do_not_echo_the_input(code: str) -> None:
    with pytest.raises(UsageError) as caught:
        totp.validate_code(code)
    assert "exactly 6 digits" in caught.value.message
    if code.strip():
        assert code.strip() not in caught.value.message
    with pytest.raises(UsageError):
        totp.match_step(b"12345678901234567890", code, 59)


def test_window_is_the_current_step_and_one_either_side() -> None:
    secret = totp.new_secret()
    now = 1_700_000_015
    current = now // 30
    for offset in (-1, 0, 1):
        code = totp.code_for_step(secret, current + offset)
        assert totp.match_step(secret, code, now) == current + offset
    for offset in (-3, -2, 2, 3):
        code = totp.code_for_step(secret, current + offset)
        if all(code != totp.code_for_step(secret, current + k) for k in (-1, 0, 1)):  # a chance collision
            assert totp.match_step(secret, code, now) is None


def test_provisioning_uri_is_what_apps_read() -> None:
    secret = totp.new_secret()
    uri = totp.provisioning_uri(secret, "alice@mlwarden.local/0123abcd")
    parts = urlsplit(uri)
    assert (parts.scheme, parts.netloc) == ("otpauth", "totp")
    assert parts.path == "/mlwarden:alice%40mlwarden.local%2F0123abcd"  # one path segment
    query = parse_qs(parts.query)
    assert query == {
        "secret": [totp.secret_base32(secret)],
        "issuer": ["mlwarden"],
        "algorithm": ["SHA1"],
        "digits": ["6"],
        "period": ["30"],
    }
    parsed = pyotp.parse_uri(uri)
    assert isinstance(parsed, pyotp.TOTP)
    assert parsed.secret == totp.secret_base32(secret) and parsed.issuer == "mlwarden"
    assert parsed.name == "alice@mlwarden.local/0123abcd"
    assert (parsed.digits, parsed.interval, parsed.at(1_700_000_000)) == (6, 30, totp.code_at(secret, 1_700_000_000))


def test_times_before_the_epoch_are_refused() -> None:
    with pytest.raises(ValueError, match="epoch"):
        totp.time_step(-1)
