"""Per-file SHA-256 digests of a model (one file or a folder), as the OpenSSF model-signing "files"
serialization names and orders them.

* A folder's files are named by their POSIX path relative to the folder; a model that is one file is
  named ``.`` (``model_signing`` hashes ``path.relative_to(model_path)``, which is ``.`` for the file
  itself).
* Order: by path components (``PurePosixPath`` order, so ``a/b`` sorts before ``a-c``), the order the
  statement's root digest is computed in.
* ``.git``, ``.gitattributes``, ``.github`` and ``.gitignore`` at the top of a folder are not covered:
  ``model_signing`` leaves them out by default on both signing and verifying, so covering them would
  make its verifier report them missing. The statement lists them under ``ignore_paths``.
* Symbolic links, FIFOs, sockets and devices are refused (``allow_symlinks: false``): a link could point
  at a file outside the model that changes without the signature noticing.

Files are read in 256 KiB blocks (``hashlib.file_digest``), so memory stays flat whatever the size.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from mlwarden.errors import InputError, NotFound

SINGLE_FILE = "."  # the name of the one file of a single-file model
GIT_PATHS = (".git", ".gitattributes", ".github", ".gitignore")  # model_signing's default ignore list
_HEX64 = re.compile(r"[0-9a-f]{64}")
_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


@dataclass(frozen=True)
class FileDigest:
    """One signed file: its POSIX path relative to the model root (``.`` for a one-file model), and
    the lowercase hex SHA-256 of its bytes."""

    path: str
    sha256: str


class UnsupportedModel(InputError):
    """The model holds something that cannot be signed: a symlink, a special file, an unusable name."""


def sort_key(path: str) -> tuple[str, ...]:
    """The order of ``PurePosixPath``: component by component."""
    return tuple(path.split("/"))


def is_safe_path(path: str) -> bool:
    """A relative POSIX path that stays inside the model root: no ``..``, ``.`` or empty component, not
    absolute, no backslash (a separator on Windows) and no NUL."""
    if not path or "\\" in path or "\0" in path:
        return False
    return all(part not in ("", ".", "..") for part in path.split("/"))


def is_sha256_hex(value: str) -> bool:
    return _HEX64.fullmatch(value) is not None


def digest_model(path: Path) -> list[FileDigest]:
    """The SHA-256 of every file of the model at ``path`` (a file or a folder), sorted by path; a
    folder's top-level git files are left out, as ``model_signing`` leaves them out.

    Raises ``NotFound`` when ``path`` does not exist, and ``InputError`` when the model is empty or
    holds a symbolic link, a special file or a name that is not UTF-8.
    """
    digests = digest_tree(path, ignored=GIT_PATHS)
    if not digests:
        raise InputError(f"{path} holds no files to sign", hint="point at the model file or the folder that holds it")
    return digests


def digest_tree(path: Path, *, ignored: Iterable[str]) -> list[FileDigest]:
    """The digests of ``path``, sorted; in a folder, the ``ignored`` relative paths (``sub/dir``) and
    everything below them are skipped (``model_signing`` compares path components the same way)."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        raise NotFound(f"model {path} does not exist", hint="check the path") from None
    except OSError as exc:
        raise InputError(
            f"cannot read model {path}: {exc.strerror}", hint="check the path and its permissions"
        ) from None
    _check_kind(path, mode)
    if stat.S_ISREG(mode):
        return [FileDigest(SINGLE_FILE, _sha256_file(path))]
    skip = {sort_key(p) for p in ignored}
    found = [FileDigest(rel, _sha256_file(path / rel)) for rel in _walk(path, skip)]
    return sorted(found, key=lambda d: sort_key(d.path))


def _walk(root: Path, skip: set[tuple[str, ...]]) -> Iterator[str]:
    """Relative paths of the regular files below ``root``, never following a symbolic link."""
    pending: list[tuple[str, ...]] = [()]
    while pending:
        parts = pending.pop()
        folder = root.joinpath(*parts)
        try:
            entries = list(os.scandir(folder))
        except OSError as exc:
            raise InputError(f"cannot list {folder}: {exc.strerror}", hint="check its permissions") from None
        for entry in entries:
            child = (*parts, _name(folder, entry.name))
            if any(child[: len(s)] == s for s in skip):
                continue
            try:
                mode = entry.stat(follow_symlinks=False).st_mode
            except OSError as exc:
                raise InputError(f"cannot read {entry.path}: {exc.strerror}", hint=_CHANGED_HINT) from None
            _check_kind(Path(entry.path), mode)
            if stat.S_ISDIR(mode):
                pending.append(child)
            else:
                yield "/".join(child)


def _name(folder: Path, raw: str) -> str:
    # os.scandir decodes undecodable bytes to lone surrogates; JSON (and other machines) cannot carry them.
    try:
        raw.encode("utf-8")
    except UnicodeEncodeError:
        raise UnsupportedModel(
            f"{folder} holds a file whose name is not valid UTF-8", hint="rename it to a UTF-8 name and sign again"
        ) from None
    if "\\" in raw:
        raise UnsupportedModel(
            f"{folder / raw} has a backslash in its name, which other systems read as a folder separator",
            hint="rename it and sign again",
        )
    return raw


def _check_kind(path: Path, mode: int) -> None:
    if stat.S_ISLNK(mode):
        raise UnsupportedModel(
            f"{path} is a symbolic link; signed models hold regular files and folders only",
            hint="replace the link by a copy of the file it points at",
        )
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise UnsupportedModel(
            f"{path} is not a regular file or folder (a FIFO, socket or device)",
            hint="remove it from the model folder",
        )


def _sha256_file(path: Path) -> str:
    # O_NOFOLLOW and fstat check what was opened, not what the path named a moment before (a file
    # swapped for a link or a FIFO between the walk and the open).
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}", hint=_CHANGED_HINT) from None
    with open(fd, "rb", buffering=0, closefd=True) as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise UnsupportedModel(f"{path} is no longer a regular file", hint=_CHANGED_HINT)
        try:
            return hashlib.file_digest(handle, "sha256").hexdigest()
        except OSError as exc:
            raise InputError(f"cannot read {path}: {exc.strerror}", hint=_CHANGED_HINT) from None


_CHANGED_HINT = "check its permissions, and that nothing changes the model while it is read"
