"""The ingestion gate on the command line: verdicts, exit codes, contracts, policies, profiles, dry runs."""

from __future__ import annotations

from pathlib import Path

from tests.cli.test_access_cli import cli, clock  # noqa: F401 - fixtures
from tests.cli.test_cli import Cli
from tests.cli.test_data_cli import steward  # noqa: F401 - fixture
from tests.service.data_kit import frame


def test_infer_set_show_a_contract_and_a_rejection_exits_1(steward: Cli, tmp_path: Path) -> None:  # noqa: F811
    steward.json("data", "add", "tx", str(tmp_path / "a.csv"), "--source", "vendor-a", "--label-column", "label")
    code, yaml_text, _ = steward.run("validate", "--infer", "tx@1")
    assert code == 0 and "label:" in yaml_text and "merchant:" in yaml_text
    (tmp_path / "contract.yaml").write_text(yaml_text, encoding="utf-8")
    assert steward.json("data", "contract", "tx", str(tmp_path / "contract.yaml"))["digest"].startswith("sha256:")
    assert steward.json("data", "contract", "tx")["document"]["label"]["classes"] == [0, 1]
    frame(12, start=100).assign(label=3).to_csv(tmp_path / "bad.csv", index=False)
    code, out, err = steward.run("data", "add", "tx", str(tmp_path / "bad.csv"), "--source", "x")
    assert code == 1 and out == "" and "rejected" in err and "label" in err
    gate = steward.json("data", "gate", "tx")
    assert gate["verdict"] == "accepted" and gate["recent_rejections"][0]["verdict"] == "rejected"
    code, text, _ = steward.run("data", "gate", "tx")
    assert code == 0 and "rejected" in text and "label.label_classes" in text
    assert steward.json("data", "contract", "tx", "--clear")["document"] is None


def test_a_quarantined_batch_exits_1_and_names_its_request(steward: Cli, tmp_path: Path) -> None:  # noqa: F811
    frame(2000).to_csv(tmp_path / "big.csv", index=False)
    frame(2000, seed=4, start=2000).assign(amount=lambda f: f["amount"] * 2).to_csv(tmp_path / "moved.csv", index=False)
    steward.json("data", "add", "tx", str(tmp_path / "big.csv"), "--source", "vendor-a")
    code, out, _ = steward.run("data", "add", "tx", str(tmp_path / "moved.csv"), "--source", "vendor-b")
    assert code == 1 and "quarantined" in out and "approvals approve apr_" in out
    assert steward.json("data", "gate", "tx")["verdict"] == "quarantined"
    assert steward.json("data", "gate", "tx@1")["verdict"] == "accepted"
    code, out, _ = steward.run("data", "add", "tx", str(tmp_path / "moved.csv"), "--source", "vendor-b", "--json")
    assert code == 1 and '"verdict": "quarantined"' in out


def test_validate_is_a_dry_run_and_policy_and_profile_work(steward: Cli, tmp_path: Path) -> None:  # noqa: F811
    steward.json("data", "add", "tx", str(tmp_path / "a.csv"), "--source", "vendor-a")
    result = steward.json("validate", str(tmp_path / "b.parquet"), "--against", "tx@1")
    assert result["verdict"] == "accepted" and result["dry_run"] and result["rows"] == 10
    (tmp_path / "strict.yaml").write_text("columns:\n  amount: {max: 1}\n", encoding="utf-8")
    code, out, _ = steward.run(
        "validate", str(tmp_path / "b.parquet"), "--against", "tx@1", "--contract", str(tmp_path / "strict.yaml")
    )
    assert code == 1 and "rejected" in out and "amount.max" in out
    assert [v["version"] for v in steward.json("data", "versions", "tx")] == [1]
    (tmp_path / "policy.toml").write_text('[drift]\nalpha = 0.05\ncorrection = "bh"\n', encoding="utf-8")
    steward.json("data", "policy", "tx", str(tmp_path / "policy.toml"))
    assert steward.json("data", "policy", "tx")["document"]["drift"]["correction"] == "bh"
    (tmp_path / "bad.toml").write_text('[drift]\nalpha = "high"\n', encoding="utf-8")
    code, _, err = steward.run("data", "policy", "tx", str(tmp_path / "bad.toml"))
    assert code == 2 and "alpha" in err
    summary = steward.json("data", "profile", "tx")
    assert {c["name"] for c in summary["columns"]} >= {"id", "amount", "merchant"}
    code, _, _ = steward.run("data", "profile", "tx", "--html", str(tmp_path / "p.html"))
    assert code == 0 and "<table" in (tmp_path / "p.html").read_text(encoding="utf-8")
    code, _, err = steward.run("validate", str(tmp_path / "b.parquet"))
    assert code == 2 and "--against" in err
