"""Signed checkpoints (c2sp.org/tlog-checkpoint over c2sp.org/signed-note) and signing-key files."""

from __future__ import annotations

import base64
import hashlib
import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mlwarden.audit import checkpoint as cpm
from mlwarden.audit import keys
from mlwarden.audit.checkpoint import (
    Checkpoint,
    NoteSignature,
    NoteSigner,
    NoteVerifier,
    parse_checkpoint_note,
    sign_checkpoint,
    verify_checkpoint_note,
)
from mlwarden.errors import AlreadyExists, ConfigError, IntegrityError, NotFound

ORIGIN = "mlwarden.example/audit/1"
ROOT = hashlib.sha256(b"some tree").digest()
EM_DASH = "\u2014"

# --- Known answers from golang.org/x/mod/sumdb/note (note_test.go) ---
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_SKEY_MATERIAL = "AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"  # from PRIVATE+KEY+PeterNeumann+c74f20a3+...
GO_TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n"
GO_SIG_LINE = (
    f"{EM_DASH} PeterNeumann "
    "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)
GO_NOTE = GO_TEXT + "\n" + GO_SIG_LINE

# --- The example checkpoint of c2sp.org/tlog-checkpoint (its key is not published: parse only) ---
SPEC_BODY = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
SPEC_NOTE = (
    SPEC_BODY
    + "\n"
    + f"{EM_DASH} example.com/behind-the-sofa "
    + "Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n"
)


@pytest.fixture(scope="module")
def signer() -> NoteSigner:
    return NoteSigner(Ed25519PrivateKey.generate(), ORIGIN)


@pytest.fixture(scope="module")
def checkpoint() -> Checkpoint:
    return Checkpoint(ORIGIN, 1234, ROOT)


@pytest.fixture(scope="module")
def note(signer: NoteSigner, checkpoint: Checkpoint) -> str:
    return sign_checkpoint(checkpoint, signer)


def go_signer() -> NoteSigner:
    material = base64.b64decode(GO_SKEY_MATERIAL)
    assert material[0] == 0x01  # Ed25519 signature type, then the 32-byte seed
    return NoteSigner(Ed25519PrivateKey.from_private_bytes(material[1:]), "PeterNeumann")


# --- known answers ---


def test_go_reference_signer_reproduces_key_id_vkey_and_signature() -> None:
    s = go_signer()
    assert s.key_id.hex() == "c74f20a3"
    assert s.verifier().to_vkey() == GO_VKEY
    # Ed25519 is deterministic (RFC 8032), so the signature line must match byte for byte.
    assert s.sign(GO_TEXT.encode()).line() == GO_SIG_LINE


def test_go_reference_note_verifies() -> None:
    verifier = NoteVerifier.from_vkey(GO_VKEY)
    assert verifier.name == "PeterNeumann"
    assert verifier.key_id == bytes.fromhex("c74f20a3")
    assert cpm.verify_note(GO_NOTE, verifier) == GO_TEXT
    with pytest.raises(IntegrityError, match="does not verify"):
        cpm.verify_note(GO_NOTE.replace("cryptography", "cryptographY"), verifier)


def test_spec_example_checkpoint_parses_and_reencodes() -> None:
    cp, sigs = parse_checkpoint_note(SPEC_NOTE)
    assert cp.origin == "example.com/behind-the-sofa"
    assert cp.size == 20852163
    assert cp.root == base64.b64decode("CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=")
    assert cp.extensions == ()
    assert cp.body() == SPEC_BODY.encode()
    assert [(s.key_name, len(s.key_id), len(s.signature)) for s in sigs] == [("example.com/behind-the-sofa", 4, 64)]
    assert sigs[0].line() == SPEC_NOTE[len(SPEC_BODY) + 1 :]


# --- format ---


def test_body_exact_bytes() -> None:
    root_b64 = base64.b64encode(ROOT)
    assert Checkpoint(ORIGIN, 1234, ROOT).body() == ORIGIN.encode() + b"\n1234\n" + root_b64 + b"\n"
    assert Checkpoint(ORIGIN, 0, ROOT).body().split(b"\n")[1] == b"0"
    with_ext = Checkpoint(ORIGIN, 7, ROOT, ("ext one", "ext two")).body()
    assert with_ext == ORIGIN.encode() + b"\n7\n" + root_b64 + b"\next one\next two\n"


def test_signed_note_exact_structure(signer: NoteSigner, checkpoint: Checkpoint, note: str) -> None:
    body = checkpoint.body()
    raw_note = note.encode("utf-8")
    assert raw_note.startswith(body + b"\n")
    sig_line = raw_note[len(body) + 1 :]
    assert sig_line.startswith(b"\xe2\x80\x94 " + ORIGIN.encode() + b" ")  # U+2014 em dash, then a space
    assert sig_line.endswith(b"\n") and sig_line.count(b"\n") == 1
    blob = base64.b64decode(sig_line[:-1].rsplit(b" ", 1)[1], validate=True)
    public = cpm.public_key_bytes(signer.verifier().public_key)
    expected_id = hashlib.sha256(ORIGIN.encode() + b"\n\x01" + public).digest()[:4]
    assert blob[:4] == expected_id == signer.key_id
    assert len(blob) == 4 + 64
    signer.verifier().public_key.verify(blob[4:], body)  # Ed25519 over exactly the body bytes


def test_vkey_format(signer: NoteSigner) -> None:
    vkey = signer.verifier().to_vkey()
    name, key_id_hex, key_b64 = vkey.split("+", 2)
    assert name == ORIGIN
    assert key_id_hex == signer.key_id.hex() and len(key_id_hex) == 8
    assert base64.b64decode(key_b64) == b"\x01" + cpm.public_key_bytes(signer.verifier().public_key)
    assert NoteVerifier.from_vkey(vkey).to_vkey() == vkey
    assert NoteVerifier.from_vkey(f"{name}+{key_id_hex.upper()}+{key_b64}").key_id == signer.key_id


def test_key_id_function() -> None:
    public = bytes(range(32))
    assert cpm.key_id("a/b", public) == hashlib.sha256(b"a/b\n\x01" + public).digest()[:4]


# --- round trip ---


def test_round_trip(signer: NoteSigner, checkpoint: Checkpoint, note: str) -> None:
    parsed, sigs = parse_checkpoint_note(note)
    assert parsed == checkpoint
    assert sigs == [NoteSignature(ORIGIN, signer.key_id, sigs[0].signature)]
    assert verify_checkpoint_note(note, signer.verifier()) == checkpoint
    assert verify_checkpoint_note(note, NoteVerifier.from_vkey(signer.verifier().to_vkey())) == checkpoint
    assert verify_checkpoint_note(note, signer.verifier(), origin=ORIGIN) == checkpoint


def test_round_trip_with_extensions_and_empty_tree(signer: NoteSigner) -> None:
    for cp in (
        Checkpoint(ORIGIN, 0, hashlib.sha256(b"").digest()),
        Checkpoint(ORIGIN, 2**64 - 1, ROOT, ("x",)),
    ):
        assert verify_checkpoint_note(sign_checkpoint(cp, signer), signer.verifier()) == cp


def test_key_name_may_differ_from_origin() -> None:
    s = NoteSigner(Ed25519PrivateKey.generate(), "witness.example/w1")
    cp = Checkpoint(ORIGIN, 3, ROOT)
    assert verify_checkpoint_note(sign_checkpoint(cp, s), s.verifier()) == cp


# --- rejections ---


def test_forged_signature(signer: NoteSigner, note: str) -> None:
    body, line = note.split("\n\n")
    name, blob = line[2:].rstrip("\n").split(" ")
    raw = bytearray(base64.b64decode(blob))
    raw[10] ^= 0x01
    forged = f"{body}\n\n{EM_DASH} {name} {base64.b64encode(bytes(raw)).decode()}\n"
    with pytest.raises(IntegrityError, match="does not verify") as info:
        verify_checkpoint_note(forged, signer.verifier())
    assert info.value.hint


def test_different_key_with_same_name(signer: NoteSigner, checkpoint: Checkpoint) -> None:
    impostor = NoteSigner(Ed25519PrivateKey.generate(), ORIGIN)
    assert impostor.key_id != signer.key_id
    note = sign_checkpoint(checkpoint, impostor)
    with pytest.raises(IntegrityError, match="no signature by") as info:
        verify_checkpoint_note(note, signer.verifier())
    assert "key id" in str(info.value) and info.value.hint


def test_colliding_key_id_from_another_key_rejects_the_note(signer: NoteSigner, checkpoint: Checkpoint) -> None:
    # Someone who grinds a key with our name and key id gets a signature failure, not acceptance.
    other = Ed25519PrivateKey.generate()
    body = checkpoint.body()
    fake = NoteSignature(ORIGIN, signer.key_id, other.sign(body))
    note = body.decode() + "\n" + fake.line()
    with pytest.raises(IntegrityError, match="does not verify"):
        verify_checkpoint_note(note, signer.verifier())


def test_first_signature_by_the_key_decides(signer: NoteSigner, checkpoint: Checkpoint) -> None:
    body = checkpoint.body()
    good = signer.sign(body)
    bad = NoteSignature(ORIGIN, signer.key_id, bytes(64))
    with pytest.raises(IntegrityError, match="does not verify"):
        verify_checkpoint_note(body.decode() + "\n" + bad.line() + good.line(), signer.verifier())
    assert verify_checkpoint_note(body.decode() + "\n" + good.line() + bad.line(), signer.verifier())


def test_extra_signatures_by_other_keys_are_ignored(signer: NoteSigner, checkpoint: Checkpoint) -> None:
    body = checkpoint.body()
    witness = NoteSigner(Ed25519PrivateKey.generate(), "witness.example/w1")
    same_name = NoteSigner(Ed25519PrivateKey.generate(), ORIGIN)
    same_id_other_name = NoteSignature("other.example", signer.key_id, bytes(64))
    lines = [witness.sign(body), same_name.sign(body), same_id_other_name, signer.sign(body)]
    note = body.decode() + "\n" + "".join(s.line() for s in lines)
    assert verify_checkpoint_note(note, signer.verifier()) == checkpoint
    assert verify_checkpoint_note(note, witness.verifier()) == checkpoint
    assert len(parse_checkpoint_note(note)[1]) == 4


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("\n1234\n", "\n1235\n"),  # size
        (f"{ORIGIN}\n", "mlwarden.example/audit/2\n"),  # origin
        (base64.b64encode(ROOT).decode(), base64.b64encode(hashlib.sha256(b"other").digest()).decode()),
        ("\n1234\n", "\n1234\nextension\n"),  # an added extension line
    ],
    ids=["size", "origin", "root", "added-extension"],
)
def test_tampered_body(note: str, signer: NoteSigner, old: str, new: str) -> None:
    tampered = note.replace(old, new, 1)
    assert tampered != note
    with pytest.raises(IntegrityError, match="does not verify"):
        verify_checkpoint_note(tampered, signer.verifier())


def test_origin_mismatch_is_rejected(signer: NoteSigner) -> None:
    note = sign_checkpoint(Checkpoint("other.example/log", 5, ROOT), signer)
    with pytest.raises(IntegrityError, match="not 'mlwarden.example/audit/1'"):
        verify_checkpoint_note(note, signer.verifier(), origin=ORIGIN)


def sig_line_of(note: str) -> str:
    return note[note.rindex("\n\n") + 2 :]


MALFORMED_NOTES = {
    "missing-blank-line": lambda n: n.replace("\n\n", "\n"),
    "no-signatures": lambda n: n[: n.rindex("\n\n") + 2],
    "signature-without-newline": lambda n: n.rstrip("\n"),
    "ascii-dashes": lambda n: n.replace(EM_DASH, "--"),
    "en-dash": lambda n: n.replace(EM_DASH, "\u2013"),
    "no-space-after-dash": lambda n: n.replace(f"{EM_DASH} ", EM_DASH),
    "tab-separator": lambda n: n.replace(f"{EM_DASH} {ORIGIN} ", f"{EM_DASH} {ORIGIN}\t"),
    "bad-base64": lambda n: n[:-3] + "!!\n",
    "unpadded-base64": lambda n: n.replace("=\n", "\n"),
    "short-signature": lambda n: n.replace(sig_line_of(n), f"{EM_DASH} {ORIGIN} AAAA\n"),
    "plus-in-key-name": lambda n: n.replace(f"{EM_DASH} {ORIGIN}", f"{EM_DASH} a+b"),
    "empty-key-name": lambda n: n.replace(f"{EM_DASH} {ORIGIN}", f"{EM_DASH} "),
    "blank-line-between-signatures": lambda n: n + "\n" + sig_line_of(n),
    "control-character": lambda n: n.replace("\n1234", "\x07\n1234"),
    "carriage-returns": lambda n: n.replace("\n", "\r\n"),
    "nul-byte": lambda n: n + "\x00",
    "lone-surrogate": lambda n: n.replace(ORIGIN, ORIGIN + "\udcff", 1),
}


@pytest.mark.parametrize("mangle", MALFORMED_NOTES.values(), ids=MALFORMED_NOTES.keys())
def test_malformed_notes(note: str, signer: NoteSigner, mangle: object) -> None:
    assert callable(mangle)
    bad = mangle(note)
    assert bad != note
    with pytest.raises(IntegrityError) as info:
        verify_checkpoint_note(bad, signer.verifier())
    assert info.value.hint
    with pytest.raises(IntegrityError):
        parse_checkpoint_note(bad)


def signed_body(body: str, signer: NoteSigner) -> str:
    """Sign an arbitrary body, so that only the checkpoint parsing can reject it."""
    return body + "\n" + signer.sign(body.encode()).line()


ROOT_B64 = base64.b64encode(ROOT).decode()
URLSAFE_ROOT = base64.urlsafe_b64encode(b"\xff" * 32).decode()
BAD_BODIES = {
    "leading-zero": f"{ORIGIN}\n05\n{ROOT_B64}\n",
    "double-zero": f"{ORIGIN}\n00\n{ROOT_B64}\n",
    "plus-sign": f"{ORIGIN}\n+5\n{ROOT_B64}\n",
    "minus-sign": f"{ORIGIN}\n-5\n{ROOT_B64}\n",
    "spaces": f"{ORIGIN}\n 5\n{ROOT_B64}\n",
    "underscore": f"{ORIGIN}\n1_000\n{ROOT_B64}\n",
    "hex": f"{ORIGIN}\n0x5\n{ROOT_B64}\n",
    "non-ascii-digit": f"{ORIGIN}\n\u0665\n{ROOT_B64}\n",
    "empty-size": f"{ORIGIN}\n\n{ROOT_B64}\n",
    "size-over-uint64": f"{ORIGIN}\n{2**64}\n{ROOT_B64}\n",
    "root-31-bytes": f"{ORIGIN}\n5\n{base64.b64encode(ROOT[:31]).decode()}\n",
    "root-33-bytes": f"{ORIGIN}\n5\n{base64.b64encode(ROOT + b'x').decode()}\n",
    "root-unpadded": f"{ORIGIN}\n5\n{ROOT_B64.rstrip('=')}\n",
    "root-urlsafe": f"{ORIGIN}\n5\n{URLSAFE_ROOT}\n",
    "root-hex": f"{ORIGIN}\n5\n{ROOT.hex()}\n",
    "root-non-canonical": f"{ORIGIN}\n5\n{ROOT_B64[:-2]}{chr(ord(ROOT_B64[-2]) ^ 1)}=\n",
    "empty-origin": f"\n5\n{ROOT_B64}\n",
    "two-lines": f"{ORIGIN}\n5\n",
    "no-final-newline": f"{ORIGIN}\n5\n{ROOT_B64}",
    "empty-extension": f"{ORIGIN}\n5\n{ROOT_B64}\next\n\n",
}


@pytest.mark.parametrize("body", BAD_BODIES.values(), ids=BAD_BODIES.keys())
def test_malformed_checkpoint_bodies(body: str, signer: NoteSigner) -> None:
    with pytest.raises(IntegrityError, match="malformed") as info:
        verify_checkpoint_note(signed_body(body, signer), signer.verifier())
    assert info.value.hint


def test_note_size_limit(signer: NoteSigner) -> None:
    ext = "x" * 1000
    fits = Checkpoint(ORIGIN, 1, ROOT, (ext,) * 1000)
    assert verify_checkpoint_note(sign_checkpoint(fits, signer), signer.verifier()) == fits
    too_big = Checkpoint(ORIGIN, 1, ROOT, (ext,) * 1100)
    with pytest.raises(IntegrityError, match="over the 1048576-byte limit"):
        verify_checkpoint_note(sign_checkpoint(too_big, signer), signer.verifier())


def test_signature_count_limit(signer: NoteSigner, checkpoint: Checkpoint) -> None:
    body = checkpoint.body()
    others = "".join(NoteSignature(f"w{i}.example", b"\0\0\0\0", bytes(64)).line() for i in range(99))
    ok = body.decode() + "\n" + others + signer.sign(body).line()
    assert verify_checkpoint_note(ok, signer.verifier()) == checkpoint
    too_many = body.decode() + "\n" + others + NoteSignature("w.example", b"\0" * 4, bytes(64)).line()
    too_many += signer.sign(body).line()
    with pytest.raises(IntegrityError, match="101 signature lines"):
        verify_checkpoint_note(too_many, signer.verifier())


# --- value checks ---


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"origin": ""}, "origin"),
        ({"origin": "a\nb"}, "origin"),
        ({"origin": "a\tb"}, "origin"),
        ({"size": -1}, "size"),
        ({"size": 2**64}, "size"),
        ({"size": True}, "size"),
        ({"size": "5"}, "size"),
        ({"root": ROOT[:31]}, "root"),
        ({"root": ROOT.hex()}, "root"),
        ({"extensions": ("",)}, "extension"),
        ({"extensions": ("a\nb",)}, "extension"),
    ],
)
def test_checkpoint_rejects_bad_values(kwargs: dict[str, object], match: str) -> None:
    args: dict[str, object] = {"origin": ORIGIN, "size": 1, "root": ROOT, **kwargs}
    with pytest.raises(ValueError, match=match):
        Checkpoint(**args)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["", "a b", "a+b", "a\tb", "a\u00a0b", "a\u2003b", "a\nb", "a\x01b"])
def test_key_names_are_checked(name: str) -> None:
    key = Ed25519PrivateKey.generate()
    with pytest.raises(ValueError, match="invalid key name"):
        NoteSigner(key, name)
    with pytest.raises(ValueError, match="invalid key name"):
        NoteVerifier(name, key.public_key())


def test_vkey_manglings_are_rejected() -> None:
    # Every proper substring and every single-character change of a valid key must fail to parse.
    assert NoteVerifier.from_vkey(GO_VKEY).to_vkey() == GO_VKEY
    candidates = {GO_VKEY[i:j] for i in range(len(GO_VKEY)) for j in range(i + 1, len(GO_VKEY) + 1)}
    candidates |= {GO_VKEY[:i] + chr(ord(c) + 1) + GO_VKEY[i + 1 :] for i, c in enumerate(GO_VKEY)}
    candidates.discard(GO_VKEY)
    for bad in sorted(candidates):
        with pytest.raises(ConfigError):
            NoteVerifier.from_vkey(bad)


def test_vkey_other_algorithm_is_rejected() -> None:
    name, id_hex, key_b64 = GO_VKEY.split("+", 2)
    ecdsa_type = base64.b64encode(b"\x02" + base64.b64decode(key_b64)[1:]).decode()
    with pytest.raises(ConfigError, match="not Ed25519") as info:
        NoteVerifier.from_vkey(f"{name}+{id_hex}+{ecdsa_type}")
    assert info.value.hint


def test_signer_repr_hides_key(signer: NoteSigner) -> None:
    assert "PRIVATE" not in repr(signer) and signer.key_id.hex() in repr(signer)
    assert signer.verifier().to_vkey() in repr(signer.verifier())


# --- key files ---


def test_save_and_load_private_key(tmp_path: Path) -> None:
    key = keys.generate_signing_key()
    path = tmp_path / "log.key"
    keys.save_private_key(key, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----\n")  # PKCS#8 PEM
    loaded = keys.load_private_key(path)
    assert cpm.public_key_bytes(loaded) == cpm.public_key_bytes(key)
    assert len(cpm.public_key_bytes(key)) == 32
    assert cpm.public_key_bytes(key) == cpm.public_key_bytes(key.public_key())


def test_save_is_0600_even_with_permissive_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        keys.save_private_key(keys.generate_signing_key(), tmp_path / "k")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "k").stat().st_mode) == 0o600


def test_save_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "log.key"
    path.write_bytes(b"keep me")
    with pytest.raises(AlreadyExists) as info:
        keys.save_private_key(keys.generate_signing_key(), path)
    assert info.value.hint
    assert path.read_bytes() == b"keep me"


def test_save_refuses_symlinks(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    link = tmp_path / "log.key"
    link.symlink_to(target)  # dangling: O_EXCL must not follow it and create the target
    with pytest.raises(AlreadyExists):
        keys.save_private_key(keys.generate_signing_key(), link)
    assert not target.exists()


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o620])
def test_load_refuses_group_or_world_accessible_key(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "log.key"
    keys.save_private_key(keys.generate_signing_key(), path)
    path.chmod(mode)
    with pytest.raises(ConfigError, match="accessible by group or others") as info:
        keys.load_private_key(path)
    assert "chmod 600" in info.value.hint


def test_load_accepts_0400(tmp_path: Path) -> None:
    path = tmp_path / "log.key"
    keys.save_private_key(keys.generate_signing_key(), path)
    path.chmod(0o400)
    assert isinstance(keys.load_private_key(path), Ed25519PrivateKey)


def test_load_missing_key(tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        keys.load_private_key(tmp_path / "absent.key")


def write_0600(path: Path, data: bytes) -> Path:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with open(fd, "wb") as handle:
        handle.write(data)
    return path


def test_load_rejects_non_ed25519_and_garbage(tmp_path: Path) -> None:
    ec_pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    encrypted = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret"),
    )
    for i, data in enumerate([ec_pem, encrypted, b"not a key", b""]):
        with pytest.raises(ConfigError, match="not an unencrypted Ed25519 private key"):
            keys.load_private_key(write_0600(tmp_path / f"k{i}", data))


def test_load_rejects_directories(tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir(mode=0o700)
    with pytest.raises(ConfigError, match="not a regular file"):
        keys.load_private_key(tmp_path / "dir")
