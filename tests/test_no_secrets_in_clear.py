"""Tokens, passwords and TOTP secrets never appear in clear in the database, the workspace's files,
audit events or command output (after the one output that shows a new secret)."""

from __future__ import annotations

import base64
from pathlib import Path

import pyotp
import pytest

from mlwarden.cli import main
from mlwarden.errors import AuthenticationError
from mlwarden.identity.tokens import parse_token
from mlwarden.service.init import init_workspace
from tests.service.access_kit import StepClock

PASSWORDS = ["first-admin-password", "second-user-password"]


def _forms(secret: str) -> list[bytes]:
    raw = base64.b32decode(secret)
    return [secret.encode(), secret.lower().encode(), raw, raw.hex().encode()]


def test_nothing_secret_in_clear(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    clock = StepClock()
    monkeypatch.setattr("mlwarden.service.mfa.now", clock)
    made = init_workspace(tmp_path / "ws", admin_password=PASSWORDS[0])
    made.workspace.close()
    root = made.workspace.root
    from mlwarden.service.workspace import open_workspace

    secrets: list[bytes] = []
    with open_workspace(root, token=made.token.plaintext) as ws:
        ws.users.add("sam", password=PASSWORDS[1])
        tokens = [made.token.plaintext, ws.tokens.create("ci", user="sam").plaintext]
        enrollment = ws.mfa.enroll()
        clock.advance()
        ws.mfa.verify(pyotp.TOTP(enrollment.secret).at(clock.now))
    with open_workspace(root, token="") as anonymous:
        tokens.append(anonymous.login("sam", PASSWORDS[1]).plaintext)
        with pytest.raises(AuthenticationError):
            anonymous.login("sam", "a-wrong-password-123")
    secrets += [p.encode() for p in PASSWORDS]
    secrets += [t.encode() for t in tokens] + [parse_token(t).secret.encode() for t in tokens]
    secrets += _forms(enrollment.secret)
    monkeypatch.setenv("MLWARDEN_TOKEN", tokens[0])
    capsys.readouterr()
    assert main(["--workspace", str(root), "audit", "log", "--json", "--limit", "100000"]) == 0
    assert main(["--workspace", str(root), "mfa", "status", "--json"]) == 0
    assert main(["--workspace", str(root), "token", "list", "--json", "--user", "sam"]) == 0
    output = capsys.readouterr()
    blobs = [output.out.encode(), output.err.encode()]
    keys = ("checkpoint.pem", "secrets.key")  # the keys themselves
    blobs += [p.read_bytes() for p in (root / ".mlwarden").rglob("*") if p.is_file() and p.name not in keys]
    for blob in blobs:
        for secret in secrets:
            assert secret not in blob
