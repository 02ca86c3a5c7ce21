"""7z archives, read with the standard library (lzma, zlib, bz2): no py7zr needed.

Structure per 7-Zip's DOC/7zFormat.txt: a 32-byte signature header points at the (possibly LZMA-
compressed) header, which lists packed streams, folders (coder chains) and files. Folders using LZMA,
LZMA2, Deflate, BZip2, Copy, Delta or BCJ filters are decoded as streams; encrypted (AES) or other
coders make the archive unverifiable.
"""

from __future__ import annotations

import bz2
import lzma
import struct
from dataclasses import dataclass, field

from mlwarden.scan.context import ScanContext
from mlwarden.scan.files import Spooled, window
from mlwarden.scan.model import Severity
from mlwarden.scan.source import Decompressor, Stream, ZlibInflater, decompressing

MAGIC = b"7z\xbc\xaf\x27\x1c"
MAX_HEADER = 64 << 20
_LZMA_IDS = {b"\x21": lzma.FILTER_LZMA2, b"\x03\x01\x01": lzma.FILTER_LZMA1}
_FILTER_IDS = {
    b"\x03": lzma.FILTER_DELTA, b"\x03\x03\x01\x03": lzma.FILTER_X86, b"\x03\x03\x02\x05": lzma.FILTER_POWERPC,
    b"\x03\x03\x04\x01": lzma.FILTER_IA64, b"\x03\x03\x05\x01": lzma.FILTER_ARM,
    b"\x03\x03\x07\x01": lzma.FILTER_ARMTHUMB, b"\x03\x03\x08\x05": lzma.FILTER_SPARC,
}  # fmt: skip
_AES = b"\x06\xf1\x07\x01"


class SevenZipError(ValueError):
    """The archive is not a 7z archive this reader understands."""


class Unsupported(Exception):
    """A coder this reader cannot decode (encryption included)."""


@dataclass
class Folder:
    coders: list[tuple[bytes, bytes]]  # (codec id, properties), in the order 7z lists them
    unpack_sizes: list[int] = field(default_factory=list)
    packed: int = 1
    substreams: int = 1
    sizes: list[int] = field(default_factory=list)


@dataclass
class Streams:
    pack_pos: int = 0
    pack_sizes: list[int] = field(default_factory=list)
    folders: list[Folder] = field(default_factory=list)


class _Buf:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def byte(self) -> int:
        if self.pos >= len(self.data):
            raise SevenZipError("header ends early")
        self.pos += 1
        return self.data[self.pos - 1]

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise SevenZipError("header ends early")
        self.pos += n
        return self.data[self.pos - n : self.pos]

    def number(self) -> int:
        first, mask, value = self.byte(), 0x80, 0
        for i in range(8):
            if not first & mask:
                return value | ((first & (mask - 1)) << (8 * i))
            value |= self.byte() << (8 * i)
            mask >>= 1
        return value

    def bits(self, n: int) -> list[bool]:
        out, byte, mask = [], 0, 0
        for _ in range(n):
            if not mask:
                byte, mask = self.byte(), 0x80
            out.append(bool(byte & mask))
            mask >>= 1
        return out

    def digests(self, n: int) -> None:
        defined = [True] * n if self.byte() else self.bits(n)
        self.take(4 * sum(defined))


class SevenZipScanner:
    name = "7z"
    priority = 10

    def sniff(self, head: bytes, size: int | None) -> bool:
        return head.startswith(MAGIC)

    def scan(self, stream: Stream, ctx: ScanContext) -> bool:
        ctx.describe("7z")
        with Spooled(stream, ctx.limits.max_spool_bytes) as archive:
            try:
                _scan_archive(archive, ctx)
            except Unsupported as error:
                ctx.add("unsupported-format", Severity.UNVERIFIABLE, str(error))
            except (SevenZipError, lzma.LZMAError, OSError, EOFError, struct.error) as error:
                ctx.add("corrupt-member", Severity.UNVERIFIABLE, f"cannot read the 7z archive: {error}")
        return True


def _scan_archive(stream: Stream, ctx: ScanContext) -> None:
    archive = stream.fork()  # windows are taken from the start of the archive
    start = stream.read_exact(32)
    offset, size = struct.unpack("<QQ", start[12:28])
    if size > MAX_HEADER:
        raise SevenZipError(f"header of {size} bytes")
    buf = _Buf(window(archive, 32 + offset, size).read_exact(size))
    kind = buf.byte()
    if kind == 0x17:  # encoded header: decode it from its own streams
        streams = _streams_info(buf)
        data = _folder_stream(archive, streams, 0, ctx).read(MAX_HEADER + 1)
        buf, kind = _Buf(data), data[0] if data else 0
        buf.pos = 1
    if kind != 0x01:
        raise SevenZipError("no header")
    streams, names = _header(buf)
    index = 0
    for folder_index, folder in enumerate(streams.folders):
        unpacked = _folder_stream(archive, streams, folder_index, ctx)
        for sub_size in folder.sizes:
            name = names[index] if index < len(names) else f"#{index}"
            member = unpacked.sub(sub_size)
            ctx.scan_member(name, member)
            member.close()
            index += 1


def _header(buf: _Buf) -> tuple[Streams, list[str]]:
    streams, names = Streams(), []
    prop = buf.byte()
    if prop == 0x02:  # archive properties
        while buf.byte():
            buf.take(buf.number())
        prop = buf.byte()
    if prop == 0x03:
        _streams_info(buf)
        prop = buf.byte()
    if prop == 0x04:
        streams = _streams_info(buf)
        prop = buf.byte()
    if prop == 0x05:
        names = _files_info(buf)
        prop = buf.byte()
    if prop != 0x00:
        raise SevenZipError(f"unexpected header property {prop}")
    return streams, names


def _streams_info(buf: _Buf) -> Streams:
    streams = Streams()
    prop = buf.byte()
    if prop == 0x06:
        streams.pack_pos, count = buf.number(), buf.number()
        prop = buf.byte()
        while prop != 0x00:
            if prop == 0x09:
                streams.pack_sizes = [buf.number() for _ in range(count)]
            elif prop == 0x0A:
                buf.digests(count)
            prop = buf.byte()
        prop = buf.byte()
    if prop == 0x07:
        streams.folders = _unpack_info(buf)
        prop = buf.byte()
    for folder in streams.folders:
        folder.sizes = [folder.unpack_sizes[-1] if folder.unpack_sizes else 0]
    if prop == 0x08:
        _substreams(buf, streams.folders)
        prop = buf.byte()
    if prop != 0x00:
        raise SevenZipError(f"unexpected streams property {prop}")
    return streams


def _unpack_info(buf: _Buf) -> list[Folder]:
    if buf.byte() != 0x0B:
        raise SevenZipError("folders expected")
    count = buf.number()
    if buf.byte():
        raise SevenZipError("external folders are not supported")
    folders = [_folder(buf) for _ in range(count)]
    if buf.byte() != 0x0C:
        raise SevenZipError("unpack sizes expected")
    for folder in folders:
        folder.unpack_sizes = [buf.number() for _ in folder.coders]
    prop = buf.byte()
    if prop == 0x0A:
        buf.digests(count)
        prop = buf.byte()
    if prop != 0x00:
        raise SevenZipError("end of folders expected")
    return folders


def _folder(buf: _Buf) -> Folder:
    coders, ins, outs = [], 0, 0
    for _ in range(buf.number()):
        flags = buf.byte()
        codec = buf.take(flags & 0x0F)
        n_in, n_out = (buf.number(), buf.number()) if flags & 0x10 else (1, 1)
        props = buf.take(buf.number()) if flags & 0x20 else b""
        coders.append((codec, props))
        ins, outs = ins + n_in, outs + n_out
    for _ in range(outs - 1):
        buf.number(), buf.number()  # bind pairs: a simple chain is all this reader decodes
    packed = ins - (outs - 1)
    if packed > 1:
        for _ in range(packed):
            buf.number()
    return Folder(coders, packed=packed)


def _substreams(buf: _Buf, folders: list[Folder]) -> None:
    prop = buf.byte()
    if prop == 0x0D:
        for folder in folders:
            folder.substreams = buf.number()
        prop = buf.byte()
    for folder in folders:
        total = folder.unpack_sizes[-1] if folder.unpack_sizes else 0
        if prop == 0x09 and folder.substreams > 1:
            sizes = [buf.number() for _ in range(folder.substreams - 1)]
            folder.sizes = [*sizes, total - sum(sizes)]
        else:
            folder.sizes = [total] if folder.substreams else []
    if prop == 0x09:
        prop = buf.byte()
    while prop != 0x00:
        if prop == 0x0A:
            buf.digests(sum(f.substreams for f in folders))
        prop = buf.byte()


def _files_info(buf: _Buf) -> list[str]:
    count, names, empty = buf.number(), [], []
    while prop := buf.byte():
        size = buf.number()
        body = _Buf(buf.take(size))
        if prop == 0x0E:
            empty = body.bits(count)
        elif prop == 0x11 and not body.byte():
            names = body.data[1:].decode("utf-16-le", "replace").split("\x00")[:count]
    with_data = [n for i, n in enumerate(names) if not (empty[i] if i < len(empty) else False)]
    return with_data


def _folder_stream(archive: Stream, streams: Streams, index: int, ctx: ScanContext) -> Stream:
    if index >= len(streams.folders):
        raise SevenZipError("a folder is missing")
    folder = streams.folders[index]
    if folder.packed != 1:
        raise Unsupported("7z folder with several packed streams")
    first = sum(f.packed for f in streams.folders[:index])
    if first >= len(streams.pack_sizes):
        raise SevenZipError("a packed stream is missing")
    start = 32 + streams.pack_pos + sum(streams.pack_sizes[:first])
    return _decoder(window(archive, start, streams.pack_sizes[first]), folder.coders, ctx)


def _decoder(raw: Stream, coders: list[tuple[bytes, bytes]], ctx: ScanContext) -> Stream:
    ids = [codec for codec, _ in coders]
    if _AES in ids:
        raise Unsupported("encrypted 7z archive: content unknown")
    if ids == [b"\x00"]:
        return raw
    if len(coders) == 1 and ids[0] in (b"\x04\x01\x08", b"\x04\x02\x02"):
        dec: Decompressor = ZlibInflater(-15) if ids[0] == b"\x04\x01\x08" else bz2.BZ2Decompressor()
        return decompressing(raw, dec, ctx.meter())
    filters = []
    for codec, props in coders:
        fid = _LZMA_IDS.get(codec, _FILTER_IDS.get(codec))
        if fid is None:
            raise Unsupported(f"7z coder {codec.hex()} is not supported")
        spec = lzma._decode_filter_properties(fid, props) if props else {"id": fid}  # type: ignore[attr-defined]
        filters.append(spec)
    if filters[-1]["id"] not in _LZMA_IDS.values():
        filters.reverse()
    if filters[-1]["id"] not in _LZMA_IDS.values():
        raise Unsupported("7z coder chain without LZMA is not supported")
    return decompressing(raw, lzma.LZMADecompressor(lzma.FORMAT_RAW, filters=filters), ctx.meter())
