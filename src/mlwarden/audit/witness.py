"""Checkpoints exported outside the database, and checking the log against them.

A witness folder holds ``vkey`` (the checkpoint verifier key, pinned at the first export) and one file per
exported checkpoint. Whoever can write the database can rewrite events, tree and stored checkpoints, and
may hold the signing key too; they cannot make the rewritten log consistent with a checkpoint that left
the machine before the rewrite (RFC 9162 section 2.1.4 consistency proofs).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mlwarden.audit import merkle
from mlwarden.audit.checkpoint import Checkpoint, NoteVerifier, verify_checkpoint_note
from mlwarden.audit.verify import Problem, RebuiltTree
from mlwarden.errors import ConfigError, IntegrityError, UsageError
from mlwarden.fsutil import atomic_write_text

VKEY_FILE = "vkey"
_PREFIX = "checkpoint-"
_SUFFIX = ".txt"


def checkpoint_file_name(size: int) -> str:
    return f"{_PREFIX}{size:015d}{_SUFFIX}"


def export_checkpoint(folder: Path, note: str, vkey: str, prove: Callable[[int, int], list[bytes]]) -> Path:
    """Write a signed checkpoint into a witness folder, pinning the verifier key on first use.

    Like a real witness, the folder only accepts a checkpoint that extends the newest one it holds:
    ``prove(m, n)`` must give a consistency proof from its size m to the new size n.
    """
    folder.mkdir(parents=True, exist_ok=True)
    verifier = NoteVerifier.from_vkey(vkey)
    checkpoint = verify_checkpoint_note(note, verifier)
    _pin_key(folder, vkey)
    newest = _newest(folder, verifier)
    if newest is not None and newest.size > checkpoint.size:
        raise IntegrityError(
            f"{folder} holds a checkpoint of {newest.size} events but the log has {checkpoint.size}: truncated?",
            hint="run `mlwarden audit witness` on this folder",
        )
    if newest is not None and newest.size < checkpoint.size:
        proof = prove(newest.size, checkpoint.size)
        if not merkle.verify_consistency(newest.size, checkpoint.size, newest.root, checkpoint.root, proof):
            raise IntegrityError(
                f"the log is not an extension of the checkpoint of {newest.size} events in {folder}",
                hint="history was rewritten: run `mlwarden audit witness` on this folder",
            )
    target = folder / checkpoint_file_name(checkpoint.size)
    if target.exists():
        if target.read_text(encoding="utf-8") != note:
            raise IntegrityError(f"{target} holds a different checkpoint of the same size: the log forked")
        return target
    atomic_write_text(target, note)
    return target


def _pin_key(folder: Path, vkey: str) -> None:
    key_path = folder / VKEY_FILE
    if not key_path.exists():
        atomic_write_text(key_path, vkey + "\n")
    elif key_path.read_text(encoding="utf-8").strip() != vkey:
        raise IntegrityError(
            f"{folder} pins a different checkpoint signing key than this workspace's",
            hint="the workspace key was replaced, or this folder witnesses another log",
        )


def _newest(folder: Path, verifier: NoteVerifier) -> Checkpoint | None:
    files = sorted(folder.glob(f"{_PREFIX}*{_SUFFIX}"))
    if not files:
        return None
    return verify_checkpoint_note(files[-1].read_text(encoding="utf-8"), verifier)


@dataclass(frozen=True)
class WitnessReport:
    checked: int
    size: int
    problems: list[Problem]

    @property
    def ok(self) -> bool:
        return not self.problems


def load_witness(path: Path) -> tuple[NoteVerifier, list[Path]]:
    """The pinned verifier key and the checkpoint files of a witness folder (or of one checkpoint file)."""
    folder = path if path.is_dir() else path.parent
    if not path.exists():
        raise UsageError(f"{path} does not exist", hint="export checkpoints with `mlwarden audit checkpoint --export`")
    key_path = folder / VKEY_FILE
    if not key_path.is_file():
        raise ConfigError(f"{key_path} is missing: the witness pins no key", hint="re-export into a new folder")
    try:
        verifier = NoteVerifier.from_vkey(key_path.read_text(encoding="utf-8").strip())
    except ConfigError as exc:
        raise IntegrityError(f"{key_path} is not a valid verifier key: {exc}", hint="was it altered?") from exc
    files = sorted(folder.glob(f"{_PREFIX}*{_SUFFIX}")) if path.is_dir() else [path]
    if not files:
        raise UsageError(f"{path} holds no exported checkpoints")
    return verifier, files


def check_witness(
    path: Path,
    tree: RebuiltTree,
    current_vkey: str,
    origin: str,
    consistency_proof: Callable[[int, int], list[bytes]],
) -> WitnessReport:
    """Check the current log against every checkpoint exported into ``path``."""
    verifier, files = load_witness(path)
    problems: list[Problem] = []
    if verifier.to_vkey() != current_vkey:
        problems.append(Problem("key", "the workspace's signing key is not the key the witness pinned (replaced?)"))
    for file in files:
        problems.extend(_check_one(file, verifier, tree, origin, consistency_proof))
    return WitnessReport(checked=len(files), size=tree.size, problems=problems)


def _check_one(
    file: Path,
    verifier: NoteVerifier,
    tree: RebuiltTree,
    origin: str,
    consistency_proof: Callable[[int, int], list[bytes]],
) -> list[Problem]:
    try:
        checkpoint = verify_checkpoint_note(file.read_text(encoding="utf-8"), verifier)
    except (IntegrityError, OSError, UnicodeDecodeError) as exc:
        return [Problem("witness", f"{file.name}: {exc}")]
    label = f"{file.name} (size {checkpoint.size})"
    if checkpoint.origin != origin:
        return [Problem("witness", f"{label} is for log {checkpoint.origin!r}, not {origin!r}")]
    if checkpoint.size > tree.size:
        message = f"{label}: the log now has only {tree.size} events: it was truncated"
        return [Problem("witness", message, tree.size)]
    try:
        proof = consistency_proof(checkpoint.size, tree.size) if checkpoint.size < tree.size else []
    except Exception as exc:  # a damaged stored tree cannot produce a proof: that is a finding
        return [Problem("witness", f"{label}: no consistency proof can be built: {exc}")]
    if not merkle.verify_consistency(checkpoint.size, tree.size, checkpoint.root, tree.root(), proof):
        return [Problem("witness", f"{label}: the current log is not an extension of it: history was rewritten")]
    return []
