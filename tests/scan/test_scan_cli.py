"""`mlwarden scan` in-process: exit codes, one JSON document, SARIF 2.1.0, folders, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlwarden.cli import main
from tests.scan import craft as c

EVIL = c.call("os", "system", c.s("id"))
BENIGN = c.PROTO4 + c.EMPTY_DICT + c.STOP


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["scan", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_clean_file_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "ok.pkl").write_bytes(BENIGN)
    code, out, _ = run(capsys, str(tmp_path / "ok.pkl"))
    assert code == 0 and "CLEAN" in out


def test_malicious_file_exits_1_with_one_json_document(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "ok.pkl").write_bytes(BENIGN)
    (tmp_path / "evil.pkl").write_bytes(EVIL)
    code, out, _ = run(capsys, str(tmp_path / "ok.pkl"), str(tmp_path / "evil.pkl"), "--json")
    assert code == 1
    document = json.loads(out)
    assert document["verdict"] == "malicious" and document["clean"] is False
    evil = next(f for f in document["files"] if f["path"].endswith("evil.pkl"))
    assert evil["globals"] == ["os.system"]
    assert evil["findings"][0]["chain"] == "os.system('id')"


def test_human_output_escapes_hostile_names(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "evil.pkl").write_bytes(c.call("os\x1b[2J", "system\nFAKE LINE", c.s("x")))
    code, out, _ = run(capsys, str(tmp_path / "evil.pkl"))
    assert code == 1 and "\x1b[2J" not in out and "\\x1b" in out


def test_sarif_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "evil.pkl").write_bytes(EVIL)
    (tmp_path / "text.txt").write_bytes(b"just text\n")
    sarif = tmp_path / "out.sarif"
    code, _, _ = run(capsys, str(tmp_path / "evil.pkl"), str(tmp_path / "text.txt"), "--sarif", str(sarif))
    assert code == 1
    log = json.loads(sarif.read_text())
    assert log["version"] == "2.1.0" and log["$schema"].endswith("sarif-2.1.0.json")
    (run_,) = log["runs"]
    rules = [r["id"] for r in run_["tool"]["driver"]["rules"]]
    assert {"denied-global", "not-a-model"} <= set(rules)
    for result in run_["results"]:
        assert rules[result["ruleIndex"]] == result["ruleId"]
        assert result["level"] in {"error", "warning", "note"}
        assert result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"].startswith("file://")


def test_folder_skips_non_models(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "weights.pkl").write_bytes(BENIGN)
    (tmp_path / "model" / "README.md").write_text("# a model\n")
    code, out, _ = run(capsys, str(tmp_path / "model"), "--json")
    document = json.loads(out)
    assert code == 0 and len(document["files"]) == 1 and len(document["skipped"]) == 1
    (tmp_path / "model" / "config.json").write_bytes(EVIL)  # a pickle by any other name
    assert run(capsys, str(tmp_path / "model"))[0] == 1


def test_not_a_model_named_directly_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "image.pt").write_bytes(b"\x89PNG\r\n\x1a\n")
    code, out, _ = run(capsys, str(tmp_path / "image.pt"), "--json")
    assert code == 1 and json.loads(out)["verdict"] == "not-a-model"


def test_allow_option_extends_the_allow_list(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "custom.pkl").write_bytes(c.call("mypkg.layers", "Custom"))
    assert run(capsys, str(tmp_path / "custom.pkl"))[0] == 1
    assert run(capsys, str(tmp_path / "custom.pkl"), "--allow", "mypkg.layers:Custom")[0] == 0
    code, _, err = run(capsys, str(tmp_path / "custom.pkl"), "--allow", "nodots")
    assert code == 2 and "module:name" in err


def test_missing_file_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, str(tmp_path / "nope.pkl"), "--json")
    assert code == 2 and json.loads(out)["error"]["type"] == "OSError"
