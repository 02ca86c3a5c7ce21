"""`mlwarden defend` in-process: forensics names the poisoned source and exits 1; scan lists rows."""

from __future__ import annotations

from pathlib import Path

from tests.cli.test_access_cli import _code, _enrol, cli, clock  # noqa: F401 - fixtures
from tests.cli.test_cli import Cli
from tests.service.access_kit import StepClock
from tests.service.test_defense import batch


def test_defend_forensics_and_scan(cli: Cli, clock: StepClock, tmp_path: Path) -> None:  # noqa: F811
    secret = _enrol(cli, clock)
    cli.json("project", "create", "fraud")
    cli.json("role", "grant", "root", "data_steward", "--project", "fraud", "--totp", _code(secret, clock))
    data = batch(900, seed=4)
    data.loc[600:, "label"] = 1 - data.loc[600:, "label"]  # vendor-c flips every label it sends
    for name, part in (("vendor-a", data[:300]), ("vendor-b", data[300:600]), ("vendor-c", data[600:])):
        part.to_csv(tmp_path / f"{name}.csv", index=False)
        args = ["data", "add", "pts", str(tmp_path / f"{name}.csv"), "--project", "fraud", "--source", name]
        cli.run(*args, *(["--label-column", "label"] if name == "vendor-a" else []))
    code, text, _ = cli.run("defend", "forensics", "pts@3", "--project", "fraud")
    assert code == 1 and "SUSPECTED" in text and "--source vendor-c" in text
    found = cli.json("defend", "scan", "pts@2", "--project", "fraud", "--limit", "5")
    assert found["suspected_sources"] == [] and len(found["rows"]) <= 5
    code, _, err = cli.run("defend", "forensics", "pts@3", "--project", "fraud", "--by", "mood")
    assert code == 2 and "--by" in err
