"""Compressed single streams (gzip, bzip2, xz, lzma, zlib): joblib's compressed files, .pt.gz, .tar.gz.

The content is decompressed as a stream (never whole), charged to the scan's budget, and recognised by
content like any file. Formats the standard library cannot decode (lz4, zstd) are unverifiable.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import zlib
from typing import BinaryIO, cast

from mlwarden.scan.context import ScanContext
from mlwarden.scan.files import StreamFile
from mlwarden.scan.model import Severity
from mlwarden.scan.source import LimitExceeded, Stream, ZlibInflater, decompressing, metered

_UNSUPPORTED = {b"\x04\x22\x4d\x18": "lz4", b"\x28\xb5\x2f\xfd": "zstd"}


def _kind(head: bytes) -> str | None:
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    if head.startswith(b"BZh") and head[3:4].isdigit() and head[4:10] == b"1AY&SY":
        return "bzip2"
    if head.startswith(b"\xfd7zXZ\x00"):
        return "xz"
    if len(head) >= 13 and head[0] == 0x5D and head[1:3] == b"\x00\x00" and head[3] & 0x80 == 0:
        return "lzma"
    if len(head) >= 2 and head[0] == 0x78 and (head[0] * 256 + head[1]) % 31 == 0:
        return "zlib"
    return _UNSUPPORTED.get(head[:4])


class CompressedScanner:
    name = "compressed"
    priority = 30

    def sniff(self, head: bytes, size: int | None) -> bool:
        return _kind(head) is not None

    def scan(self, stream: Stream, ctx: ScanContext) -> bool:
        kind = _kind(stream.peek(16)) or ""
        if kind in _UNSUPPORTED.values():
            ctx.describe(kind)
            ctx.add("unsupported-format", Severity.UNVERIFIABLE, f"{kind} compression is not supported")
            return True
        inner = _open(kind, stream, ctx)
        ctx.describe(kind)
        try:
            ctx.child(f"[{kind}]").scan(inner)
        except (OSError, EOFError, zlib.error, lzma.LZMAError) as error:
            ctx.add("corrupt-member", Severity.UNVERIFIABLE, f"{kind} data cannot be decompressed: {error}")
        except LimitExceeded as error:
            ctx.add("limit-exceeded", Severity.UNVERIFIABLE, str(error))
        return True


def _open(kind: str, stream: Stream, ctx: ScanContext) -> Stream:
    if kind == "zlib":
        return decompressing(stream, ZlibInflater(15), ctx.meter())
    raw = cast(BinaryIO, StreamFile(stream))
    reader: gzip.GzipFile | bz2.BZ2File | lzma.LZMAFile
    if kind == "gzip":
        reader = gzip.GzipFile(fileobj=raw, mode="rb")
    elif kind == "bzip2":
        reader = bz2.BZ2File(raw, "rb")
    else:
        reader = lzma.LZMAFile(raw, "rb", format=lzma.FORMAT_XZ if kind == "xz" else lzma.FORMAT_ALONE)
    return metered(reader.read, stream, ctx.meter())
