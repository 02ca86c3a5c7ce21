"""Interop with the reference implementation, OpenSSF ``model_signing`` (pinned in the dev extra).

Its verifier must accept what mlwarden signs (the Python API and the CLI command docs/signing.md shows),
and reject it once the model changes; mlwarden must accept what its signer makes.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import model_signing
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from mlwarden.errors import IntegrityError
from mlwarden.supplychain import digest_model, sign_model, signed_digests, verify_model
from tests.supplychain.conftest import statement_of, write_private_key, write_public_key

Key = ec.EllipticCurvePrivateKey


def test_pinned_version() -> None:
    assert model_signing.__version__ == "1.1.1"


def reference_verify(model: Path, signature: Path, public_key: Path) -> None:
    model_signing.verifying.Config().use_elliptic_key_verifier(public_key=public_key).verify(model, signature)


@pytest.mark.parametrize("curve", [ec.SECP256R1(), ec.SECP384R1()], ids=["P-256", "P-384"])
@pytest.mark.parametrize("kind", ["folder", "file"])
def test_model_signing_accepts_our_signature(
    model_dir: Path, model_file: Path, tmp_path: Path, curve: ec.EllipticCurve, kind: str
) -> None:
    key = ec.generate_private_key(curve)
    model = model_dir if kind == "folder" else model_file
    signature = tmp_path / "model.sig"
    signature.write_text(sign_model(model, key))
    public_key = write_public_key(key, tmp_path / "model-signing.pub")
    reference_verify(model, signature, public_key)

    (model / "weights" / "layer1.bin" if kind == "folder" else model).write_bytes(b"tampered")
    with pytest.raises(ValueError, match="Signature mismatch"):
        reference_verify(model, signature, public_key)


def test_model_signing_rejects_another_key(model_dir: Path, tmp_path: Path, key: Key, other_key: Key) -> None:
    signature = tmp_path / "model.sig"
    signature.write_text(sign_model(model_dir, other_key))
    with pytest.raises(ValueError, match="Key mismatch"):
        reference_verify(model_dir, signature, write_public_key(key, tmp_path / "k.pub"))


def test_model_signing_cli_accepts_our_signature(model_dir: Path, tmp_path: Path, key: Key) -> None:
    """The command of docs/signing.md, run as a user would (the CLI's own exit code and message)."""
    work = tmp_path / "work"
    work.mkdir()
    model = shutil.move(model_dir, work / "model")
    (work / "model.sig").write_text(sign_model(Path(model), key))
    write_public_key(key, work / "model-signing.pub")
    command = [
        sys.executable, "-m", "model_signing", "verify", "key", "model",
        "--signature", "model.sig", "--public_key", "model-signing.pub",
    ]  # fmt: skip
    ok = subprocess.run(command, cwd=work, capture_output=True, text=True, timeout=120, check=False)
    assert (ok.returncode, ok.stdout.strip()) == (0, "Verification succeeded"), ok.stderr

    (work / "model" / "config.json").write_text("{}")
    bad = subprocess.run(command, cwd=work, capture_output=True, text=True, timeout=120, check=False)
    assert bad.returncode == 1 and "Hash mismatch for 'config.json'" in bad.stderr


@pytest.mark.parametrize("kind", ["folder", "file"])
def test_we_accept_model_signing_signature(
    model_dir: Path, model_file: Path, tmp_path: Path, key: Key, kind: str
) -> None:
    model = model_dir if kind == "folder" else model_file
    signature = tmp_path / "model.sig"
    model_signing.signing.Config().use_elliptic_key_signer(
        private_key=write_private_key(key, tmp_path / "private.pem")
    ).sign(model, signature)
    bundle = signature.read_text()

    assert verify_model(model, bundle, key.public_key()) == digest_model(model)
    # the same model gives the same root digest: same names, order and serialization
    ours = statement_of(sign_model(model, key))
    theirs = statement_of(bundle)
    assert theirs["subject"] == ours["subject"]
    assert (
        sorted(theirs["predicate"]["serialization"]["ignore_paths"])
        == ours["predicate"]["serialization"]["ignore_paths"]
    )

    (model / "config.json" if kind == "folder" else model).write_bytes(b"tampered")
    with pytest.raises(IntegrityError, match="changed"):
        verify_model(model, bundle, key.public_key())


def test_model_signing_ignore_paths_are_honoured(model_dir: Path, tmp_path: Path, key: Key) -> None:
    """A signature its CLI wrote inside the model folder is listed in ignore_paths, and so not 'added'."""
    signature = model_dir / "model.sig"
    model_signing.signing.Config().use_elliptic_key_signer(
        private_key=write_private_key(key, tmp_path / "private.pem")
    ).set_hashing_config(model_signing.hashing.Config().set_ignored_paths(paths=["model.sig"])).sign(
        model_dir, signature
    )
    assert "model.sig" in statement_of(signature.read_text())["predicate"]["serialization"]["ignore_paths"]
    assert "model.sig" not in {d.path for d in signed_digests(signature.read_text(), key.public_key())}
    verify_model(model_dir, signature.read_text(), key.public_key())
