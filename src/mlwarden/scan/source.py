"""Byte streams the scanner reads: files, windows of files, memory, and decompressors.

Nothing here reads a whole file: a stream hands out what is asked for, skips by seeking where it can,
and a sub-stream (:meth:`Stream.sub`) lets a nested scanner read the next ``n`` bytes without copying
them. Decompressing streams charge every byte they produce to a :class:`Budget`, which is how limits on
expansion (zip bombs) are enforced while streaming.
"""

from __future__ import annotations

import io
import zlib
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import BinaryIO, Protocol

CHUNK = 1 << 20


class LimitExceeded(Exception):
    """A configured limit was reached; the scan of that part stops and it is reported unverifiable."""


class Budget:
    """Decompressed bytes one top-level scan may produce (shared by every nested stream)."""

    def __init__(self, total: int) -> None:
        self.left = total

    def charge(self, n: int) -> None:
        self.left -= n
        if self.left < 0:
            raise LimitExceeded("total decompressed size limit reached")


class Stream(ABC):
    """A forward-only byte stream with a position. ``size`` is the total length when known."""

    size: int | None = None
    seekable = False

    @abstractmethod
    def read(self, n: int) -> bytes: ...

    @abstractmethod
    def readline(self, limit: int) -> bytes: ...

    @abstractmethod
    def peek(self, n: int) -> bytes: ...

    @abstractmethod
    def skip(self, n: int) -> int: ...

    @abstractmethod
    def tell(self) -> int: ...

    @property
    def remaining(self) -> int | None:
        return None if self.size is None else self.size - self.tell()

    def sub(self, n: int) -> Stream:
        """The next ``n`` bytes as a stream of their own; close it to move this one past them."""
        return _Limited(self, n)

    def read_exact(self, n: int) -> bytes:
        data = self.read(n)
        if len(data) != n:
            raise EOFError(f"truncated: wanted {n} bytes at offset {self.tell() - len(data)}, got {len(data)}")
        return data

    def fork(self) -> Stream:
        """An independent stream from this position (itself when the stream cannot seek)."""
        return self

    def close(self) -> None:  # noqa: B027 - a default: most streams hold nothing to release
        """Release the stream; a sub-stream moves its parent to its end."""


class _SharedFile:
    """One open file read by several windows; remembers where the OS file position is."""

    def __init__(self, f: BinaryIO) -> None:
        self.f = f
        self.pos = f.tell()


class FileStream(Stream):
    """A window ``[start, end)`` of a seekable file."""

    seekable = True

    def __init__(self, f: BinaryIO | _SharedFile, start: int = 0, end: int | None = None) -> None:
        self._shared = f if isinstance(f, _SharedFile) else _SharedFile(f)
        if end is None:
            end = self._shared.f.seek(0, io.SEEK_END)
            self._shared.pos = end
        self._start, self._end, self._pos = start, end, start
        self.size = end - start
        self._parent: Stream | None = None

    def _at(self) -> BinaryIO:
        if self._shared.pos != self._pos:
            self._shared.f.seek(self._pos)
        return self._shared.f

    def read(self, n: int) -> bytes:
        n = max(0, min(n, self._end - self._pos))
        data = self._at().read(n)
        self._pos += len(data)
        self._shared.pos = self._pos
        return data

    def readline(self, limit: int) -> bytes:
        data = self._at().readline(max(0, min(limit, self._end - self._pos)))
        self._pos += len(data)
        self._shared.pos = self._pos
        return data

    def peek(self, n: int) -> bytes:
        data = self.read(n)
        self._pos -= len(data)
        return data

    def skip(self, n: int) -> int:
        n = max(0, min(n, self._end - self._pos))
        self._pos += n
        return n

    def tell(self) -> int:
        return self._pos - self._start

    def fork(self) -> Stream:
        return FileStream(self._shared, self._pos, self._end)

    def sub(self, n: int) -> Stream:
        child = FileStream(self._shared, self._pos, min(self._end, self._pos + max(0, n)))
        child._parent = self
        return child

    def close(self) -> None:
        if self._parent is not None:
            self._parent.skip(self.size or 0)
            self._parent = None


class BytesStream(Stream):
    """Bytes already in memory (small payloads, decoded strings, ``scan_bytes``)."""

    seekable = True

    def __init__(self, data: bytes | memoryview) -> None:
        self._data = memoryview(data)
        self._pos = 0
        self.size = len(self._data)

    def fork(self) -> Stream:
        return BytesStream(self._data[self._pos :])

    def sub(self, n: int) -> Stream:
        child = BytesStream(self._data[self._pos : self._pos + max(0, n)])
        self._pos = min(len(self._data), self._pos + max(0, n))
        return child

    def read(self, n: int) -> bytes:
        data = bytes(self._data[self._pos : self._pos + max(0, n)])
        self._pos += len(data)
        return data

    def readline(self, limit: int) -> bytes:
        end = min(len(self._data), self._pos + max(0, limit))
        chunk = self._data[self._pos : end]
        i = bytes(chunk).find(b"\n")
        return self.read(i + 1 if i >= 0 else len(chunk))

    def peek(self, n: int) -> bytes:
        return bytes(self._data[self._pos : self._pos + max(0, n)])

    def skip(self, n: int) -> int:
        n = max(0, min(n, len(self._data) - self._pos))
        self._pos += n
        return n

    def tell(self) -> int:
        return self._pos


class ChunkStream(Stream):
    """A non-seekable stream fed by ``pull(n)`` (decompressors, tar members): skip means read and drop."""

    def __init__(self, pull: Callable[[int], bytes], size: int | None = None) -> None:
        self._pull = pull
        self._buf = bytearray()
        self._off = 0
        self._pos = 0
        self._eof = False
        self.size = size

    def _fill(self, n: int) -> None:
        while len(self._buf) - self._off < n and not self._eof:
            chunk = self._pull(max(CHUNK, n))
            if not chunk:
                self._eof = True
                break
            if self._off:
                del self._buf[: self._off]
                self._off = 0
            self._buf += chunk

    def read(self, n: int) -> bytes:
        if n <= 0:
            return b""
        self._fill(n)
        data = bytes(self._buf[self._off : self._off + n])
        self._off += len(data)
        self._pos += len(data)
        return data

    def readline(self, limit: int) -> bytes:
        while True:
            i = self._buf.find(b"\n", self._off, self._off + limit)
            have = len(self._buf) - self._off
            if i >= 0:
                return self.read(i - self._off + 1)
            if have >= limit or self._eof:
                return self.read(min(have, limit))
            self._fill(have + CHUNK)

    def peek(self, n: int) -> bytes:
        self._fill(n)
        return bytes(self._buf[self._off : self._off + n])

    def skip(self, n: int) -> int:
        done = 0
        while done < n:
            got = len(self.read(min(CHUNK, n - done)))
            if not got:
                break
            done += got
        return done

    def tell(self) -> int:
        return self._pos


class _Limited(Stream):
    """The next ``n`` bytes of a non-seekable parent, read through it."""

    def __init__(self, parent: Stream, n: int) -> None:
        self._parent = parent
        self._start = parent.tell()
        left = parent.remaining
        self.size = n if left is None else max(0, min(n, left))

    def _left(self) -> int:
        return (self.size or 0) - self.tell()

    def read(self, n: int) -> bytes:
        return self._parent.read(min(n, self._left()))

    def readline(self, limit: int) -> bytes:
        return self._parent.readline(min(limit, self._left()))

    def peek(self, n: int) -> bytes:
        return self._parent.peek(min(n, self._left()))

    def skip(self, n: int) -> int:
        return self._parent.skip(min(n, self._left()))

    def tell(self) -> int:
        return self._parent.tell() - self._start

    def close(self) -> None:
        self.skip(self._left())


class ZlibInflater:
    """zlib's decompress object with the ``needs_input``/``eof`` interface of bz2 and lzma."""

    def __init__(self, wbits: int) -> None:
        self._d = zlib.decompressobj(wbits)

    @property
    def eof(self) -> bool:
        return self._d.eof

    @property
    def needs_input(self) -> bool:
        return not self._d.unconsumed_tail

    def decompress(self, data: bytes, max_length: int = -1) -> bytes:
        if not data:
            data = self._d.unconsumed_tail
        return self._d.decompress(data, max(0, max_length))


class Decompressor(Protocol):
    def decompress(self, data: bytes, max_length: int = -1) -> bytes: ...

    @property
    def eof(self) -> bool: ...

    @property
    def needs_input(self) -> bool: ...


class Meter:
    """Charges what a decompressor produces to the budget and stops bombs by size and by ratio."""

    def __init__(self, budget: Budget, *, ratio: int, floor: int, cap: int) -> None:
        self.budget, self.ratio, self.floor, self.cap = budget, ratio, floor, cap
        self.produced = 0

    def charge(self, n: int, consumed: int) -> None:
        self.produced += n
        self.budget.charge(n)
        if self.produced > self.cap:
            raise LimitExceeded(f"decompressed size above {self.cap} bytes")
        if self.produced > self.floor and self.produced > self.ratio * max(1, consumed):
            raise LimitExceeded(f"expansion ratio above {self.ratio}:1 (zip bomb?)")


def decompressing(raw: Stream, dec: Decompressor, meter: Meter) -> Stream:
    """A stream of what ``dec`` makes of ``raw`` (one compressed stream, e.g. a ZIP member)."""

    def pull(n: int) -> bytes:
        out = b""
        while not out and not dec.eof:
            data = raw.read(CHUNK) if dec.needs_input else b""
            if not data and dec.needs_input:
                raise EOFError("compressed data ends early")
            out = dec.decompress(data, n)
        meter.charge(len(out), raw.tell())
        return out

    return ChunkStream(pull)


def metered(read: Callable[[int], bytes], raw: Stream, meter: Meter) -> Stream:
    """A stream over a file-like decompressor (gzip.GzipFile, ...) reading from ``raw``."""

    def pull(n: int) -> bytes:
        out = read(n)
        meter.charge(len(out), raw.tell())
        return out

    return ChunkStream(pull)
