"""`mlwarden mfa ...` in-process: enroll (QR code and URI), verify, step-up, status, disable; --json;
exit codes; and no secret or code in any output after the one enrollment that shows the secret."""

from __future__ import annotations

import json
from pathlib import Path

import pyotp
import pytest

from mlwarden.service.mfa import Enrollment
from tests.cli.test_cli import PASSWORD, Cli
from tests.service.test_mfa import Clock, assert_nothing_in_clear, code, secret_forms, wrong_code


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """The CLI's services read the time through mlwarden.service.mfa.now: made controllable here."""
    fake = Clock()
    monkeypatch.setattr("mlwarden.service.mfa.now", fake)
    return fake


@pytest.fixture
def cli(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, db_url: str | None) -> Cli:
    runner = Cli(capsys, monkeypatch, tmp_path / "ws")
    db = ["--db", db_url] if db_url else []
    code_, _, err = runner.run(
        "init", str(runner.root), *db, "--admin", "root", "--password-stdin", stdin=PASSWORD + "\n"
    )
    assert code_ == 0, err
    return runner


def _enrollment(doc: dict[str, object]) -> Enrollment:
    fields = {k: doc[k] for k in ("user", "account", "issuer", "algorithm", "digits", "period", "replaced")}
    return Enrollment(**fields, uri=str(doc["uri"]), secret=str(doc["secret"]))  # type: ignore[arg-type]


def test_enroll_prints_a_qr_code_and_the_uri_once(cli: Cli, clock: Clock) -> None:
    rc, out, err = cli.run("mfa", "enroll")
    assert rc == 0, err
    uri = next(word for word in out.split() if word.startswith("otpauth://totp/mlwarden:root%40"))
    secret = pyotp.parse_uri(uri).secret
    assert "\u2580" in out or "\u2584" in out or "\u2588" in out  # the QR code's half blocks
    assert out.count(secret) == 2  # in the URI and spelled out, in this one output only
    assert "mfa verify" in out
    status = cli.json("mfa", "status")
    assert (status["user"], status["enrolled"], status["confirmed"]) == ("root", True, False)


def test_the_mfa_commands_end_to_end(cli: Cli, clock: Clock) -> None:
    doc = cli.json("mfa", "enroll")
    assert doc["uri"].startswith("otpauth://totp/") and len(doc["secret"]) == 32
    enrollment = _enrollment(doc)
    outputs: list[str] = []
    codes: list[str] = []

    def run(*args: str, expect: int = 0) -> str:
        rc, out, err = cli.run(*args)
        assert rc == expect, err
        outputs.extend([out, err])
        return out

    codes.append(code(enrollment, clock.now))
    verified = json.loads(run("mfa", "verify", codes[-1], "--json"))
    assert verified == {"verified": True, "user": "root", "confirmed": True}
    assert "not accepted" in run("mfa", "verify", codes[-1], expect=3) + outputs[-1]  # a replay: exit 3
    assert "exactly 6 digits" in run("mfa", "verify", "12ab56", expect=2) + outputs[-1]

    clock.advance(30)
    codes.append(code(enrollment, clock.now))
    grant = json.loads(run("mfa", "step-up", codes[-1], "--action", "role.grant", "--resource", "k", "--json"))
    assert grant["action"] == "role.grant" and grant["resource_key"] == "k" and grant["id"].startswith("stp_")
    assert json.loads(run("mfa", "status", "--json"))["step_ups_open"] == 1
    assert "confirmed" in run("mfa", "status")

    codes.append(wrong_code(enrollment, clock.now))
    run("mfa", "verify", codes[-1], expect=3)
    assert "needs a current code" in run("mfa", "disable", expect=3) + outputs[-1]
    clock.advance(30)
    codes.append(code(enrollment, clock.now))
    assert json.loads(run("mfa", "disable", "--code", codes[-1], "--json")) == {"user": "root", "disabled": True}
    assert "not enrolled" in run("mfa", "status")
    outputs.append(run("audit", "log", "--json"))

    assert_nothing_in_clear([o.encode() for o in outputs], secret_forms(enrollment), codes)


def test_other_users_factors_are_for_admins_to_see_and_reset(
    cli: Cli, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli.json("user", "add", "alice")
    token = cli.json("token", "create", "--user", "alice")["token"]
    monkeypatch.setenv("MLWARDEN_TOKEN", token)
    enrollment = _enrollment(cli.json("mfa", "enroll"))
    cli.json("mfa", "verify", code(enrollment, clock.now))
    assert cli.json("mfa", "status", "--user", "root", expect=3)["error"]["type"] == "PermissionDenied"
    assert cli.json("mfa", "disable", "--user", "root", expect=3)["error"]["type"] == "PermissionDenied"
    monkeypatch.delenv("MLWARDEN_TOKEN")

    assert cli.json("mfa", "status", "--user", "alice")["confirmed"] is True
    assert cli.json("mfa", "disable", "--user", "alice", expect=3)["error"]["type"] == "PermissionDenied"
    root = _enrollment(cli.json("mfa", "enroll"))
    cli.json("mfa", "verify", code(root, clock.now))
    clock.advance(30)
    reset = cli.json("mfa", "disable", "--user", "alice", "--code", code(root, clock.now))
    assert reset == {"user": "alice", "disabled": True}
    rc, out, _ = cli.run("mfa", "status", "--user", "alice")
    assert rc == 0 and "alice: not enrolled" in out
    events = cli.json("audit", "log", "--action", "mfa.disable")
    assert events[-1]["actor"] == "root" and events[-1]["details"]["reset_by_admin"] is True


def test_step_up_with_an_unknown_action_is_a_usage_error(cli: Cli, clock: Clock) -> None:
    enrollment = _enrollment(cli.json("mfa", "enroll"))
    cli.json("mfa", "verify", code(enrollment, clock.now))
    clock.advance(30)
    doc = cli.json("mfa", "step-up", code(enrollment, clock.now), "--action", "nope", "--resource", "k", expect=2)
    assert "unknown action" in doc["error"]["message"]
