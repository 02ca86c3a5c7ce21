"""Small file-system helpers shared by the modules that write files outside the database."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from mlwarden.errors import ConfigError, NotFound


def atomic_write_text(path: Path, text: str, *, mode: int = 0o644) -> None:
    """Replace ``path`` with ``text`` so that readers see the old or the new file, never a mix.

    A uniquely named temporary file (created with O_EXCL by mkstemp, so no symlink is followed) is
    written, synced and renamed over the target; then the folder is synced so the rename survives a crash.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # not every platform can open a folder
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_owner_only(path: Path, *, what: str, limit: int, missing_hint: str, exposed_hint: str) -> bytes:
    """Read at most ``limit`` + 1 bytes of a secret file that only its owner may read.

    O_NONBLOCK: a FIFO planted at the path must not hang us; fstat then checks what was opened, not
    whatever the path names a moment later. Raises NotFound when missing, ConfigError when it is not a
    regular file or group/world-accessible.
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise NotFound(f"{what} {path} does not exist", hint=missing_hint) from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise ConfigError(f"{what} {path} is not a regular file")
        if mode & 0o077:
            raise ConfigError(
                f"{what} {path} is accessible by group or others (mode {stat.S_IMODE(mode):04o})",
                hint=f"run `chmod 600 {path}`; {exposed_hint}",
            )
        chunks: list[bytes] = []
        while (chunk := os.read(fd, limit + 1)) and sum(map(len, chunks)) <= limit:
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)
