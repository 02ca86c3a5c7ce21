"""Recognising a pickle or an archive hidden in a string: raw, base64 or hex encoded."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable

# A pickle of protocol 2+ starts with PROTO; protocol 0/1 streams written by pickle.dumps start with a
# GLOBAL/INST line, possibly after a MARK and a few text arguments.
_PROTO0 = re.compile(rb"\A(?:\((?:[^\n]{0,80}\n){0,3})?[ci][A-Za-z_][\w.]*\n[A-Za-z_][\w.]*\n")
_B64_HEAD = re.compile(rb"\A[A-Za-z0-9+/_-]{16}")
_HEX_HEAD = re.compile(rb"\A(?:[0-9a-fA-F]{2}){8}")
_HEX_PREFIX = re.compile(rb"\A(?:[0-9a-fA-F]{2})+")


def raw_kind(head: bytes) -> str | None:
    """'pickle' or 'zip' when ``head`` (the first bytes of a payload) starts one, else None."""
    if len(head) >= 2 and head[0] == 0x80 and head[1] <= 5:
        return "pickle"
    if head.startswith(b"PK\x03\x04"):
        return "zip"
    if _PROTO0.match(head):
        return "pickle"
    return None


def decode_candidate(data: bytes, limit: int) -> tuple[str, bytes] | None:
    """``(how, payload)`` when ``data`` is a pickle or archive, raw or base64/hex encoded, else None."""
    kind = raw_kind(data[:256])
    if kind is not None:
        return kind, data
    if len(data) > limit or len(data) < 16:
        return None
    text = data.strip()
    if _HEX_HEAD.match(text) and _hex_head_matches(text):
        return _decoded("hex", text, lambda t: binascii.unhexlify(t))
    if _B64_HEAD.match(text) and _base64_head_matches(text):
        return _decoded("base64", text, lambda t: base64.b64decode(t + b"=" * (-len(t) % 4), altchars=_altchars(t)))
    return None


def _decoded(how: str, text: bytes, decode: Callable[[bytes], bytes]) -> tuple[str, bytes] | None:
    try:
        payload = decode(text)
    except (binascii.Error, ValueError):
        return None
    return (how, payload) if raw_kind(payload[:256]) else None


def _hex_head_matches(text: bytes) -> bool:
    head = _HEX_PREFIX.match(text[:256])
    return head is not None and raw_kind(binascii.unhexlify(head.group(0))) is not None


def _altchars(data: bytes) -> bytes | None:
    return b"-_" if (b"-" in data or b"_" in data) else None


def _base64_head_matches(data: bytes) -> bool:
    """Decode only the first 12 characters to see whether a full decode is worth it."""
    try:
        head = base64.b64decode(data[:12], altchars=_altchars(data[:12]))
    except (binascii.Error, ValueError):
        return False
    return raw_kind(head) is not None or head[:1] in (b"c", b"(", b"\x80")
