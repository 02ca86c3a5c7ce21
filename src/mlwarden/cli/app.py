"""The root command and its command groups (errors become exit codes in `mlwarden.cli.entry`).

Each command and group lives in its own module, imported only when it runs: `mlwarden data add`
loads the data commands and not the access, scan or MFA ones (tens of milliseconds of every command).
`mlwarden --help`, and anything that names no known command, builds the whole tree.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import import_module
from typing import Annotated, Any

import typer

from mlwarden.cli.common import GLOBALS

# name -> (module in mlwarden.cli, attribute): a command function or a Typer group
COMMANDS: dict[str, tuple[str, str]] = {
    "init": ("identity_cmds", "init"),
    "login": ("identity_cmds", "login"),
    "logout": ("identity_cmds", "logout"),
    "whoami": ("identity_cmds", "whoami"),
    "demo": ("demo", "demo"),
    "scan": ("scan_cmds", "scan"),
    "validate": ("gate_cmds", "validate"),
}
GROUPS: dict[str, tuple[str, str]] = {
    "token": ("identity_cmds", "token_app"),
    "user": ("identity_cmds", "user_app"),
    "audit": ("audit_cmds", "audit_app"),
    "store": ("admin_cmds", "store_app"),
    "db": ("admin_cmds", "db_app"),
    "mfa": ("mfa_cmds", "mfa_app"),
    "project": ("access_cmds", "project_app"),
    "role": ("access_cmds", "role_app"),
    "approvals": ("access_cmds", "approvals_app"),
    "data": ("data_cmds", "data_app"),
    "allowlist": ("allowlist_cmds", "allowlist_app"),
    "run": ("run_cmds", "run_app"),
    "model": ("model_cmds", "model_app"),
    "defend": ("defend_cmds", "defend_app"),
}
_ROOT_OPTIONS_WITH_VALUE = ("--workspace", "-w")


def _root(
    workspace: Annotated[
        str | None,
        typer.Option(
            "--workspace",
            "-w",
            envvar="MLWARDEN_WORKSPACE",
            help="Workspace folder (default: search upwards).",
        ),
    ] = None,
) -> None:
    GLOBALS.workspace = workspace


def build_app(only: str | None = None) -> typer.Typer:
    """The root app with every command, or with just ``only`` (a command or group name)."""
    app = typer.Typer(
        name="mlwarden",
        help="Security controls around the ML lifecycle, under one tamper-evident audit log.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
    )
    app.callback()(_root)
    for name, where in COMMANDS.items():
        if only in (None, name):
            app.command(name)(_load(where))
    for name, where in GROUPS.items():
        if only in (None, name):
            app.add_typer(_load(where), name=name)
    return app


def app_for(args: Sequence[str]) -> typer.Typer:
    """The smallest app that can run ``args``."""
    name = command_name(args)
    return build_app(name if name in COMMANDS or name in GROUPS else None)


def command_name(args: Sequence[str]) -> str | None:
    """The first argument that is not a root option (or its value)."""
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg in _ROOT_OPTIONS_WITH_VALUE:
            skip = True
        elif not arg.startswith("-"):
            return arg
    return None


def _load(where: tuple[str, str]) -> Any:
    module, attribute = where
    return getattr(import_module(f"mlwarden.cli.{module}"), attribute)
