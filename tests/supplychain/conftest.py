"""Keys and small models shared by the signing tests."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from mlwarden.supplychain import _bundle


@pytest.fixture(scope="session")
def key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="session")
def other_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    """A folder model with nesting, names whose string and path orders differ, and git files."""
    root = tmp_path / "my-model"
    (root / "weights").mkdir(parents=True)
    (root / "a").mkdir()
    (root / "weights" / "layer0.bin").write_bytes(bytes(range(256)) * 64)
    (root / "weights" / "layer1.bin").write_bytes(b"\x00" * 1000)
    (root / "a" / "b").write_text("inner")
    (root / "a-c").write_text("outer")
    (root / "config.json").write_text('{"n": 2}')
    (root / "empty.txt").write_bytes(b"")
    (root / "a" / ".gitignore").write_text("*.tmp")  # only the top-level git files are left out
    (root / ".gitignore").write_text("*.tmp")
    (root / ".git").mkdir()
    (root / ".git" / "HEAD").write_text("ref: refs/heads/main")
    return root


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    path = tmp_path / "model.skops"
    path.write_bytes(b"PK\x03\x04 not really a zip, but bytes to sign" * 100)
    return path


def write_public_key(key: ec.EllipticCurvePrivateKey, path: Path) -> Path:
    pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    path.write_bytes(pem)
    return path


def write_private_key(key: ec.EllipticCurvePrivateKey, path: Path) -> Path:
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    path.write_bytes(pem)
    path.chmod(0o600)
    return path


def statement_of(bundle: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(base64.b64decode(json.loads(bundle)["dsseEnvelope"]["payload"]))
    return doc


def sign_statement(statement: object, key: ec.EllipticCurvePrivateKey) -> str:
    """A correctly signed bundle around any statement: to test what the statement reader accepts."""
    payload = statement if isinstance(statement, bytes) else json.dumps(statement).encode()
    return _bundle.seal(payload, key)
