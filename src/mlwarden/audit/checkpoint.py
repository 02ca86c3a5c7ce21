"""Signed checkpoints: the audit log's tree head as a C2SP signed note with an Ed25519 signature.

Formats (interoperable with the transparency-dev / Go ``sumdb/note`` tooling, so witnesses and
monitors written for other logs can check ours):

* checkpoint body, https://c2sp.org/tlog-checkpoint: origin line, decimal tree size line, base64 root
  hash line, optional non-empty extension lines; every line ends in ``\\n``;
* signed note, https://c2sp.org/signed-note: body, a blank line, then one or more lines
  ``"\u2014 <key name> <base64(4-byte key id || signature)>\\n"``. For Ed25519 (signature type 0x01) the key
  id is ``SHA-256(key name || 0x0A || 0x01 || public key)[:4]`` and the signature covers the body bytes;
* verifier key, as in ``sumdb/note``: ``<name>+<8 hex key id>+<base64(0x01 || public key)>``.

Argument checks on values built in code raise ``ValueError``; problems with input from outside
(notes, verifier keys, key files) raise ``mlwarden.errors`` exceptions with a ``hint``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from mlwarden.errors import ConfigError, IntegrityError

__all__ = [
    "ED25519_SIGNATURE_TYPE",
    "MAX_NOTE_BYTES",
    "MAX_SIGNATURES",
    "Checkpoint",
    "NoteSignature",
    "NoteSigner",
    "NoteVerifier",
    "key_id",
    "parse_checkpoint_note",
    "parse_note",
    "public_key_bytes",
    "sign_checkpoint",
    "verify_checkpoint_note",
    "verify_note",
]

MAX_NOTE_BYTES = 1 << 20
"""Notes larger than this (UTF-8 bytes) are refused before parsing."""

MAX_SIGNATURES = 100
"""At most this many signature lines per note (the signed-note spec asks verifiers for a limit)."""

ED25519_SIGNATURE_TYPE = 0x01  # c2sp.org/signed-note, "Signature types"
_SIG_PREFIX = "\u2014 "  # em dash, space
_HASH_SIZE = 32
_MAX_TREE_SIZE = (1 << 64) - 1  # tree sizes are uint64 in RFC 6962 / RFC 9162 structures
_MAX_KEY_FILE_BYTES = 64 * 1024
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")  # signed-note: no ASCII control characters but newline
_DECIMAL = re.compile(r"0|[1-9][0-9]*")  # tlog-checkpoint: no signs, no leading zeros
_KEY_ID_HEX = re.compile(r"[0-9a-fA-F]{8}")
_NOTE_HINT = "the note was altered or truncated after signing; compare it with a copy kept elsewhere"


def _b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _b64decode(text: str) -> bytes | None:
    """Strict standard base64 (RFC 4648 section 4, padded, canonical); ``None`` when it is not."""
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    # Reject non-canonical encodings (stray bits in the last character) so a value has one spelling.
    return data if _b64encode(data) == text else None


def _check_key_name(name: str) -> None:
    # c2sp.org/signed-note: key names are non-empty, with no Unicode spaces and no '+'.
    if not name or "+" in name or any(ch.isspace() for ch in name) or _CONTROL.search(name):
        raise ValueError(f"invalid key name {name!r}: it must be non-empty, without spaces or '+'")


def key_id(name: str, public_key: bytes) -> bytes:
    """Return the 4-byte Ed25519 key id ``SHA-256(name || 0x0A || 0x01 || public key)[:4]``."""
    _check_key_name(name)
    material = name.encode("utf-8") + b"\n" + bytes([ED25519_SIGNATURE_TYPE]) + public_key
    return hashlib.sha256(material).digest()[:4]


def public_key_bytes(key: Ed25519PrivateKey | Ed25519PublicKey) -> bytes:
    """Return the raw 32-byte Ed25519 public key (RFC 8032 encoding) of a private or public key."""
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


@dataclass(frozen=True)
class NoteSignature:
    """One signature line of a note; ``signature`` excludes the 4-byte key id."""

    key_name: str
    key_id: bytes
    signature: bytes

    def line(self) -> str:
        """Return the signature line, including its final newline."""
        return f"{_SIG_PREFIX}{self.key_name} {_b64encode(self.key_id + self.signature)}\n"


class NoteVerifier:
    """An Ed25519 note verifier: a key name bound to a public key."""

    def __init__(self, name: str, public_key: Ed25519PublicKey) -> None:
        self.key_id = key_id(name, public_key_bytes(public_key))
        self.name = name
        self.public_key = public_key

    @classmethod
    def from_vkey(cls, vkey: str) -> NoteVerifier:
        """Parse ``<name>+<8 hex key id>+<base64(0x01 || 32-byte public key)>``; raise ``ConfigError``."""
        # The name cannot contain '+', but the base64 key can: split at the first two only.
        parts = vkey.split("+", 2)
        raw = _b64decode(parts[2]) if len(parts) == 3 else None
        if raw is None or not _KEY_ID_HEX.fullmatch(parts[1]) or len(raw) != 33:
            raise _bad_vkey(vkey, "it is not name+keyid+key")
        if raw[0] != ED25519_SIGNATURE_TYPE:
            raise _bad_vkey(vkey, f"signature type {raw[0]:#04x} is not Ed25519 (0x01)")
        try:
            verifier = cls(parts[0], Ed25519PublicKey.from_public_bytes(raw[1:]))
        except ValueError as exc:
            raise _bad_vkey(vkey, str(exc)) from None
        if verifier.key_id != bytes.fromhex(parts[1]):
            raise _bad_vkey(vkey, "the key id does not match the name and key")
        return verifier

    def to_vkey(self) -> str:
        """Return the verifier key string that ``from_vkey`` reads."""
        raw = bytes([ED25519_SIGNATURE_TYPE]) + public_key_bytes(self.public_key)
        return f"{self.name}+{self.key_id.hex()}+{_b64encode(raw)}"

    def matches(self, sig: NoteSignature) -> bool:
        """Whether ``sig`` claims to be by this key (same name and key id)."""
        return sig.key_name == self.name and sig.key_id == self.key_id

    def verify(self, text: bytes, sig: NoteSignature) -> bool:
        """Whether ``sig`` is this key's valid Ed25519 signature over the note text ``text``."""
        if not self.matches(sig):
            return False
        try:
            self.public_key.verify(sig.signature, text)
        except InvalidSignature:
            return False
        return True

    def __repr__(self) -> str:
        return f"NoteVerifier({self.to_vkey()!r})"


def _bad_vkey(vkey: str, why: str) -> ConfigError:
    return ConfigError(
        f"malformed verifier key {vkey!r}: {why}",
        hint="a verifier key looks like <name>+<8 hex key id>+<base64 of 0x01 and the 32-byte public key>",
    )


class NoteSigner:
    """Signs note texts with an Ed25519 private key under a key name."""

    def __init__(self, private_key: Ed25519PrivateKey, name: str) -> None:
        self.key_id = key_id(name, public_key_bytes(private_key))
        self.name = name
        self._private_key = private_key

    def verifier(self) -> NoteVerifier:
        """Return the matching verifier (publish its ``to_vkey()``)."""
        return NoteVerifier(self.name, self._private_key.public_key())

    def sign(self, text: bytes) -> NoteSignature:
        """Sign the note text (everything before the blank line, final newline included)."""
        return NoteSignature(self.name, self.key_id, self._private_key.sign(text))

    def __repr__(self) -> str:  # never show key material
        return f"NoteSigner(name={self.name!r}, key_id={self.key_id.hex()!r})"


def _malformed(why: str) -> IntegrityError:
    return IntegrityError(f"malformed signed note: {why}", hint=_NOTE_HINT)


def _parse_signature_line(line: str) -> NoteSignature:
    if not line.startswith(_SIG_PREFIX):
        raise _malformed(f"signature line {line[:60]!r} does not start with an em dash and a space")
    name, _, encoded = line[len(_SIG_PREFIX) :].partition(" ")
    raw = _b64decode(encoded)
    try:
        _check_key_name(name)
    except ValueError:
        raw = None
    if raw is None or len(raw) < 5:  # 4-byte key id and at least one signature byte
        raise _malformed(f"signature line {line[:60]!r} is not '\u2014 <key name> <base64>'")
    return NoteSignature(name, raw[:4], raw[4:])


def parse_note(text: str) -> tuple[str, list[NoteSignature]]:
    """Split a signed note into its text and signature lines. Nothing is verified here.

    Raises ``IntegrityError`` when the note is too large, has control characters, lacks the blank
    line, or has malformed or too many (over ``MAX_SIGNATURES``) signature lines.
    """
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:
        raise _malformed("it is not valid UTF-8") from None
    if size > MAX_NOTE_BYTES:
        raise _malformed(f"it is {size} bytes, over the {MAX_NOTE_BYTES}-byte limit")
    if _CONTROL.search(text):
        raise _malformed("it contains control characters")
    # The text ends at the last blank line; signature lines cannot contain one (signed-note, Format).
    split = text.rfind("\n\n")
    if split < 0:
        raise _malformed("there is no blank line between the text and the signatures")
    body, sig_block = text[: split + 1], text[split + 2 :]
    if not sig_block.endswith("\n"):
        raise _malformed("it has no signature lines, or the last one does not end in a newline")
    lines = sig_block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise _malformed(f"it has {len(lines)} signature lines, over the limit of {MAX_SIGNATURES}")
    return body, [_parse_signature_line(line) for line in lines]


def verify_note(text: str, verifier: NoteVerifier) -> str:
    """Return the text of ``text`` (a signed note) after checking ``verifier``'s signature on it.

    As c2sp.org/signed-note requires, signatures by other keys (another name or another key id) are
    ignored, and a signature that claims to be by this key but does not verify rejects the whole note.
    Raises ``IntegrityError``.
    """
    body, signatures = parse_note(text)
    for sig in signatures:
        if not verifier.matches(sig):
            continue
        # The first line from the known key decides, as in Go's note.Open (later duplicates are skipped).
        if verifier.verify(body.encode("utf-8"), sig):
            return body
        raise IntegrityError(
            f"the signature by {verifier.name} (key id {verifier.key_id.hex()}) does not verify",
            hint="the note was altered after signing, or signed by a different key under the same id",
        )
    raise IntegrityError(
        f"the note has no signature by {verifier.name} (key id {verifier.key_id.hex()})",
        hint="check that the verifier key is this log's current key (see its to_vkey())",
    )


def _check_line(what: str, value: str) -> None:
    if not value or "\n" in value or _CONTROL.search(value):
        raise ValueError(f"checkpoint {what} {value!r} must be a non-empty line without control characters")


@dataclass(frozen=True)
class Checkpoint:
    """A log's tree head: its first ``size`` leaves have Merkle root ``root`` (c2sp.org/tlog-checkpoint)."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_line("origin", self.origin)
        size_ok = isinstance(self.size, int) and not isinstance(self.size, bool)
        if not size_ok or not 0 <= self.size <= _MAX_TREE_SIZE:
            raise ValueError(f"checkpoint size {self.size!r} is not an unsigned 64-bit integer")
        if not isinstance(self.root, bytes) or len(self.root) != _HASH_SIZE:
            raise ValueError(f"checkpoint root must be {_HASH_SIZE} bytes")
        for extension in self.extensions:
            _check_line("extension line", extension)

    def body(self) -> bytes:
        """Return the note text: origin, size, base64 root and extension lines, each ending in a newline."""
        lines = [self.origin, str(self.size), _b64encode(self.root), *self.extensions]
        return "".join(f"{line}\n" for line in lines).encode("utf-8")

    @classmethod
    def from_body(cls, body: str) -> Checkpoint:
        """Parse a checkpoint note text; raise ``IntegrityError`` when it is not one."""
        lines = body[:-1].split("\n") if body.endswith("\n") else []
        if len(lines) < 3:
            raise _bad_body("it needs origin, size and root lines, each ending in a newline")
        origin, size_text, root_text, *extensions = lines
        if not _DECIMAL.fullmatch(size_text):
            raise _bad_body(f"tree size {size_text[:30]!r} is not a decimal without sign or leading zeros")
        root = _b64decode(root_text)
        if root is None or len(root) != _HASH_SIZE:
            raise _bad_body(f"root hash {root_text[:60]!r} is not the base64 of {_HASH_SIZE} bytes")
        try:
            return cls(origin, int(size_text), root, tuple(extensions))
        except ValueError as exc:
            raise _bad_body(str(exc)) from None


def _bad_body(why: str) -> IntegrityError:
    return IntegrityError(f"malformed checkpoint: {why}", hint=_NOTE_HINT)


def sign_checkpoint(cp: Checkpoint, signer: NoteSigner) -> str:
    """Return the signed note text of ``cp``: its body, a blank line and ``signer``'s signature line."""
    body = cp.body()
    return body.decode("utf-8") + "\n" + signer.sign(body).line()


def parse_checkpoint_note(text: str) -> tuple[Checkpoint, list[NoteSignature]]:
    """Parse a signed checkpoint WITHOUT verifying it; use ``verify_checkpoint_note`` to trust one."""
    body, signatures = parse_note(text)
    return Checkpoint.from_body(body), signatures


def verify_checkpoint_note(text: str, verifier: NoteVerifier, *, origin: str | None = None) -> Checkpoint:
    """Return the checkpoint in ``text`` once ``verifier``'s signature on it checks out.

    When ``origin`` is given the checkpoint must also name that log. Raises ``IntegrityError``.
    """
    cp = Checkpoint.from_body(verify_note(text, verifier))
    if origin is not None and cp.origin != origin:
        raise IntegrityError(
            f"the checkpoint is for log {cp.origin!r}, not {origin!r}",
            hint="a checkpoint of another log signed by the same key cannot vouch for this one",
        )
    return cp
