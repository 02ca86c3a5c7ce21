"""`mlwarden allowlist` and `mlwarden scan` inside a workspace: the workspace's additions apply there."""

from __future__ import annotations

from pathlib import Path

from tests.cli.test_access_cli import _code, _enrol, cli, clock  # noqa: F401 - fixtures
from tests.cli.test_cli import Cli
from tests.service.access_kit import StepClock
from tests.service.test_scans import CUSTOM


def test_allowlist_and_scan(cli: Cli, clock: StepClock, tmp_path: Path) -> None:  # noqa: F811
    model = tmp_path / "model.pkl"
    model.write_bytes(CUSTOM)
    assert cli.json("scan", str(model), expect=1)["verdict"] == "unsafe"
    secret = _enrol(cli, clock)
    code, _, err = cli.run("allowlist", "add", "mypkg.layers:Custom", "--reason", "ours")
    assert code == 3 and "step-up" in err
    added = cli.json("allowlist", "add", "mypkg.layers:Custom", "--reason", "ours", "--totp", _code(secret, clock))
    assert added["name"] == "mypkg.layers:Custom" and added["role"] == "call"
    assert [e["name"] for e in cli.json("allowlist", "list")] == ["mypkg.layers:Custom"]
    assert cli.json("scan", str(model))["verdict"] == "clean"
    assert cli.json("scan", "--builtin", str(model), expect=1)["verdict"] == "unsafe"
    cli.json("allowlist", "remove", "mypkg.layers:Custom")
    assert cli.json("scan", str(model), expect=1)["verdict"] == "unsafe"
