"""A slow, obvious implementation of docs/digests.md, written from the document, to check the fast one."""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import struct
from decimal import Decimal
from typing import Any

from mlwarden.audit import merkle
from mlwarden.data.schema import Column, ColumnType, Schema

TAGS = {
    ColumnType.BOOL: 1, ColumnType.INT: 2, ColumnType.FLOAT: 3, ColumnType.STRING: 4, ColumnType.BINARY: 5,
    ColumnType.DATE: 6, ColumnType.TIMESTAMP: 7, ColumnType.TIMESTAMP_UTC: 8, ColumnType.DECIMAL: 9,
}  # fmt: skip
EPOCH = dt.datetime(1970, 1, 1)


def encode_row(schema: Schema, row: tuple[Any, ...]) -> bytes:
    tags = bytes(0 if v is None else TAGS[c.type] for c, v in zip(schema.columns, row, strict=True))
    header = b"\x00" + tags
    header += b"\x00" * (-len(header) % 8)
    payloads = b"".join(_payload(c, v) for c, v in zip(schema.columns, row, strict=True))
    tails = b"".join(_tail(c, v) for c, v in zip(schema.columns, row, strict=True))
    return header + payloads + tails


def _payload(column: Column, value: Any) -> bytes:
    width = 16 if column.type is ColumnType.DECIMAL else 8
    if value is None:
        return b"\x00" * width
    kind = column.type
    if kind is ColumnType.BOOL:
        return struct.pack("<Q", 1 if value else 0)
    if kind is ColumnType.INT:
        return struct.pack("<q", value)
    if kind is ColumnType.FLOAT:
        if math.isnan(value):
            return struct.pack("<Q", 0x7FF8000000000000)
        return struct.pack("<d", 0.0 if value == 0 else value)
    if kind in (ColumnType.STRING, ColumnType.BINARY):
        return struct.pack("<Q", len(_bytes(value)))
    if kind is ColumnType.DATE:
        return struct.pack("<q", (value - dt.date(1970, 1, 1)).days)
    if kind in (ColumnType.TIMESTAMP, ColumnType.TIMESTAMP_UTC):
        naive = value.astimezone(dt.UTC).replace(tzinfo=None) if value.tzinfo else value
        delta = naive - EPOCH
        return struct.pack("<q", (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds)
    unscaled = int(Decimal(value).scaleb(column.scale))
    return unscaled.to_bytes(16, "little", signed=True)


def _tail(column: Column, value: Any) -> bytes:
    if column.type not in (ColumnType.STRING, ColumnType.BINARY) or value is None:
        return b""
    return _bytes(value)


def _bytes(value: str | bytes) -> bytes:
    return value.encode("utf-8") if isinstance(value, str) else value


def row_digest(schema: Schema, row: tuple[Any, ...]) -> bytes:
    return hashlib.sha256(encode_row(schema, row)).digest()


def version_digest(schema: Schema, rows: list[tuple[Any, ...]]) -> str:
    schema_digest = hashlib.sha256(schema.canonical()).digest()
    root = merkle.root([row_digest(schema, r) for r in rows])
    body = b"mlwarden.dataset-version.v1\n" + schema_digest + len(rows).to_bytes(8, "little") + root
    return "sha256:" + hashlib.sha256(body).hexdigest()
