"""The CLI in-process: every command, --json documents, exit codes, errors, and escaping of hostile input."""

from __future__ import annotations

import io
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from mlwarden.cli import main
from mlwarden.cli.credentials import credentials_path

PASSWORD = "a-password-for-cli-tests"


class Cli:
    def __init__(self, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, root: Path) -> None:
        self.capsys = capsys
        self.monkeypatch = monkeypatch
        self.root = root

    def run(self, *args: str, stdin: str | None = None) -> tuple[int, str, str]:
        if stdin is not None:
            self.monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        code = main(["--workspace", str(self.root), *args])
        out, err = self.capsys.readouterr()
        return code, out, err

    def json(self, *args: str, stdin: str | None = None, expect: int = 0) -> Any:
        code, out, err = self.run(*args, "--json", stdin=stdin)
        assert code == expect, err
        return json.loads(out)


@pytest.fixture
def cli(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, db_url: str | None) -> Cli:
    runner = Cli(capsys, monkeypatch, tmp_path / "ws")
    db = ["--db", db_url] if db_url else []
    code, out, err = runner.run(
        "init", str(runner.root), *db, "--admin", "root", "--password-stdin", stdin=PASSWORD + "\n"
    )
    assert code == 0, err
    assert "mlw_" in out
    return runner


def test_init_prints_token_once_and_logs_in(cli: Cli) -> None:
    me = cli.json("whoami")
    assert me["user"] == "root" and me["admin"] is True
    assert stat.S_IMODE(credentials_path().stat().st_mode) == 0o600
    key = cli.root / ".mlwarden" / "keys" / "checkpoint.pem"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    token = credentials_path().read_text().split('token = "')[1].split('"')[0]
    for path in (cli.root / ".mlwarden").rglob("*"):
        if path.is_file() and path.suffix != ".db":
            assert token not in path.read_text(errors="replace")  # never stored in the workspace


def test_init_json_and_refuses_existing(tmp_path: Path, cli: Cli) -> None:
    doc = cli.json("init", str(tmp_path / "other"))
    assert doc["token"].startswith("mlw_") and doc["checkpoint_vkey"].startswith("mlwarden.local/")
    code, _, err = cli.run("init", str(cli.root))
    assert code == 2 and "already an mlwarden workspace" in err


def test_workspace_is_found_by_walking_up(cli: Cli, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    deep = cli.root / "a" / "b"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    assert main(["whoami", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["user"] == "root"
    monkeypatch.chdir(cli.root.parent)
    assert main(["whoami"]) == 2
    assert "no mlwarden workspace" in capsys.readouterr().err
    monkeypatch.setenv("MLWARDEN_WORKSPACE", str(cli.root))
    assert main(["whoami", "--json"]) == 0


def test_users_tokens_login_logout(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    assert cli.json("user", "add", "dana", "--password-stdin", stdin=PASSWORD + "\n")["name"] == "dana"
    assert [u["name"] for u in cli.json("user", "list")] == ["dana", "root"]
    token = cli.json("token", "create", "--user", "dana", "--name", "ci", "--expires-in", "2d")
    assert token["token"].startswith("mlw_") and token["expires_at"]
    listed = cli.json("token", "list", "--user", "dana")
    assert [t["id"] for t in listed] == [token["id"]] and "token" not in listed[0] and "secret_hash" not in listed[0]
    # dana logs in with her password; the stored credentials now act as dana
    assert cli.json("login", "--user", "dana", "--password-stdin", stdin=PASSWORD + "\n")["user"] == "dana"
    assert cli.json("whoami")["user"] == "dana"
    code, _, err = cli.run("user", "add", "eve")
    assert code == 3 and "needs a workspace admin" in err
    assert cli.json("logout")["user"] == "dana"
    code, _, err = cli.run("user", "list")
    assert code == 3
    # the admin comes back with a token from stdin, then revokes dana's CI token and disables her
    assert cli.json("login", "--user", "root", "--password-stdin", stdin=PASSWORD + "\n")["user"] == "root"
    assert cli.json("token", "revoke", token["id"])["revoked_at"]
    assert cli.json("user", "disable", "dana")["disabled"] is True
    monkeypatch.setenv("MLWARDEN_TOKEN", token["token"])
    code, _, err = cli.run("whoami")
    assert code == 3 and "revoked" in err


def test_wrong_password_is_audited_and_exits_3(cli: Cli) -> None:
    code, _, err = cli.run("login", "--user", "root", "--password-stdin", stdin="wrong-password-xx\n")
    assert code == 3 and "wrong user name or password" in err
    events = cli.json("audit", "log", "--action", "auth.login")
    assert events[-1]["outcome"] == "denied" and events[-1]["actor"] == "root"


def test_login_with_token_from_stdin(cli: Cli) -> None:
    token = cli.json("token", "create", "--name", "other")["token"]
    assert cli.json("login", "--token-stdin", stdin=token + "\n")["user"] == "root"
    code, _, err = cli.run("login", "--token-stdin", stdin="mlw_000000000000_" + "A" * 43 + "\n")
    assert code == 3


def test_audit_commands(cli: Cli, tmp_path: Path) -> None:
    cli.json("user", "add", "fay")
    events = cli.json("audit", "log", "--actor", "root", "--action", "user.add")
    assert [(e["action"], e["resource_id"]) for e in events] == [("user.add", "fay")]
    assert cli.json("audit", "log", "--resource", "user:fay")[0]["actor"] == "root"
    assert cli.json("audit", "log", "--since", "2000-01-01", "--until", "2000-01-02") == []
    code, _, err = cli.run("audit", "log", "--since", "yesterday")
    assert code == 2 and "ISO 8601" in err
    report = cli.json("audit", "verify")
    assert report["ok"] is True and report["size"] > 5 and report["first_bad_seq"] is None
    proof = cli.json("audit", "prove", "2")
    assert proof["verified"] is True and proof["checkpoint"]
    assert cli.json("audit", "prove", "100000", expect=2)["error"]["type"] == "NotFound"
    exported = cli.json("audit", "checkpoint", "--export", str(tmp_path / "w"))
    assert (tmp_path / "w" / "vkey").is_file() and exported["size"] > 0
    assert cli.json("audit", "witness", str(tmp_path / "w"))["ok"] is True
    code, out, _ = cli.run("audit", "verify")
    assert code == 0 and "OK: audit log" in out


def test_store_and_db_commands(cli: Cli) -> None:
    assert cli.json("store", "verify")["checked"] == 0
    status = cli.json("db", "status")
    assert status["up_to_date"] is True
    assert cli.json("db", "upgrade")["revision"] == status["head"]


def test_store_verify_reports_a_tampered_blob(cli: Cli) -> None:
    from mlwarden.service.workspace import open_workspace

    token = cli.json("token", "create")["token"]
    with open_workspace(cli.root, token=token) as ws:
        digest = ws._ctx.blobs.put_bytes(b"model weights")
        path = ws._ctx.blobs.path_of(digest)
    os.chmod(path, 0o644)
    path.write_bytes(b"model weightz")
    report = cli.json("store", "verify", expect=1)
    assert report["bad"][0]["digest"]["hex"] == digest.hex


def test_usage_errors_exit_2_with_one_line_and_hint(cli: Cli) -> None:
    code, out, err = cli.run("user", "add", "Not A Name")
    assert code == 2 and out == "" and "invalid user name" in err and "hint:" in err
    code, _, err = cli.run("token", "create", "--expires-in", "forever")
    assert code == 2 and "invalid duration" in err
    code, _, err = cli.run("no-such-command")
    assert code == 2
    doc = cli.json("user", "disable", "nobody", expect=2)
    assert doc["error"]["type"] == "NotFound" and doc["error"]["hint"]


def test_hostile_input_is_stored_faithfully_but_shown_escaped(cli: Cli) -> None:
    evil = "x\r\n2026-01-01 root user.add ok\x1b[2J\x1b]0;pwned\x07\u202eevil"
    huge = evil + "y" * 100_000
    code, _, _ = cli.run("login", "--user", huge, "--password-stdin", stdin="not-the-password\n")
    assert code == 3
    code, out, _ = cli.run("audit", "log", "--action", "auth.login")
    assert code == 0
    assert "\x1b" not in out and "\r" not in out and "\u202e" not in out and "\x07" not in out
    assert "\\x1b[2J" in out and "\\r\\n" in out and "chars]" in out
    assert len(out) < 5_000  # bounded on screen
    events = cli.json("audit", "log", "--action", "auth.login")
    assert events[-1]["actor"] == huge  # stored and exported faithfully
    assert cli.json("audit", "verify")["ok"] is True


def test_an_oversized_attempt_is_still_audited(cli: Cli) -> None:
    giant = "g" * (2 << 20)  # 2 MiB of user name: more than one event may hold
    code, _, err = cli.run("login", "--user", giant, "--password-stdin", stdin="not-the-password\n")
    assert code == 3, err
    event = cli.json("audit", "log", "--action", "auth.login")[-1]
    assert event["outcome"] == "denied" and event["actor"].startswith("g" * 1000)
    assert event["actor"].endswith("chars not stored]")


def test_audit_log_json_is_the_hashed_event_and_pages(cli: Cli) -> None:
    import hashlib

    events = cli.json("audit", "log", "--limit", "3")
    assert [e["seq"] for e in events] == [0, 1, 2]
    first = dict(events[0])
    leaf = first.pop("leaf_hash")
    body = json.dumps(first, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    assert hashlib.sha256(b"\x00" + body).hexdigest() == leaf  # anyone can recompute the leaf
    assert {"v", "auth", "credential"} <= set(first)
    page = cli.json("audit", "log", "--from-seq", "2", "--limit", "2")
    assert [e["seq"] for e in page] == [2, 3]


def test_whoami_and_logout_without_login(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    credentials_path().unlink()
    code, _, err = cli.run("whoami")
    assert code == 3 and "not logged in" in err
    assert cli.json("whoami", expect=3)["error"]["type"] == "AuthenticationError"
    code, _, err = cli.run("logout")
    assert code == 2 and "no stored login" in err


def test_unwritable_export_folder_is_a_clean_error(cli: Cli, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    code, out, err = cli.run("audit", "checkpoint", "--export", str(blocker / "witness"))
    assert code == 2 and "Traceback" not in err and str(blocker) in err


def test_prove_says_whether_the_root_is_signed(cli: Cli) -> None:
    signed = cli.json("audit", "prove", "1")
    assert signed["signed"] is True and signed["checkpoint"]
    size = cli.json("audit", "verify")["size"]
    unsigned = cli.json("audit", "prove", str(size - 1))  # appended after the newest checkpoint
    assert unsigned["signed"] is False and unsigned["verified"] is True


def test_own_password_change_needs_the_current_password(cli: Cli) -> None:
    cli.json("user", "add", "gil", "--password-stdin", stdin=PASSWORD + "\n")
    assert cli.json("login", "--user", "gil", "--password-stdin", stdin=PASSWORD + "\n")["user"] == "gil"
    code, _, err = cli.run("user", "passwd", "gil", "--password-stdin", stdin="wrong-current-pw\nnew-password-123\n")
    assert code == 3 and "current password" in err
    new = "new-password-123"
    assert cli.json("user", "passwd", "gil", "--password-stdin", stdin=f"{PASSWORD}\n{new}\n")["password_set"]
    assert cli.json("login", "--user", "gil", "--password-stdin", stdin=new + "\n")["user"] == "gil"
    # the login it replaced was revoked, not left valid in the background
    logins = [t for t in cli.json("token", "list") if t["name"] == "cli-login"]
    assert [t["active"] for t in logins] == [False, True]


def test_logout_forgets_a_login_that_no_longer_works(cli: Cli) -> None:
    stored = cli.json("whoami")["token_id"]
    cli.json("token", "revoke", stored)
    doc = cli.json("logout")
    assert doc["forgotten"] is True and doc["user"] is None
    code, _, _ = cli.run("login", "--token-stdin", "--expires-in", "1d", stdin="x\n")
    assert code == 2
