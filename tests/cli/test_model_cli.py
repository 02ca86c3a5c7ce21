"""`mlwarden model` in-process: register an external model, show, verify, pull, promote --check, the
policy, and the public key that `model_signing`'s own verifier accepts our signatures with."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.test_access_cli import _code, cli, clock  # noqa: F401 - fixtures
from tests.cli.test_cli import Cli
from tests.cli.test_run_cli import engineer  # noqa: F401 - fixture
from tests.service.access_kit import StepClock


def _model_file(folder: Path) -> Path:
    import numpy as np
    import skops.io as sio
    from sklearn.linear_model import LogisticRegression

    x = np.arange(20, dtype=float).reshape(10, 2)
    path = folder / "vendor.skops"
    sio.dump(LogisticRegression().fit(x, [0] * 5 + [1] * 5), path)
    return path


def test_register_show_verify_pull_and_check(engineer: Cli, tmp_path: Path) -> None:  # noqa: F811
    made = engineer.json("model", "register", "vendor", str(_model_file(tmp_path)), "--source", "vendor.example")
    assert made["ref"] == "vendor@1" and made["external"] and made["scan"] == "clean"
    shown = engineer.json("model", "show", "vendor@1")
    assert shown["stage"] == "development" and shown["signature"]["status"] == "valid"
    assert engineer.json("model", "verify", "vendor")["ok"]
    assert [m["name"] for m in engineer.json("model", "list")] == ["vendor"]
    checked = engineer.json("model", "promote", "vendor@1", "--to", "staging", "--check")
    assert checked["ok"] and checked["approvals_needed"] == 0
    code, text, _ = engineer.run("model", "promote", "vendor@1", "--to", "production", "--check")
    assert code == 1 and "lineage" in text and "FAIL" in text  # not even in staging yet, and external
    code, _, err = engineer.run("model", "promote", "vendor@1", "--to", "production")
    assert code in (1, 3) and "error:" in err
    pulled = engineer.json("model", "pull", "vendor@1", str(tmp_path / "pulled"))
    assert Path(pulled["path"]).read_bytes() == (tmp_path / "vendor.skops").read_bytes()
    code, _, err = engineer.run("model", "show", "vendor@oops!")
    assert code == 2 and "error:" in err


def test_model_signing_verifies_a_pulled_version_with_the_workspace_public_key(engineer: Cli, tmp_path: Path) -> None:  # noqa: F811
    pytest.importorskip("model_signing")
    engineer.json("model", "register", "vendor", str(_model_file(tmp_path)))
    pulled = engineer.json("model", "pull", "vendor@1", str(tmp_path / "pulled"))
    code, pem, _ = engineer.run("model", "public-key")
    assert code == 0 and pem.startswith("-----BEGIN PUBLIC KEY-----")
    (tmp_path / "model-signing.pub").write_text(pem)
    verify = [sys.executable, "-m", "model_signing", "verify", "key", pulled["path"]]
    verify += ["--signature", pulled["signature"], "--public_key", str(tmp_path / "model-signing.pub")]
    done = subprocess.run(verify, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    Path(pulled["path"]).write_bytes(b"tampered")
    assert subprocess.run(verify, capture_output=True, text=True, timeout=120).returncode != 0


def test_policy_set_and_show(engineer: Cli, clock: StepClock, tmp_path: Path) -> None:  # noqa: F811
    from tests.cli.test_access_cli import _enrol  # the admin enrolled already: reuse its secret

    del _enrol
    policy = tmp_path / "promotion.toml"
    policy.write_text("[production]\napprovals = 2\n")
    code, _, err = engineer.run("model", "policy", "--set", str(policy))
    assert code == 3 and "TOTP" in err
    shown = engineer.json("model", "policy")
    assert shown["stages"]["production"]["approvals"] == 1 and shown["stages"]["staging"]["approvals"] == 0
