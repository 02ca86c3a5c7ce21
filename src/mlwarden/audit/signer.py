"""The signer's own memory: the newest checkpoint this key signed, kept beside the key.

RFC 9162 and the C2SP checkpoint spec ask a log never to sign a tree that is not an extension of one it
signed before. The database cannot be trusted to remember what was signed (whoever can write it can
delete the stored checkpoints), so the signer keeps its last committed checkpoint in a file next to its
key. Before signing, the log checks the new tree against it and refuses a truncated, replaced or
rewritten log; `audit verify` checks it too. Someone who can write the key folder as well is stopped
only by an external witness (docs/audit.md).
"""

from __future__ import annotations

import fcntl
from pathlib import Path

from mlwarden.audit.checkpoint import Checkpoint, NoteVerifier, verify_checkpoint_note
from mlwarden.errors import IntegrityError
from mlwarden.fsutil import atomic_write_text


class SignerState:
    def __init__(self, path: Path, verifier: NoteVerifier) -> None:
        self.path = path
        self.verifier = verifier

    def note(self) -> str | None:
        """The stored note, or None before the first checkpoint was signed."""
        try:
            return self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None

    def last(self) -> Checkpoint | None:
        """The newest checkpoint this key signed (its signature checked), or None."""
        note = self.note()
        if note is None:
            return None
        try:
            return verify_checkpoint_note(note, self.verifier)
        except IntegrityError as exc:
            raise IntegrityError(
                f"the signer's record {self.path} does not verify: {exc}",
                hint="the key or its record was replaced; compare with your witness",
            ) from exc

    def record(self, note: str, size: int) -> None:
        """Remember a committed checkpoint (never moving backwards), atomically and durably."""
        with open(self.path.with_suffix(".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # two writers must not move the record backwards
            last = self.last()
            if last is not None and last.size >= size:
                return
            atomic_write_text(self.path, note, mode=0o600)
