"""The root app loads only the command group it runs."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from mlwarden.cli.app import COMMANDS, GROUPS, build_app, command_name


@pytest.mark.parametrize(
    ("args", "name"),
    [
        (["data", "add", "x"], "data"),
        (["-w", "/tmp/ws", "data", "list"], "data"),
        (["--workspace", "ws", "whoami"], "whoami"),
        (["--help"], None),
        ([], None),
    ],
)
def test_the_command_name_skips_root_options(args: list[str], name: str | None) -> None:
    assert command_name(args) == name


def test_the_full_app_has_every_command_and_group() -> None:
    import typer.main

    command = typer.main.get_command(build_app())
    assert set(command.commands) == set(COMMANDS) | set(GROUPS)  # type: ignore[attr-defined]


def test_running_a_group_imports_no_other_group() -> None:
    script = textwrap.dedent(
        """
        import sys
        from mlwarden.cli.app import app_for
        app_for(["-w", "x", "data", "add", "d", "f"])
        data = {"mlwarden.cli.data_cmds", "mlwarden.cli.gate_cmds"}  # `data gate`, `data profile`... live in gate_cmds
        others = sorted(m for m in sys.modules if m.endswith("_cmds") and m not in data)
        assert not others, others
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
