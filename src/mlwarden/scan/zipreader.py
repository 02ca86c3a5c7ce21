"""A ZIP reader as lenient as PyTorch's (miniz), plus the view a streaming unzipper has.

Layout per APPNOTE.TXT (https://pkware.cachefly.net/webdocs/casestudies/APPNOTE.TXT). Like miniz it
takes the entry list from the central directory, ignores CRCs and the local header's file name, and
reads flagged-as-encrypted entries whose data is not actually encrypted. It also walks the local headers
from the start, so an entry that only a streaming reader sees (absent from the central directory) is
scanned too. Differences between the two views are returned as anomalies; overlapping entries (the
quoted-overlap zip bomb) are returned as well.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from mlwarden.scan.source import LimitExceeded, Stream

EOCD = b"PK\x05\x06"
EOCD64 = b"PK\x06\x06"
LOCATOR64 = b"PK\x06\x07"
CENTRAL = b"PK\x01\x02"
LOCAL = b"PK\x03\x04"
_MAX_COMMENT = 65535


@dataclass
class ZipEntry:
    name: str
    method: int
    flags: int
    crc: int
    compressed: int
    size: int
    local_offset: int
    data_offset: int = -1
    in_directory: bool = True

    @property
    def encrypted_flag(self) -> bool:
        return bool(self.flags & 0x41) or self.method == 99

    @property
    def is_dir(self) -> bool:
        return self.name.endswith("/") and self.size == 0


@dataclass
class ZipListing:
    entries: list[ZipEntry]
    anomalies: list[str]
    overlapping: bool = False


def read_zip(stream: Stream, max_members: int) -> ZipListing | None:
    """The entries of the ZIP in ``stream`` (seekable), or None when it has neither directory nor entries."""
    size = stream.size or 0
    anomalies: list[str] = []
    entries = _central_directory(stream, size, max_members, anomalies)
    known = {e.local_offset for e in entries} if entries is not None else set()
    if entries is None:
        anomalies.append("no central directory: entries taken from local headers")
        entries = []
    for entry in entries:
        _locate(stream, entry, anomalies)
    hidden = _walk_local_headers(stream, size, known, entries, max_members)
    if hidden:
        anomalies.append(f"{len(hidden)} entr{'y' if len(hidden) == 1 else 'ies'} missing from the central directory")
    entries.extend(hidden)
    if not entries and not known:
        return None if _find_eocd(stream, size) < 0 else ZipListing([], anomalies)
    return ZipListing(entries, anomalies, _overlapping(entries))


def _read_at(stream: Stream, offset: int, n: int) -> bytes:
    view = stream.fork()
    view.skip(offset)
    return view.read(n)


def has_end_record(stream: Stream) -> bool:
    """Whether a seekable stream ends like a ZIP archive (an end-of-central-directory record)."""
    return _find_eocd(stream, stream.remaining or 0) >= 0


def _find_eocd(stream: Stream, size: int) -> int:
    start = max(0, size - 22 - _MAX_COMMENT)
    tail = _read_at(stream, start, size - start)
    pos = tail.rfind(EOCD)
    while pos >= 0 and len(tail) - pos < 22:
        pos = tail.rfind(EOCD, 0, pos)
    return -1 if pos < 0 else start + pos


def _central_directory(stream: Stream, size: int, limit: int, anomalies: list[str]) -> list[ZipEntry] | None:
    eocd = _find_eocd(stream, size)
    if eocd < 0:
        return None
    _, _, _, _, count, cd_size, cd_offset, _ = struct.unpack("<4s4H2LH", _read_at(stream, eocd, 22))
    if 0xFFFF in (count,) or 0xFFFFFFFF in (cd_size, cd_offset):
        count, cd_size, cd_offset = _zip64_end(stream, eocd, (count, cd_size, cd_offset))
    delta = 0
    if _read_at(stream, cd_offset, 4) != CENTRAL and eocd - cd_size >= 0:
        delta = eocd - cd_size - cd_offset  # data prepended to the archive (self-extracting, polyglot)
        if delta:
            anomalies.append(f"archive starts {delta} bytes into the file")
    if count > limit:
        raise LimitExceeded(f"archive lists {count} entries (limit {limit})")
    raw = _read_at(stream, cd_offset + delta, min(cd_size, size))
    entries = _parse_directory(raw, count, delta)
    if len(entries) != count:
        anomalies.append(f"central directory lists {count} entries, {len(entries)} readable")
    return entries


def _zip64_end(stream: Stream, eocd: int, fallback: tuple[int, int, int]) -> tuple[int, int, int]:
    locator = _read_at(stream, eocd - 20, 20)
    if len(locator) != 20 or not locator.startswith(LOCATOR64):
        return fallback
    (record_offset,) = struct.unpack("<Q", locator[8:16])
    record = _read_at(stream, record_offset, 56)
    if len(record) != 56 or not record.startswith(EOCD64):
        return fallback
    count, cd_size, cd_offset = struct.unpack("<QQQ", record[32:56])
    return count, cd_size, cd_offset


def _parse_directory(raw: bytes, count: int, delta: int) -> list[ZipEntry]:
    entries: list[ZipEntry] = []
    pos = 0
    while len(entries) < count and raw[pos : pos + 4] == CENTRAL and pos + 46 <= len(raw):
        fields = struct.unpack("<4s6H3L5H2L", raw[pos : pos + 46])
        flags, method, crc, comp, size = fields[3], fields[4], fields[7], fields[8], fields[9]
        name_len, extra_len, comment_len, offset = fields[10], fields[11], fields[12], fields[16]
        name = raw[pos + 46 : pos + 46 + name_len].decode("utf-8" if flags & 0x800 else "cp437", "replace")
        extra = raw[pos + 46 + name_len : pos + 46 + name_len + extra_len]
        size, comp, offset = _zip64_extra(extra, size, comp, offset)
        entries.append(ZipEntry(name, method, flags, crc, comp, size, offset + delta))
        pos += 46 + name_len + extra_len + comment_len
    return entries


def _zip64_extra(extra: bytes, size: int, comp: int, offset: int) -> tuple[int, int, int]:
    pos = 0
    while pos + 4 <= len(extra):
        tag, length = struct.unpack("<HH", extra[pos : pos + 4])
        body = extra[pos + 4 : pos + 4 + length]
        if tag == 1:
            values = [struct.unpack("<Q", body[i : i + 8])[0] for i in range(0, len(body) - 7, 8)]
            if size == 0xFFFFFFFF and values:
                size = values.pop(0)
            if comp == 0xFFFFFFFF and values:
                comp = values.pop(0)
            if offset == 0xFFFFFFFF and values:
                offset = values.pop(0)
        pos += 4 + length
    return size, comp, offset


def _locate(stream: Stream, entry: ZipEntry, anomalies: list[str]) -> None:
    header = _read_at(stream, entry.local_offset, 30)
    if len(header) < 30 or not header.startswith(LOCAL):
        anomalies.append(f"{entry.name}: no local header at offset {entry.local_offset}")
        return
    name_len, extra_len = struct.unpack("<HH", header[26:30])
    local_name = _read_at(stream, entry.local_offset + 30, name_len).decode("utf-8", "replace")
    if local_name != entry.name:
        anomalies.append(f"{entry.name}: local header names it {local_name!r}")
    local_flags = struct.unpack("<H", header[6:8])[0]
    if local_flags != entry.flags:
        anomalies.append(f"{entry.name}: flags {local_flags:#x} in the local header, {entry.flags:#x} in the directory")
    entry.data_offset = entry.local_offset + 30 + name_len + extra_len


def _walk_local_headers(
    stream: Stream, size: int, known: set[int], entries: list[ZipEntry], limit: int
) -> list[ZipEntry]:
    """Entries a streaming reader finds by walking local headers that the directory does not list."""
    by_offset = {e.local_offset: e for e in entries}
    hidden: list[ZipEntry] = []
    pos = min(known) if known else 0
    while pos + 30 <= size and len(hidden) + len(entries) <= limit:
        header = _read_at(stream, pos, 30)
        if not header.startswith(LOCAL):
            break
        fields = struct.unpack("<4s5H3L2H", header)
        flags, method, crc, comp, usize, name_len, extra_len = (
            fields[2], fields[3], fields[6], fields[7], fields[8], fields[9], fields[10],
        )  # fmt: skip
        data = pos + 30 + name_len + extra_len
        known_entry = by_offset.get(pos)
        if known_entry is not None:
            comp = known_entry.compressed
        elif flags & 0x08 and comp == 0:
            break  # size only in a trailing descriptor: a streaming reader must guess; stop here
        else:
            name = _read_at(stream, pos + 30, name_len).decode("utf-8", "replace")
            hidden.append(ZipEntry(name, method, flags, crc, comp, usize, pos, data, in_directory=False))
        pos = _after_data(stream, data + comp, flags)
    return hidden


def _after_data(stream: Stream, end: int, flags: int) -> int:
    """Past an entry's data and its data descriptor (12 to 24 bytes, the signature is optional)."""
    if not flags & 0x08:
        return end
    for length in (16, 24, 12, 20):
        if _read_at(stream, end + length, 4) in (LOCAL, CENTRAL):
            return end + length
    return end + 16


def _overlapping(entries: list[ZipEntry]) -> bool:
    spans = sorted(
        (e.data_offset, e.data_offset + e.compressed) for e in entries if e.data_offset >= 0 and e.compressed
    )
    return any(later[0] < earlier[1] for earlier, later in zip(spans, spans[1:], strict=False))
