"""ZIP containers: PyTorch archives, NumPy ``.npz``, Keras ``.keras`` and any other ZIP.

Members are recognised by content, never by name, except where the loader itself goes by name: the
raw storages of a PyTorch archive (``*/data/<key>``), which torch reads as bytes and never unpickles
(they are still checked for a pickle hidden in them), and the JSON and weights of a Keras archive.
"""

from __future__ import annotations

import bz2
import lzma
import re
import struct

from mlwarden.scan.context import Collector, ScanContext
from mlwarden.scan.files import Spooled, window
from mlwarden.scan.formats.keras import check_keras_json
from mlwarden.scan.formats.pickle import scan_pickles
from mlwarden.scan.model import Severity
from mlwarden.scan.nested import raw_kind
from mlwarden.scan.source import Stream, ZlibInflater, decompressing
from mlwarden.scan.zipreader import ZipEntry, read_zip

_STORAGE = re.compile(r"(?:^|/)data/[^/]+\Z")
_TORCHSCRIPT_CODE = re.compile(r"(?:^|/)code/.+\.py\Z")
_DECODE_ERRORS = (OSError, EOFError, lzma.LZMAError, ValueError, struct.error)


class ZipScanner:
    name = "zip"
    priority = 10

    def sniff(self, head: bytes, size: int | None) -> bool:
        return head[:4] in (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")

    def scan(self, stream: Stream, ctx: ScanContext) -> bool:
        with Spooled(stream, ctx.limits.max_spool_bytes) as seekable:
            listing = read_zip(seekable, ctx.limits.max_members)
            if listing is None:
                return False
            kind = classify([e.name for e in listing.entries])
            ctx.describe(kind)
            for anomaly in listing.anomalies:
                ctx.add("zip-anomaly", Severity.INFO, anomaly)
            if listing.overlapping:
                ctx.add("zip-bomb", Severity.UNSAFE, "entries share their compressed data (an overlapping zip bomb)")
                return True
            code_reported = False
            for entry in listing.entries:
                if kind == "torchscript" and _TORCHSCRIPT_CODE.search(entry.name) and not code_reported:
                    code_reported = True
                    ctx.add("torchscript-code", Severity.UNVERIFIABLE, "TorchScript code is not analysed")
                _member(seekable, entry, kind, ctx)
        return True


def classify(names: list[str]) -> str:
    base = {n.rsplit("/", 1)[-1] for n in names}
    if any(_TORCHSCRIPT_CODE.search(n) for n in names) or "constants.pkl" in base:
        return "torchscript"
    if "data.pkl" in base:
        return "pytorch-zip"
    if {"config.json", "metadata.json"} <= set(names):
        return "keras"
    if names and all(n.endswith(".npy") for n in names):
        return "npz"
    return "zip"


def _member(archive: Stream, entry: ZipEntry, kind: str, ctx: ScanContext) -> None:
    if entry.is_dir:
        return
    if entry.data_offset < 0:
        ctx.child_location_add(entry.name, "unreadable-entry", Severity.UNVERIFIABLE, "entry data cannot be located")
        return
    if entry.method == 99 or (entry.flags & 1 and entry.method == 0 and entry.compressed == entry.size + 12):
        ctx.child_location_add(entry.name, "encrypted", Severity.UNVERIFIABLE, "encrypted entry: content unknown")
        return
    try:
        stream = _open(archive, entry, ctx)
        if stream is None:
            text = f"compression method {entry.method} is not supported"
            ctx.child_location_add(entry.name, "unsupported-format", Severity.UNVERIFIABLE, text)
        elif kind == "pytorch-zip" and _STORAGE.search(entry.name):
            if raw_kind(stream.peek(8)) == "pickle":  # torch reads storages as bytes; look anyway
                scan_pickles(stream, ctx.child(entry.name), lenient=True)
        elif kind == "keras" and entry.name.endswith(".json"):
            check_keras_json(stream, ctx.child(entry.name))
        elif kind == "keras" and entry.name.endswith(".weights.h5"):
            ctx.recognize("keras")  # weights only: Keras reads datasets from it, never a config
        elif entry.encrypted_flag:
            _flagged_encrypted(entry, stream, ctx)
        else:
            ctx.scan_member(entry.name, stream)
    except _DECODE_ERRORS as error:
        ctx.child_location_add(entry.name, "corrupt-member", Severity.UNVERIFIABLE, f"cannot decompress: {error}")


def _open(archive: Stream, entry: ZipEntry, ctx: ScanContext) -> Stream | None:
    raw = window(archive, entry.data_offset, entry.compressed)
    if entry.method == 0:
        return raw
    if entry.method == 8:
        return decompressing(raw, ZlibInflater(-15), ctx.meter())
    if entry.method == 12:
        return decompressing(raw, bz2.BZ2Decompressor(), ctx.meter())
    if entry.method == 14:  # 2-byte version, 2-byte properties size, LZMA1 properties, raw stream
        header = raw.read(4)
        props = raw.read(struct.unpack("<H", header[2:4])[0])
        filters = [lzma._decode_filter_properties(lzma.FILTER_LZMA1, props)]  # type: ignore[attr-defined]
        return decompressing(raw, lzma.LZMADecompressor(lzma.FORMAT_RAW, filters=filters), ctx.meter())
    return None


def _flagged_encrypted(entry: ZipEntry, stream: Stream, ctx: ScanContext) -> None:
    """PyTorch ignores the encryption bits: read the data as plain, but call it unverifiable if it is not."""
    scratch = ScanContext(ctx.policy, Collector(), ctx.budget, ctx.where, ctx.depth)
    try:
        known = scratch.scan_member(entry.name, stream) and scratch.collector.recognized
    except _DECODE_ERRORS:
        known = False
    if not known:
        ctx.child_location_add(entry.name, "encrypted", Severity.UNVERIFIABLE, "encrypted entry: content unknown")
        return
    ctx.collector.findings.extend(scratch.collector.findings)
    ctx.collector.globals.update(scratch.collector.globals)
    for fmt in scratch.collector.formats:
        ctx.recognize(fmt)
    ctx.child_location_add(entry.name, "zip-anomaly", Severity.INFO, "marked encrypted, but stored in plain text")
