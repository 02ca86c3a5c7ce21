"""`mlwarden run` in-process: list, show, compare."""

from __future__ import annotations

import pytest

from tests.cli.test_access_cli import _code, _enrol, cli, clock  # noqa: F401 - fixtures
from tests.cli.test_cli import Cli
from tests.service.access_kit import StepClock


@pytest.fixture
def engineer(cli: Cli, clock: StepClock) -> Cli:  # noqa: F811
    """The CLI's admin ("root") as ml_engineer of project "fraud", the default project."""
    secret = _enrol(cli, clock)
    cli.json("project", "create", "fraud")
    cli.json("role", "grant", "root", "ml_engineer", "--project", "fraud", "--totp", _code(secret, clock))
    config = cli.root / ".mlwarden" / "config.toml"
    config.write_text(config.read_text().replace('default_project = ""', 'default_project = "fraud"'))
    return cli


def test_run_list_show_compare(engineer: Cli) -> None:
    from mlwarden.service.workspace import open_workspace

    token = engineer.json("token", "create", "--name", "sdk")["token"]
    with open_workspace(engineer.root, token=token) as ws:
        ids = []
        for lr in (0.1, 0.2):
            with ws.start_run("fraud", f"lr-{lr}") as run:
                run.log_param("lr", lr)
                run.log_metric("accuracy", 0.8 + lr)
            ids.append(run.id)
    listed = engineer.json("run", "list")
    assert [r["name"] for r in listed] == ["lr-0.1", "lr-0.2"] and {r["status"] for r in listed} == {"finished"}
    assert engineer.json("run", "show", ids[0])["params"] == {"lr": "0.1"}
    compared = engineer.json("run", "compare", ids[0], ids[1])
    assert compared["params"] == {"lr": ["0.1", "0.2"]}
    code, text, _ = engineer.run("run", "show", ids[1])
    assert code == 0 and "accuracy" in text and "code:" in text
    code, _, err = engineer.run("run", "show", "run_nope")
    assert code in (2, 3) and "error:" in err
