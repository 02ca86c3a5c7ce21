"""`mlwarden data` in-process: JSON output, exit codes, progress kept off stdout, a tampered blob exiting 1."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.cli.test_access_cli import _code, _enrol, cli, clock  # noqa: F401 - fixtures
from tests.cli.test_cli import Cli
from tests.service.access_kit import StepClock
from tests.service.data_kit import frame


@pytest.fixture
def steward(cli: Cli, clock: StepClock, tmp_path: Path) -> Cli:  # noqa: F811
    """The CLI's admin ("root") as data steward of project "fraud", which is the default project."""
    secret = _enrol(cli, clock)
    cli.json("project", "create", "fraud")
    cli.json("role", "grant", "root", "data_steward", "--project", "fraud", "--totp", _code(secret, clock))
    config = cli.root / ".mlwarden" / "config.toml"
    config.write_text(config.read_text().replace('default_project = ""', 'default_project = "fraud"'))
    frame(40).to_csv(tmp_path / "a.csv", index=False)
    frame(10, start=40, seed=2).to_parquet(tmp_path / "b.parquet")
    return cli


def test_add_show_versions_list(steward: Cli, tmp_path: Path) -> None:
    first = steward.json(
        "data", "add", "tx", str(tmp_path / "a.csv"), "--source", "vendor-a", "--label-column", "label"
    )
    assert first["status"] == "applied" and first["version"]["version"] == 1 and first["ingestion"]["rows"] == 40
    second = steward.json("data", "add", "tx", str(tmp_path / "b.parquet"), "--source", "vendor-b", "--note", "drop 2")
    assert second["version"]["rows"] == 50
    shown = steward.json("data", "show", "tx")
    assert [i["source"] for i in shown["ingestions"]] == ["vendor-a", "vendor-b"]
    assert [v["version"] for v in steward.json("data", "versions", "tx")] == [1, 2]
    assert steward.json("data", "list")[0]["latest"]["digest"] == second["digest"]
    assert steward.json("data", "show", second["digest"])["version"]["version"] == 2
    code, out, _ = steward.run("data", "show", "tx@1")
    assert code == 0 and "tx@1" in out and "vendor-a" in out


def test_diff_blame_lineage_revert_export_verify(steward: Cli, tmp_path: Path) -> None:
    steward.json("data", "add", "tx", str(tmp_path / "a.csv"), "--source", "vendor-a")
    steward.json("data", "add", "tx", str(tmp_path / "b.parquet"), "--source", "vendor-b")
    diff = steward.json("data", "diff", "tx@1", "tx@2", "--rows", "--limit", "3")
    assert diff["added"] == 10 and len(diff["added_rows"]) == 3 and diff["by_source"][0]["source"] == "vendor-b"
    blame = steward.json("data", "blame", "tx", "--where", "id >= 45")
    assert blame["matched"] == 5 and {r["source"] for r in blame["rows"]} == {"vendor-b"}
    digest = blame["rows"][0]["row_digest"]
    assert steward.json("data", "blame", "tx", "--row-digest", digest)["matched"] == 1
    assert [s["source"] for s in steward.json("data", "lineage", "tx")["sources"]] == ["vendor-a", "vendor-b"]
    reverted = steward.json("data", "revert", "tx", "--source", "vendor-b", "--note", "poisoned")
    assert reverted["version"]["undid"]["rows_removed"] == 10
    out = tmp_path / "clean.parquet"
    assert steward.json("data", "export", "tx", str(out))["rows"] == 40 and out.exists()
    assert steward.json("data", "verify")["ok"] is True
    code, text, _ = steward.run("data", "diff", "tx@2", "tx@3", "--rows")
    assert code == 0 and "vendor-b" in text


def test_exit_codes(steward: Cli, tmp_path: Path) -> None:
    (tmp_path / "bad.csv").write_bytes(b"id,amount\n1,2,3\n")
    code, out, err = steward.run("data", "add", "tx", str(tmp_path / "bad.csv"), "--source", "x")
    assert code == 2 and out == "" and "error:" in err and "hint:" in err
    steward.json("data", "add", "tx", str(tmp_path / "a.csv"), "--source", "vendor-a")
    frame(3).drop(columns="label").to_csv(tmp_path / "narrow.csv", index=False)
    code, _, err = steward.run("data", "add", "tx", str(tmp_path / "narrow.csv"), "--source", "x")
    assert code == 1 and "rejected" in err and "missing column" in err  # the ingestion gate's verdict
    code, _, err = steward.run("data", "blame", "tx", "--where", "no_such_column > 1", "--json")
    assert code == 2
    code, out, _ = steward.run("data", "show", "nope", "--json")
    assert code == 2 and '"error"' in out
    code, _, _ = steward.run("data", "revert", "tx")
    assert code == 2


def test_progress_never_reaches_stdout_in_json_mode(steward: Cli, tmp_path: Path) -> None:
    code, out, err = steward.run("data", "add", "tx", str(tmp_path / "a.csv"), "--source", "a", "--json")
    assert code == 0 and out.lstrip().startswith("{") and "reading" not in out


def test_verify_exits_1_on_a_tampered_segment(steward: Cli, tmp_path: Path) -> None:
    added = steward.json("data", "add", "tx", str(tmp_path / "a.csv"), "--source", "a")
    hex_ = added["ingestion"]["segment"].removeprefix("sha256:")
    path = steward.root / ".mlwarden" / "blobs" / "sha256" / hex_[:2] / hex_[2:]
    os.chmod(path, 0o644)
    path.write_bytes(path.read_bytes()[:-10])
    report = steward.json("data", "verify", expect=1)
    assert report["ok"] is False and "modified" in report["problems"][0]["problem"]
    code, out, _ = steward.run("data", "verify")
    assert code == 1 and "FAILED" in out
