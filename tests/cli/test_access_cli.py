"""`mlwarden project|role|approvals` in-process, end to end with TOTP step-ups; and the matrix in
docs/access.md equal to the one in code."""

from __future__ import annotations

from pathlib import Path

import pyotp
import pytest

from mlwarden.access.roles import matrix_markdown
from tests.cli.test_cli import PASSWORD, Cli
from tests.service.access_kit import StepClock

DOCS = Path(__file__).resolve().parents[2] / "docs" / "access.md"


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> StepClock:
    fake = StepClock()
    monkeypatch.setattr("mlwarden.service.mfa.now", fake)
    return fake


@pytest.fixture
def cli(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    runner = Cli(capsys, monkeypatch, tmp_path / "ws")
    code, _, err = runner.run("init", str(runner.root), "--admin", "root", "--password-stdin", stdin=PASSWORD + "\n")
    assert code == 0, err
    return runner


def _enrol(cli: Cli, clock: StepClock) -> str:
    secret = str(cli.json("mfa", "enroll")["secret"])
    clock.advance()
    cli.json("mfa", "verify", pyotp.TOTP(secret).at(clock.now))
    return secret


def _code(secret: str, clock: StepClock) -> str:
    clock.advance()
    return pyotp.TOTP(secret).at(clock.now)


def _login(cli: Cli, user: str) -> None:
    assert cli.json("login", "--user", user, "--password-stdin", stdin=PASSWORD + "\n")["user"] == user


def test_matrix_in_docs_is_the_matrix_in_code() -> None:
    text = DOCS.read_text(encoding="utf-8")
    embedded = text.split("<!-- matrix:begin -->\n")[1].split("<!-- matrix:end -->")[0]
    assert embedded == matrix_markdown(), "regenerate the table in docs/access.md from matrix_markdown()"


def test_projects_roles_and_an_approval_with_totp(cli: Cli, clock: StepClock) -> None:
    root = _enrol(cli, clock)
    code, _, err = cli.run("user", "add", "carol", "--admin", "--password-stdin", stdin=PASSWORD + "\n")
    assert code == 3 and "TOTP" in err  # adding an admin is sensitive too
    totp = ["--totp", _code(root, clock)]
    cli.json("user", "add", "carol", "--admin", *totp, "--password-stdin", stdin=PASSWORD + "\n")
    cli.json("user", "add", "alice", "--password-stdin", stdin=PASSWORD + "\n")
    assert cli.json("project", "create", "fraud", "--description", "card fraud model")["name"] == "fraud"
    code, _, err = cli.run("role", "grant", "alice", "ml_engineer", "--project", "fraud")
    assert code == 3 and "TOTP" in err  # a role change without a step-up
    granted = cli.json("role", "grant", "alice", "ml_engineer", "--project", "fraud", "--totp", _code(root, clock))
    assert granted["binding"]["role"] == "ml_engineer"
    pending = cli.json("role", "grant", "alice", "approver", "--project", "fraud", "--totp", _code(root, clock))
    request = pending["approval_request"]
    assert pending["binding"] is None and request
    code, _, err = cli.run("approvals", "approve", request, "--totp", _code(root, clock))
    assert code == 3 and "nobody approves what they authored" in err
    events = cli.json("audit", "log", "--action", "approval.approve")
    assert events[-1]["outcome"] == "denied" and "nobody approves what they authored" in events[-1]["reason"]
    _login(cli, "carol")
    carol = _enrol(cli, clock)
    assert [r["id"] for r in cli.json("approvals", "list", "--project", "fraud", "--status", "pending")] == [request]
    done = cli.json("approvals", "approve", request, "--totp", _code(carol, clock), "--comment", "checked")
    assert done["status"] == "approved" and done["votes"][0]["comment"] == "checked"
    roles = {(b["user"], b["role"]) for b in cli.json("role", "list", "--project", "fraud")}
    assert roles == {("alice", "ml_engineer"), ("alice", "approver")}
    assert cli.json("role", "revoke", "alice", "approver", "--project", "fraud", "--totp", _code(carol, clock))
    code, out, _ = cli.run("approvals", "show", request)
    assert code == 0 and "approved" in out and "carol" in out
    _login(cli, "alice")
    assert [p["name"] for p in cli.json("project", "list")] == ["fraud"]
    code, _, err = cli.run("project", "create", "mine")
    assert code == 3
