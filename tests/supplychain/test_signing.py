"""Model signatures: digests, round trips, and every way a model or its signature can be tampered with."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mlwarden.supplychain as sc
from mlwarden.errors import ConfigError, InputError, IntegrityError, NotFound
from mlwarden.supplychain import (
    FileDigest,
    digest_model,
    load_or_create_model_key,
    sign_model,
    signed_digests,
    verify_model,
)
from mlwarden.supplychain._bundle import MAX_BUNDLE_CHARS
from mlwarden.supplychain._statement import root_digest
from tests.supplychain.conftest import sign_statement, statement_of, write_private_key

Key = ec.EllipticCurvePrivateKey


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_public_surface() -> None:
    assert set(sc.__all__) == {
        "MODEL_KEY_FILE", "FileDigest", "digest_model", "load_or_create_model_key", "sign_model",
        "signed_digests", "verify_model",
    }  # fmt: skip
    for name in sc.__all__:
        assert getattr(sc, name).__doc__ or name == "MODEL_KEY_FILE"


# --- digests ---


def test_digest_single_file_is_named_dot(model_file: Path) -> None:
    assert digest_model(model_file) == [FileDigest(".", sha(model_file.read_bytes()))]


def test_digest_folder_sorted_by_path_components_without_top_level_git(model_dir: Path) -> None:
    digests = digest_model(model_dir)
    assert [d.path for d in digests] == [
        "a/.gitignore", "a/b", "a-c", "config.json", "empty.txt", "weights/layer0.bin", "weights/layer1.bin",
    ]  # fmt: skip
    assert digests[1] == FileDigest("a/b", sha(b"inner"))
    assert digests[4] == FileDigest("empty.txt", sha(b""))


def test_digest_streams_large_files(tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024 + 7)
    (tmp_path / "big.bin").write_bytes(data)
    assert digest_model(tmp_path / "big.bin") == [FileDigest(".", sha(data))]


def test_digest_refuses_symlinks(model_dir: Path, tmp_path: Path) -> None:
    (model_dir / "weights" / "link.bin").symlink_to(model_dir / "config.json")
    with pytest.raises(InputError, match="symbolic link") as info:
        digest_model(model_dir)
    assert info.value.hint
    (model_dir / "weights" / "link.bin").unlink()
    (model_dir / "weights" / "linked-dir").symlink_to(tmp_path, target_is_directory=True)
    with pytest.raises(InputError, match="symbolic link"):
        digest_model(model_dir)
    (tmp_path / "root-link").symlink_to(model_dir)
    with pytest.raises(InputError, match="symbolic link"):
        digest_model(tmp_path / "root-link")


def test_digest_refuses_special_files(model_dir: Path) -> None:
    os.mkfifo(model_dir / "pipe")
    with pytest.raises(InputError, match="FIFO") as info:
        digest_model(model_dir)
    assert info.value.hint
    with pytest.raises(InputError, match="FIFO"):
        digest_model(model_dir / "pipe")


def test_digest_refuses_empty_and_missing(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no files"):
        digest_model(tmp_path / "empty")
    with pytest.raises(NotFound):
        digest_model(tmp_path / "absent")


def test_digest_refuses_names_that_are_not_utf8_or_hold_backslashes(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    with open(os.path.join(os.fsencode(tmp_path / "m"), b"bad\xff"), "wb"):
        pass
    with pytest.raises(InputError, match="UTF-8"):
        digest_model(tmp_path / "m")
    os.remove(os.path.join(os.fsencode(tmp_path / "m"), b"bad\xff"))
    (tmp_path / "m" / "a\\b").write_text("x")
    with pytest.raises(InputError, match="backslash"):
        digest_model(tmp_path / "m")


# --- round trips ---


def test_round_trip_folder(model_dir: Path, key: Key) -> None:
    bundle = sign_model(model_dir, key)
    assert verify_model(model_dir, bundle, key.public_key()) == digest_model(model_dir)
    assert signed_digests(bundle, key.public_key()) == digest_model(model_dir)
    statement = statement_of(bundle)
    assert statement["subject"][0]["name"] == "my-model"
    assert statement["predicate"]["serialization"] == {
        "method": "files", "hash_type": "sha256", "allow_symlinks": False,
        "ignore_paths": [".git", ".gitattributes", ".github", ".gitignore"],
    }  # fmt: skip


def test_round_trip_single_file(model_file: Path, key: Key) -> None:
    bundle = sign_model(model_file, key)
    assert verify_model(model_file, bundle, key.public_key()) == [FileDigest(".", sha(model_file.read_bytes()))]
    assert statement_of(bundle)["subject"][0]["name"] == "model.skops"


def test_round_trip_p384(model_file: Path) -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    assert verify_model(model_file, sign_model(model_file, key), key.public_key())


def test_git_files_may_change_as_model_signing_ignores_them(model_dir: Path, key: Key) -> None:
    bundle = sign_model(model_dir, key)
    (model_dir / ".gitattributes").write_text("*.bin filter=lfs")
    (model_dir / ".git" / "HEAD").write_text("changed")
    verify_model(model_dir, bundle, key.public_key())


def test_moving_the_model_keeps_the_signature(model_dir: Path, tmp_path: Path, key: Key) -> None:
    bundle = sign_model(model_dir, key)
    moved = model_dir.rename(tmp_path / "elsewhere")
    verify_model(moved, bundle, key.public_key())


def test_sign_from_stored_digests_reads_no_file(model_dir: Path, tmp_path: Path, key: Key) -> None:
    digests = list(reversed(digest_model(model_dir)))  # any order: signed sorted
    bundle = sign_model(tmp_path / "gone", key, digests=digests)
    assert signed_digests(bundle, key.public_key()) == digest_model(model_dir)
    assert statement_of(bundle)["subject"][0]["name"] == "gone"
    verify_model(model_dir.rename(tmp_path / "gone"), bundle, key.public_key())


@pytest.mark.parametrize(
    "digests",
    [
        [],
        [FileDigest("../x", "0" * 64)],
        [FileDigest("/etc/passwd", "0" * 64)],
        [FileDigest("a", "0" * 64), FileDigest(".", "0" * 64)],
        [FileDigest("a", "0" * 63)],
        [FileDigest("a", "A" * 64)],
        [FileDigest("a", "0" * 64), FileDigest("a", "1" * 64)],
    ],
)
def test_sign_refuses_bad_digests(tmp_path: Path, key: Key, digests: list[FileDigest]) -> None:
    with pytest.raises(InputError) as info:
        sign_model(tmp_path, key, digests=digests)
    assert info.value.hint


def test_sign_refuses_keys_model_signing_cannot_verify(model_file: Path) -> None:
    with pytest.raises(ConfigError, match="P-256"):
        sign_model(model_file, ec.generate_private_key(ec.SECP256K1()))
    with pytest.raises(ConfigError):
        sign_model(model_file, Ed25519PrivateKey.generate())  # type: ignore[arg-type]


# --- tampered models ---


def mismatch(model: Path, bundle: str, key: Key, match: str) -> IntegrityError:
    with pytest.raises(IntegrityError, match=match) as info:
        verify_model(model, bundle, key.public_key())
    assert info.value.hint
    return info.value


def test_one_byte_changed(model_dir: Path, key: Key) -> None:
    bundle = sign_model(model_dir, key)
    target = model_dir / "weights" / "layer0.bin"
    data = bytearray(target.read_bytes())
    data[5000] ^= 1
    target.write_bytes(bytes(data))
    mismatch(model_dir, bundle, key, r"changed: weights/layer0\.bin$")


def test_single_file_changed(model_file: Path, key: Key) -> None:
    bundle = sign_model(model_file, key)
    model_file.write_bytes(model_file.read_bytes() + b"\n")
    mismatch(model_file, bundle, key, r"changed: \.$")


def test_file_added_removed_renamed(model_dir: Path, key: Key) -> None:
    bundle = sign_model(model_dir, key)
    (model_dir / "a" / "extra.pkl").write_bytes(b"\x80\x04.")
    mismatch(model_dir, bundle, key, r"added: a/extra\.pkl$")
    (model_dir / "a" / "extra.pkl").unlink()
    (model_dir / "empty.txt").unlink()
    mismatch(model_dir, bundle, key, r"missing: empty\.txt$")
    (model_dir / "empty.txt").write_bytes(b"")
    (model_dir / "config.json").rename(model_dir / "config2.json")
    mismatch(model_dir, bundle, key, r"added: config2\.json; missing: config\.json$")


def test_many_differences_are_summarised(model_dir: Path, key: Key) -> None:
    bundle = sign_model(model_dir, key)
    for i in range(8):
        (model_dir / f"new{i}").write_text("x")
    error = mismatch(model_dir, bundle, key, "and 3 more")
    assert len(str(error)) < 300


def test_symlink_or_fifo_in_signed_folder(model_dir: Path, key: Key) -> None:
    bundle = sign_model(model_dir, key)
    (model_dir / "weights" / "evil.bin").symlink_to("/etc/passwd")
    mismatch(model_dir, bundle, key, "symbolic link")
    (model_dir / "weights" / "evil.bin").unlink()
    os.mkfifo(model_dir / "pipe")
    mismatch(model_dir, bundle, key, "FIFO")


def test_file_signature_on_folder_and_back(model_dir: Path, model_file: Path, key: Key) -> None:
    mismatch(model_dir, sign_model(model_file, key), key, "for one file")
    mismatch(model_file, sign_model(model_dir, key), key, "for a folder")


# --- tampered signatures ---


def edit(bundle: str, change: Callable[[dict[str, Any]], object]) -> str:
    doc = json.loads(bundle)
    change(doc)
    return json.dumps(doc)


def test_signed_by_another_key(model_dir: Path, key: Key, other_key: Key) -> None:
    bundle = sign_model(model_dir, other_key)
    mismatch(model_dir, bundle, key, "another key")
    no_hint = edit(bundle, lambda d: d["verificationMaterial"]["publicKey"].pop("hint"))
    mismatch(model_dir, no_hint, key, "does not verify")
    our_hint = edit(bundle, lambda d: d["verificationMaterial"]["publicKey"].update(hint=_hint(key)))
    mismatch(model_dir, our_hint, key, "does not verify")


def _hint(key: Key) -> str:
    pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(pem).hexdigest()


def test_payload_edited_after_signing(model_dir: Path, key: Key) -> None:
    bundle = sign_model(model_dir, key)
    (model_dir / "config.json").write_text('{"n": 3, "backdoor": true}')
    statement = statement_of(bundle)
    for resource in statement["predicate"]["resources"]:
        if resource["name"] == "config.json":
            resource["digest"] = sha(b'{"n": 3, "backdoor": true}')
    digests = [FileDigest(r["name"], r["digest"]) for r in statement["predicate"]["resources"]]
    statement["subject"][0]["digest"]["sha256"] = root_digest(digests)  # a consistent, re-rooted statement
    payload = base64.b64encode(json.dumps(statement).encode()).decode()
    forged = edit(bundle, lambda d: d["dsseEnvelope"].update(payload=payload))
    mismatch(model_dir, forged, key, "does not verify")
    with pytest.raises(IntegrityError, match="does not verify"):
        signed_digests(forged, key.public_key())


def test_signature_bytes_flipped(model_file: Path, key: Key) -> None:
    bundle = sign_model(model_file, key)
    sig = bytearray(base64.b64decode(json.loads(bundle)["dsseEnvelope"]["signatures"][0]["sig"]))
    for i in (10, len(sig) - 1):
        flipped = bytearray(sig)
        flipped[i] ^= 0x40
        text = base64.b64encode(bytes(flipped)).decode()
        forged = json.loads(bundle)
        forged["dsseEnvelope"]["signatures"][0]["sig"] = text
        mismatch(model_file, json.dumps(forged), key, "does not verify")


def test_payload_type_changed(model_file: Path, key: Key) -> None:
    bundle = sign_model(model_file, key)
    other = edit(bundle, lambda d: d["dsseEnvelope"].update(payloadType="application/json"))
    mismatch(model_file, other, key, "payloadType")


# --- malformed bundles: always IntegrityError, never a raw exception ---


GOOD_STATEMENT_CHANGES: list[tuple[str, Callable[[dict[str, Any]], object]]] = [
    ("_type", lambda s: s.update(_type="https://in-toto.io/Statement/v0.1")),
    ("predicateType", lambda s: s.update(predicateType="https://slsa.dev/provenance/v1")),
    ("subjects", lambda s: s["subject"].append(s["subject"][0])),
    ("subject", lambda s: s.update(subject="model")),
    ("root digest", lambda s: s["subject"][0]["digest"].update(sha256="0" * 64)),
    ("is not a string", lambda s: s["subject"][0]["digest"].pop("sha256")),
    ("'shards'", lambda s: s["predicate"]["serialization"].update(method="shards", shard_size=1000)),
    ("'blake2'", lambda s: s["predicate"]["serialization"].update(hash_type="blake2")),
    ("allow_symlinks", lambda s: s["predicate"]["serialization"].update(allow_symlinks="false")),
    ("ignore_paths", lambda s: s["predicate"]["serialization"].update(ignore_paths=["../outside"])),
    ("ignore_paths", lambda s: s["predicate"]["serialization"].update(ignore_paths=["."])),
    ("ignore_paths", lambda s: s["predicate"]["serialization"].update(ignore_paths="a")),
    ("empty", lambda s: s["predicate"].update(resources=[])),
    ("not a JSON list", lambda s: s["predicate"].update(resources={"a": "b"})),
    ("not a JSON object", lambda s: s["predicate"]["resources"].append("a.bin")),
    ("SHA-256", lambda s: s["predicate"]["resources"][0].update(algorithm="blake3")),
    ("hex", lambda s: s["predicate"]["resources"][0].update(digest="ABC")),
    ("not a string", lambda s: s["predicate"]["resources"][0].update(name=7)),
]
TRAVERSAL = ["../x", "a/../../x", "/etc/passwd", "a//b", "a/./b", "", ".", "..", "a/", "a\\..\\b", "a\0b"]


@pytest.mark.parametrize(("match", "change"), GOOD_STATEMENT_CHANGES, ids=[m for m, _ in GOOD_STATEMENT_CHANGES])
def test_statement_fields_checked(model_dir: Path, key: Key, match: str, change: Callable[[Any], object]) -> None:
    statement = statement_of(sign_model(model_dir, key))
    change(statement)
    with pytest.raises(IntegrityError, match=match):
        verify_model(model_dir, sign_statement(statement, key), key.public_key())


@pytest.mark.parametrize("name", TRAVERSAL)
def test_statement_path_traversal(model_dir: Path, key: Key, name: str) -> None:
    statement = statement_of(sign_model(model_dir, key))
    statement["predicate"]["resources"][1]["name"] = name
    digests = [FileDigest(r["name"], r["digest"]) for r in statement["predicate"]["resources"]]
    statement["subject"][0]["digest"]["sha256"] = root_digest(digests)
    with pytest.raises(IntegrityError, match="not a relative path inside the model"):
        signed_digests(sign_statement(statement, key), key.public_key())


def test_statement_duplicate_paths_and_keys(model_dir: Path, key: Key) -> None:
    statement = statement_of(sign_model(model_dir, key))
    resources = statement["predicate"]["resources"]
    resources.append(dict(resources[0], digest="0" * 64))
    digests = [FileDigest(r["name"], r["digest"]) for r in resources]
    statement["subject"][0]["digest"]["sha256"] = root_digest(digests)
    with pytest.raises(IntegrityError, match="names a file twice"):
        signed_digests(sign_statement(statement, key), key.public_key())
    text = json.dumps(statement_of(sign_model(model_dir, key)))
    doubled = text.replace('"predicateType":', '"predicateType": "x", "predicateType":', 1)
    with pytest.raises(IntegrityError, match="repeats a JSON key"):
        signed_digests(sign_statement(doubled.encode(), key), key.public_key())
    for bad in (b"\xff\xfe", b"[NaN]", b"{"):
        with pytest.raises(IntegrityError, match="malformed"):
            signed_digests(sign_statement(bad, key), key.public_key())


BUNDLE_CHANGES: list[tuple[str, Callable[[dict[str, Any]], object]]] = [
    ("mediaType", lambda d: d.update(mediaType="application/vnd.dev.sigstore.bundle.v0.2+json")),
    ("verificationMaterial", lambda d: d.pop("verificationMaterial")),
    ("names no public key", lambda d: d["verificationMaterial"].pop("publicKey")),
    ("publicKey is not a JSON object", lambda d: d["verificationMaterial"].update(publicKey="k")),
    ("dsseEnvelope is not", lambda d: d.pop("dsseEnvelope")),
    ("payload is not a string", lambda d: d["dsseEnvelope"].update(payload=12)),
    ("payload is not base64", lambda d: d["dsseEnvelope"].update(payload="not base64!")),
    ("payloadType is not a string", lambda d: d["dsseEnvelope"].update(payloadType=None)),
    ("0 signatures", lambda d: d["dsseEnvelope"].update(signatures=[])),
    ("signatures is not a JSON list", lambda d: d["dsseEnvelope"].update(signatures={"sig": "AA=="})),
    ("2 signatures", lambda d: d["dsseEnvelope"]["signatures"].append(d["dsseEnvelope"]["signatures"][0])),
    (r"signatures\[0\] is not a JSON object", lambda d: d["dsseEnvelope"].update(signatures=["AA=="])),
    ("sig is not a string", lambda d: d["dsseEnvelope"]["signatures"][0].pop("sig")),
    ("does not verify", lambda d: d["dsseEnvelope"]["signatures"][0].update(sig="")),
    ("does not verify", lambda d: d["dsseEnvelope"]["signatures"][0].update(sig="AAAA")),
]


@pytest.mark.parametrize(("match", "change"), BUNDLE_CHANGES)
def test_bundle_fields_checked(
    model_file: Path, key: Key, match: str, change: Callable[[dict[str, Any]], object]
) -> None:
    mismatch(model_file, edit(sign_model(model_file, key), change), key, match)


@pytest.mark.parametrize(
    "text",
    ["", "not json", "[]", "null", '"text"', "{}", "[" * 100_000, '{"a": NaN}', " " * (MAX_BUNDLE_CHARS + 1)],
    ids=["empty", "garbage", "list", "null", "string", "object", "deep", "nan", "huge"],
)
def test_garbage_bundles(model_file: Path, key: Key, text: str) -> None:
    mismatch(model_file, text, key, "malformed")


def test_truncated_bundle(model_file: Path, key: Key) -> None:
    bundle = sign_model(model_file, key)
    for end in (1, len(bundle) // 3, len(bundle) // 2, len(bundle) - 2):
        mismatch(model_file, bundle[:end], key, "malformed")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_bundles_only_raise_integrity_errors(model_file: Path, key: Key, data: st.DataObject) -> None:
    bundle = _cached_bundle(model_file, key)
    position = data.draw(st.integers(0, len(bundle) - 1))
    char = data.draw(st.sampled_from('"{}[],:0aA=/+\\ \x00é'))
    mutated = bundle[:position] + char + bundle[position + 1 :]
    if mutated == bundle:
        return
    try:
        verify_model(model_file, mutated, key.public_key())
    except IntegrityError:
        return
    # the only harmless edits are outside what is signed (layout, the key name) or give the same bytes
    assert _signed_part(mutated) == _signed_part(bundle)


def _signed_part(bundle: str) -> tuple[str, bytes, bytes]:
    envelope = json.loads(bundle)["dsseEnvelope"]
    sig = envelope["signatures"][0]["sig"]
    return envelope["payloadType"], base64.b64decode(envelope["payload"]), base64.b64decode(sig)


_BUNDLES: dict[Path, str] = {}


def _cached_bundle(model: Path, key: Key) -> str:
    if model not in _BUNDLES:
        _BUNDLES.clear()
        _BUNDLES[model] = sign_model(model, key)
    return _BUNDLES[model]


# --- the model-signing key ---


def test_model_key_created_once(tmp_path: Path) -> None:
    keys_dir = tmp_path / "keys"
    key = load_or_create_model_key(keys_dir)
    path = keys_dir / sc.MODEL_KEY_FILE
    assert isinstance(key.curve, ec.SECP256R1)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----\n")  # PKCS#8 PEM
    again = load_or_create_model_key(keys_dir)
    assert again.private_numbers() == key.private_numbers()
    assert [p.name for p in keys_dir.iterdir()] == [sc.MODEL_KEY_FILE]  # no temporary file left behind


def test_model_key_race_has_one_winner(tmp_path: Path) -> None:
    barrier = threading.Barrier(6)
    found: list[int] = []

    def make() -> None:
        barrier.wait()
        found.append(load_or_create_model_key(tmp_path).private_numbers().private_value)

    threads = [threading.Thread(target=make) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(found) == 6 and len(set(found)) == 1


def test_model_key_refuses_exposed_or_wrong_keys(tmp_path: Path) -> None:
    path = write_private_key(ec.generate_private_key(ec.SECP256R1()), tmp_path / sc.MODEL_KEY_FILE)
    path.chmod(0o644)
    with pytest.raises(ConfigError, match="accessible by group or others"):
        load_or_create_model_key(tmp_path)
    path.unlink()
    write_private_key(ec.generate_private_key(ec.SECP256K1()), path)
    with pytest.raises(ConfigError, match="secp256k1"):
        load_or_create_model_key(tmp_path)
    path.unlink()
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path.write_bytes(pem)
    path.chmod(0o600)
    with pytest.raises(ConfigError, match="ECDSA"):
        load_or_create_model_key(tmp_path)


def test_model_key_needs_an_existing_workspace(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot create"):
        load_or_create_model_key(tmp_path / "no" / "such" / "keys")
