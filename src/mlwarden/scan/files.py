"""Adapters between :class:`~mlwarden.scan.source.Stream` and file objects: windows, temporary copies
for archives that must be read randomly, and read-only file objects for gzip, tarfile and h5py."""

from __future__ import annotations

import io
import tempfile
from typing import Any, BinaryIO

from mlwarden.scan.source import CHUNK, FileStream, LimitExceeded, Stream


class StreamFile(io.RawIOBase):
    """A :class:`Stream` as a read-only file object (for gzip, bz2, lzma and tarfile)."""

    def __init__(self, stream: Stream) -> None:
        self.stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.stream.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class Spooled:
    """A seekable stream for ``stream``: itself if it can seek, else a temporary-file copy (bounded)."""

    def __init__(self, stream: Stream, limit: int) -> None:
        self._tmp: BinaryIO | None = None
        if stream.seekable:
            self.stream = stream
            return
        self._tmp = tempfile.TemporaryFile()  # noqa: SIM115 - closed in close()
        copied = 0
        while chunk := stream.read(CHUNK):
            copied += len(chunk)
            if copied > limit:
                self.close()
                raise LimitExceeded(f"nested archive larger than {limit} bytes")
            self._tmp.write(chunk)
        self._tmp.flush()
        self._tmp.seek(0)
        self.stream = FileStream(self._tmp)

    def __enter__(self) -> Stream:
        return self.stream

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._tmp is not None:
            self._tmp.close()
            self._tmp = None


def window(stream: Stream, offset: int, size: int) -> Stream:
    """``size`` bytes at ``offset`` of a seekable stream, without moving it."""
    view = stream.fork()
    view.skip(offset)
    return view.sub(size)


class SeekableFile(io.RawIOBase):
    """A seekable :class:`Stream` as a seekable file object (for h5py)."""

    def __init__(self, stream: Stream) -> None:
        self._base = stream.fork()
        self._size = stream.remaining or 0
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: Any) -> int:
        data = window(self._base, self._pos, min(len(buffer), max(0, self._size - self._pos))).read(len(buffer))
        buffer[: len(data)] = data
        self._pos += len(data)
        return len(data)
