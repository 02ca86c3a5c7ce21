"""Blobs in a local folder, laid out like git's object store.

Layout::

    root/sha256/ab/cdef...   blob with digest sha256:abcdef... (first 2 hex chars fan out, the
                             remaining 62 name the file), mode 0o444
    root/tmp/put-*.partial   writes in progress; ignored by iter_digests/verify, see cleanup_temp

Crash safety: a write goes to a temp file in ``root/tmp`` (same filesystem as the final path, so the
rename is atomic), is fsynced, renamed into place with ``os.replace`` and the directory is fsynced. A
crash leaves either no blob or the complete blob, plus at worst an orphan temp file.
"""

from __future__ import annotations

import io
import os
import shutil
import stat
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, BinaryIO

from mlwarden.domain.digests import SHA256, Digest, Hasher
from mlwarden.errors import IntegrityError, NotFound
from mlwarden.store.blobs.interface import BadBlob, BlobProblem, BlobVerifyReport, ProgressCallback

CHUNK_SIZE = 1 << 20
# copy_to verifies into a spool before writing to the caller; above this it spills to root/tmp.
SPOOL_MAX = 8 << 20
_FANOUT = 2
_HEX = frozenset("0123456789abcdef")
_TEMP_PREFIX = "put-"
_TEMP_SUFFIX = ".partial"
_READ_ONLY = 0o444
# Refuse to follow a symlink planted at a blob path: it could point anywhere on the machine.
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_MISMATCH_HINT = "the stored blob was altered or corrupted; run `mlwarden blobs verify` and restore it"


def _is_hex(text: str, length: int) -> bool:
    return len(text) == length and set(text) <= _HEX


def _fsync_dir(path: Path) -> None:
    """Make a rename or a new directory entry durable (POSIX; Windows cannot open directories)."""
    if os.name != "posix":
        return
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _copy_hashing(
    src: IO[bytes], dst: IO[bytes] | None, chunk_size: int, progress: ProgressCallback | None = None
) -> Hasher:
    """Copy ``src`` to ``dst`` (or just read it) chunk by chunk, hashing as it goes."""
    hasher = Hasher()
    while chunk := src.read(chunk_size):
        hasher.update(chunk)
        if dst is not None:
            dst.write(chunk)
        if progress is not None:
            progress(len(chunk))
    return hasher


def _open_regular(path: Path) -> BinaryIO:
    """Open a blob file for reading, refusing symlinks and anything that is not a regular file."""
    fd = os.open(path, os.O_RDONLY | _NOFOLLOW)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"{path} is not a regular file")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _is_stale_file(entry: os.DirEntry[str], cutoff: float) -> bool:
    try:
        return entry.is_file(follow_symlinks=False) and entry.stat(follow_symlinks=False).st_mtime < cutoff
    except FileNotFoundError:  # its writer finished or another cleanup got there first
        return False


def _mismatch(digest: Digest) -> IntegrityError:
    return IntegrityError(f"blob {digest} does not match its digest", hint=_MISMATCH_HINT)


class LocalBlobStore:
    """A ``BlobStore`` in a local folder; see the module docstring for layout and crash safety."""

    def __init__(self, root: Path, *, chunk_size: int = CHUNK_SIZE) -> None:
        self._root = Path(root)
        self._blobs = self._root / SHA256
        self._tmp = self._root / "tmp"
        self._chunk_size = chunk_size
        self._blobs.mkdir(parents=True, exist_ok=True)
        self._tmp.mkdir(exist_ok=True)

    @property
    def root(self) -> Path:
        return self._root

    def path_of(self, digest: Digest) -> Path:
        """Where the blob for ``digest`` lives (whether or not it exists)."""
        return self._blobs / digest.hex[:_FANOUT] / digest.hex[_FANOUT:]

    # -- writing ---------------------------------------------------------------------------------------

    def put_bytes(self, data: bytes) -> Digest:
        return self.put_stream(io.BytesIO(data))

    def put_stream(self, stream: BinaryIO) -> Digest:
        fd, name = tempfile.mkstemp(prefix=_TEMP_PREFIX, suffix=_TEMP_SUFFIX, dir=self._tmp)
        tmp = Path(name)
        try:
            with os.fdopen(fd, "wb") as out:
                digest = _copy_hashing(stream, out, self._chunk_size).digest()
                out.flush()
                os.fsync(out.fileno())
            self._commit(tmp, digest)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return digest

    @contextmanager
    def staging(self, suffix: str = "") -> Iterator[Path]:
        """A fresh path in ``root/tmp`` to write a file to; removed on exit unless ``adopt`` took it."""
        fd, name = tempfile.mkstemp(prefix=_TEMP_PREFIX, suffix=suffix + _TEMP_SUFFIX, dir=self._tmp)
        os.close(fd)
        path = Path(name)
        try:
            yield path
        finally:
            path.unlink(missing_ok=True)

    def adopt(self, path: Path) -> Digest:
        """Store the file at ``path`` (from ``staging``) under the digest computed here, by renaming it."""
        with _open_regular(path) as f:
            digest = _copy_hashing(f, None, self._chunk_size).digest()
            os.fsync(f.fileno())
        self._commit(path, digest)
        return digest

    def _commit(self, tmp: Path, digest: Digest) -> None:
        """Move a complete, fsynced temp file into place, or drop it if the blob exists (dedup)."""
        final = self.path_of(digest)
        if os.path.lexists(final):
            # Dedup must not paper over tampering: an altered blob under this name would otherwise
            # stay "stored" while the caller believes its content is safe.
            self._check_existing(final, digest)
            tmp.unlink()
            return
        os.chmod(tmp, _READ_ONLY)
        try:
            final.parent.mkdir()
            _fsync_dir(self._blobs)
        except FileExistsError:
            pass
        os.replace(tmp, final)
        _fsync_dir(final.parent)

    def _check_existing(self, final: Path, digest: Digest) -> None:
        try:
            with _open_regular(final) as f:
                actual = _copy_hashing(f, None, self._chunk_size).digest()
        except OSError as exc:
            raise IntegrityError(f"blob {digest} exists but is unreadable: {exc}", hint=_MISMATCH_HINT) from exc
        if actual != digest:
            raise _mismatch(digest)

    def cleanup_temp(self, older_than_seconds: float = 3600.0) -> int:
        """Delete temp files left by crashed writers; return how many were removed.

        Only files older than ``older_than_seconds`` go, so a write in progress is never pulled from
        under its writer.
        """
        cutoff = time.time() - older_than_seconds
        removed = 0
        with os.scandir(self._tmp) as entries:
            for entry in entries:
                if _is_stale_file(entry, cutoff):
                    Path(entry.path).unlink(missing_ok=True)
                    removed += 1
        return removed

    # -- reading ---------------------------------------------------------------------------------------

    def _open(self, digest: Digest) -> BinaryIO:
        path = self.path_of(digest)
        try:
            return _open_regular(path)
        except FileNotFoundError:
            raise NotFound(f"blob {digest} is not in the store", hint="check the digest") from None
        except OSError as exc:
            raise IntegrityError(f"blob {digest} is unreadable: {exc}", hint=_MISMATCH_HINT) from exc

    def get_bytes(self, digest: Digest) -> bytes:
        with self._open(digest) as f:
            try:
                data = f.read()
            except OSError as exc:
                raise IntegrityError(f"blob {digest} is unreadable: {exc}", hint=_MISMATCH_HINT) from exc
        if Digest.of_bytes(data) != digest:
            raise _mismatch(digest)
        return data

    def copy_to(self, digest: Digest, dst: BinaryIO) -> None:
        # Verify into a private spool first: hashing the file and then re-reading it would let a
        # concurrent writer swap the content between the check and the copy.
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_MAX, dir=str(self._tmp)) as spool:
            with self._open(digest) as f:
                try:
                    actual = _copy_hashing(f, spool, self._chunk_size).digest()
                except OSError as exc:
                    raise IntegrityError(f"blob {digest} is unreadable: {exc}", hint=_MISMATCH_HINT) from exc
            if actual != digest:
                raise _mismatch(digest)
            spool.seek(0)
            shutil.copyfileobj(spool, dst, self._chunk_size)

    def exists(self, digest: Digest) -> bool:
        try:
            return stat.S_ISREG(os.lstat(self.path_of(digest)).st_mode)
        except FileNotFoundError:
            return False

    def size(self, digest: Digest) -> int:
        try:
            st = os.lstat(self.path_of(digest))
        except FileNotFoundError:
            raise NotFound(f"blob {digest} is not in the store", hint="check the digest") from None
        return st.st_size

    def iter_digests(self) -> Iterator[Digest]:
        for fan in sorted(os.scandir(self._blobs), key=lambda e: e.name):
            if not (_is_hex(fan.name, _FANOUT) and fan.is_dir(follow_symlinks=False)):
                continue
            for entry in sorted(os.scandir(fan.path), key=lambda e: e.name):
                if _is_hex(entry.name, 64 - _FANOUT) and entry.is_file(follow_symlinks=False):
                    yield Digest(SHA256, fan.name + entry.name)

    # -- verification ----------------------------------------------------------------------------------

    def verify(self, progress: ProgressCallback | None = None) -> BlobVerifyReport:
        checked = checked_bytes = 0
        bad: list[BadBlob] = []
        for rel, is_file in self._walk(self._root, ()):
            location = "/".join(rel)
            digest = self._digest_at(rel) if is_file else None
            if digest is None:
                bad.append(BadBlob(None, location, BlobProblem.MISPLACED))
                continue
            checked += 1
            size, problem = self._check_one(digest, progress)
            checked_bytes += size
            if problem is not None:
                bad.append(BadBlob(digest, location, problem))
        return BlobVerifyReport(checked, checked_bytes, tuple(bad))

    def _walk(self, directory: Path, rel: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], bool]]:
        """Yield (relative path parts, is regular file) for every non-directory entry, sorted.

        Real directories are descended; symlinks are reported, never followed. ``root/tmp`` is skipped.
        """
        for entry in sorted(os.scandir(directory), key=lambda e: e.name):
            parts = (*rel, entry.name)
            if entry.is_dir(follow_symlinks=False):
                if parts != ("tmp",):
                    yield from self._walk(Path(entry.path), parts)
            else:
                yield parts, entry.is_file(follow_symlinks=False)

    @staticmethod
    def _digest_at(rel: tuple[str, ...]) -> Digest | None:
        """The digest a relative path names, or None if it is not a valid blob location."""
        if len(rel) != 3 or rel[0] != SHA256:
            return None
        fan, rest = rel[1], rel[2]
        if not (_is_hex(fan, _FANOUT) and _is_hex(rest, 64 - _FANOUT)):
            return None
        return Digest(SHA256, fan + rest)

    def _check_one(self, digest: Digest, progress: ProgressCallback | None) -> tuple[int, BlobProblem | None]:
        try:
            with _open_regular(self.path_of(digest)) as f:
                hasher = _copy_hashing(f, None, self._chunk_size, progress)
        except OSError:
            return 0, BlobProblem.UNREADABLE
        return hasher.size, None if hasher.digest() == digest else BlobProblem.CONTENT_MISMATCH
