"""API tokens: format, parsing of hostile input, hashing and constant-time comparison."""

from __future__ import annotations

import base64
import hashlib
import re

import pytest

from mlwarden.errors import AuthenticationError
from mlwarden.identity.tokens import (
    SECRET_BYTES,
    TOKEN_CHARS,
    ParsedToken,
    TokenId,
    hash_secret,
    issue_token,
    parse_token,
    secret_matches,
)

EXAMPLE_ID = "0123456789ab"
EXAMPLE_SECRET = base64.urlsafe_b64encode(bytes(range(32))).rstrip(b"=").decode()
EXAMPLE = f"mlw_{EXAMPLE_ID}_{EXAMPLE_SECRET}"


def test_issue_parse_match_round_trip() -> None:
    issued = issue_token()
    assert re.fullmatch(r"mlw_[0-9a-f]{12}_[A-Za-z0-9_-]{43}", issued.plaintext)
    assert len(issued.plaintext) == TOKEN_CHARS
    parsed = parse_token(issued.plaintext)
    assert parsed.token_id == issued.token_id
    assert secret_matches(parsed.secret, issued.secret_hash)
    assert issued.secret_hash == hashlib.sha256(parsed.secret.encode()).hexdigest()
    assert issued.secret_hash != parsed.secret and parsed.secret not in issued.secret_hash


def test_secret_has_at_least_128_bits() -> None:
    secret = parse_token(issue_token().plaintext).secret
    raw = base64.urlsafe_b64decode(secret + "=")
    assert len(raw) == SECRET_BYTES
    assert len(raw) * 8 >= 128


def test_tokens_differ() -> None:
    tokens = [issue_token() for _ in range(50)]
    assert len({t.plaintext for t in tokens}) == 50
    assert len({t.token_id for t in tokens}) == 50
    assert len({t.secret_hash for t in tokens}) == 50


def test_secret_not_in_repr() -> None:
    issued = issue_token()
    secret = parse_token(issued.plaintext).secret
    assert secret not in repr(issued)
    assert secret not in repr(parse_token(issued.plaintext))


def test_parse_example() -> None:
    assert parse_token(EXAMPLE) == ParsedToken(TokenId(EXAMPLE_ID), EXAMPLE_SECRET)


def test_secret_containing_underscore_parses() -> None:
    secret = "_" * 42 + "A"
    assert parse_token(f"mlw_{EXAMPLE_ID}_{secret}").secret == secret


@pytest.mark.parametrize(
    "plaintext",
    [
        "",
        "mlw_",
        EXAMPLE[:-1],  # short secret
        EXAMPLE + "A",  # long secret
        EXAMPLE + "A" * 10_000,  # over-long
        "mlx_" + EXAMPLE[4:],  # wrong prefix
        "MLW_" + EXAMPLE[4:],
        f"mlw_{EXAMPLE_ID.upper()}_{EXAMPLE_SECRET}",  # token id is lowercase hex
        f"mlw_0123456789ag_{EXAMPLE_SECRET}",  # non-hex id
        f"mlw_0123456789a_{EXAMPLE_SECRET}A",  # id too short (same total length)
        f"mlw_0123456789abc{EXAMPLE_SECRET}",  # missing separator
        f"mlw_{EXAMPLE_ID}-{EXAMPLE_SECRET}",
        f"mlw_{EXAMPLE_ID}_{EXAMPLE_SECRET[:-1]}=",  # padding
        f"mlw_{EXAMPLE_ID}_{EXAMPLE_SECRET[:-1]}+",  # standard, not urlsafe, alphabet
        f"mlw_{EXAMPLE_ID}_{EXAMPLE_SECRET[:-1]}/",
        f"mlw_{EXAMPLE_ID}_{EXAMPLE_SECRET[:-1]}B",  # non-canonical: trailing bits set
        f" {EXAMPLE[1:]}",
        EXAMPLE[:-1] + " ",
        EXAMPLE[:-1] + "\n",
        EXAMPLE + "\n",
        EXAMPLE.replace("0", "\u0660", 1),  # non-ASCII digit
        f"mlw_{EXAMPLE_ID}_{EXAMPLE_SECRET[:-1]}\u00e9",
        "\x00" * TOKEN_CHARS,
    ],
)
def test_malformed_tokens_rejected(plaintext: str) -> None:
    with pytest.raises(AuthenticationError) as info:
        parse_token(plaintext)
    assert plaintext.strip() == "" or EXAMPLE_SECRET[:20] not in str(info.value)  # never echo the secret
    assert info.value.hint


def test_non_string_rejected() -> None:
    with pytest.raises(AuthenticationError):
        parse_token(EXAMPLE.encode())  # type: ignore[arg-type]


def test_secret_matches_rejects_wrong_secret_and_junk_hash() -> None:
    stored = hash_secret(EXAMPLE_SECRET)
    assert secret_matches(EXAMPLE_SECRET, stored)
    assert not secret_matches(EXAMPLE_SECRET[:-1] + "B", stored)
    assert not secret_matches(EXAMPLE_SECRET, stored.upper())
    assert not secret_matches(EXAMPLE_SECRET, "")
    assert not secret_matches(EXAMPLE_SECRET, "\u00e9" * 64)
    assert not secret_matches("\u00e9", stored)
