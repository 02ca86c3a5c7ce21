"""Canonical encoding v1 (docs/audit.md): pinned bytes, so the format cannot drift silently."""

from __future__ import annotations

import hashlib

import pytest

from mlwarden.audit import encoding, merkle
from mlwarden.domain.events import AuditEvent, AuditRecord, AuthMethod, Outcome, Resource
from mlwarden.errors import IntegrityError, UsageError

EVENT = AuditEvent(
    seq=42,
    ts="2026-11-26T09:30:00.123456Z",
    record=AuditRecord(
        actor="alice",
        auth_method=AuthMethod.TOKEN,
        action="user.add",
        resource=Resource("user", "bob\nevil \u00e9", project=None),
        outcome=Outcome.OK,
        digest_after="sha256:" + "ab" * 32,
        request_id="r1",
        client="cli",
        details={"admin": False, "n": 3},
        credential="token:0123456789ab",
    ),
)
GOLDEN = (
    b'{"action":"user.add","actor":"alice","auth":"token","client":"cli","credential":"token:0123456789ab",'
    b'"details":{"admin":false,"n":3},"digest_after":"sha256:' + b"ab" * 32 + b'","digest_before":null,'
    b'"outcome":"ok","project":null,"reason":null,"request_id":"r1","resource_id":"bob\\nevil \xc3\xa9",'
    b'"resource_type":"user","seq":42,"ts":"2026-11-26T09:30:00.123456Z","v":1}'
)


def test_v1_bytes_are_pinned() -> None:
    assert encoding.encode(EVENT) == GOLDEN
    assert merkle.leaf_hash(GOLDEN) == hashlib.sha256(b"\x00" + GOLDEN).digest()


def test_round_trip() -> None:
    assert encoding.decode(GOLDEN) == EVENT


@pytest.mark.parametrize(
    "body",
    [
        b"[]",
        b"null",
        b"not json",
        b"\xff",
        GOLDEN.replace(b'"v":1', b'"v":2'),
        GOLDEN.replace(b'"seq":42', b'"seq": 42'),  # not canonical
        GOLDEN.replace(b'"v":1}', b'"v":1,"extra":1}'),
        GOLDEN.replace(b'"auth":"token"', b'"auth":"telepathy"'),
    ],
)
def test_decode_rejects_anything_else(body: bytes) -> None:
    with pytest.raises(IntegrityError):
        encoding.decode(body)


def test_floats_and_odd_details_are_refused() -> None:
    for details in ({"x": 1.5}, {"x": [1]}, {"x": {"y": 1}}):
        record = AuditRecord("a", AuthMethod.TOKEN, "x.y", Resource("t", "1"), Outcome.OK, details=details)  # type: ignore[arg-type]
        with pytest.raises(UsageError):
            encoding.encode(AuditEvent(0, EVENT.ts, record))
