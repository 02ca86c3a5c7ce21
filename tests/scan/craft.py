"""Building test files byte by byte (pickletools-level opcodes, raw ZIP records, protobuf, GGUF, 7z).

Nothing here is ever loaded: the files exist to be scanned.
"""

from __future__ import annotations

import io
import lzma
import struct
import zipfile
import zlib

PROTO4 = b"\x80\x04"
STOP, MARK, TUPLE, REDUCE, MEMOIZE, STACK_GLOBAL = b".", b"(", b"t", b"R", b"\x94", b"\x93"
TUPLE1, EMPTY_DICT, EMPTY_TUPLE, BUILD, NONE = b"\x85", b"}", b")", b"b", b"N"


def s(text: str) -> bytes:
    """SHORT_BINUNICODE (or BINUNICODE when long)."""
    raw = text.encode()
    return b"\x8c" + bytes([len(raw)]) + raw if len(raw) < 256 else b"X" + struct.pack("<I", len(raw)) + raw


def b(data: bytes) -> bytes:
    """SHORT_BINBYTES / BINBYTES."""
    return b"C" + bytes([len(data)]) + data if len(data) < 256 else b"B" + struct.pack("<I", len(data)) + data


def glob(module: str, name: str) -> bytes:
    return b"c" + f"{module}\n{name}\n".encode()


def sglob(module: str, name: str) -> bytes:
    return s(module) + s(name) + STACK_GLOBAL


def put(i: int) -> bytes:
    return b"q" + bytes([i])


def get(i: int) -> bytes:
    return b"h" + bytes([i])


def call(module: str, name: str, *args: bytes, proto: int = 4) -> bytes:
    """``module.name(*args)`` as a complete pickle."""
    head = b"\x80" + bytes([proto]) if proto >= 2 else b""
    target = sglob(module, name) if proto >= 4 else glob(module, name)
    return head + target + MARK + b"".join(args) + TUPLE + REDUCE + STOP


def frame(body: bytes, length: int | None = None) -> bytes:
    """PROTO 4, a FRAME of ``length`` (default: the real length), then ``body``."""
    return PROTO4 + b"\x95" + struct.pack("<Q", len(body) if length is None else length) + body


def zip_bytes(members: dict[str, bytes], method: int = zipfile.ZIP_STORED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=method) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buf.getvalue()


def raw_zip(
    name: str,
    data: bytes,
    *,
    flags: int = 0,
    crc: int | None = None,
    local_name: str | None = None,
    in_directory: bool = True,
    prefix: bytes = b"",
) -> bytes:
    """One stored entry, every field under the caller's control (flag bits, CRC, names, directory)."""
    crc = zlib.crc32(data) if crc is None else crc
    lname = (local_name or name).encode()
    local = struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, flags, 0, 0, 0, crc, len(data), len(data), len(lname), 0)
    body = prefix + local + lname + data
    entries = []
    if in_directory:
        cname = name.encode()
        central = struct.pack(
            "<4s6H3L5H2L", b"PK\x01\x02", 20, 20, flags, 0, 0, 0, crc, len(data), len(data), len(cname), 0, 0, 0, 0,
            0, len(prefix),
        )  # fmt: skip
        entries.append(central + cname)
    cd = b"".join(entries)
    eocd = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, len(entries), len(entries), len(cd), len(body), 0)
    return body + cd + eocd


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def pb(field: int, value: int | bytes | str) -> bytes:
    """One protobuf field: an int is a varint, bytes/str are length-delimited."""
    if isinstance(value, int):
        return varint(field << 3) + varint(value)
    raw = value.encode() if isinstance(value, str) else value
    return varint(field << 3 | 2) + varint(len(raw)) + raw


def gguf(metadata: dict[str, str | int]) -> bytes:
    out = bytearray(b"GGUF" + struct.pack("<IQQ", 3, 0, len(metadata)))
    for key, value in metadata.items():
        out += struct.pack("<Q", len(key)) + key.encode()
        if isinstance(value, str):
            raw = value.encode()
            out += struct.pack("<IQ", 8, len(raw)) + raw
        else:
            out += struct.pack("<II", 4, value)
    return bytes(out)


def sevenzip(name: str, data: bytes) -> bytes:
    """A minimal 7z archive: one file in one LZMA2 folder, plain (unencoded) header."""
    packed = lzma.compress(data, format=lzma.FORMAT_RAW, filters=[{"id": lzma.FILTER_LZMA2}])
    props = lzma._encode_filter_properties({"id": lzma.FILTER_LZMA2})  # type: ignore[attr-defined]
    folder = b"\x01" + bytes([0x20 | 1]) + b"\x21" + varint(len(props)) + props
    streams = (
        b"\x04"
        + b"\x06" + varint(0) + varint(1) + b"\x09" + varint(len(packed)) + b"\x00"
        + b"\x07\x0b" + varint(1) + b"\x00" + folder + b"\x0c" + varint(len(data)) + b"\x00"
        + b"\x00"
    )  # fmt: skip
    names = b"\x00" + (name + "\x00").encode("utf-16-le")
    files = b"\x05" + varint(1) + b"\x11" + varint(len(names)) + names + b"\x00"
    header = b"\x01" + streams + files + b"\x00"
    start = struct.pack("<QQL", len(packed), len(header), zlib.crc32(header))
    return b"7z\xbc\xaf\x27\x1c\x00\x04" + struct.pack("<L", zlib.crc32(start)) + start + packed + header
