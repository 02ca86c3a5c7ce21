"""What every command shares: the workspace option, --json, opening the workspace as the logged-in user."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Annotated

import typer

from mlwarden.cli import credentials
from mlwarden.cli.render import Output
from mlwarden.errors import UsageError
from mlwarden.service.config import find_workspace, load_config

if TYPE_CHECKING:
    from mlwarden.service.workspace import Workspace

JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout and nothing else.")]
# A project that may default (MLWARDEN_PROJECT, then the workspace's default_project); datasets and versions.
DefaultProjectOption = Annotated[
    str | None, typer.Option("--project", "-p", help="The project (default: MLWARDEN_PROJECT or the workspace's).")
]
DatasetArgument = Annotated[str, typer.Argument(help="The dataset's name.")]
RefArgument = Annotated[str, typer.Argument(help="DATASET, DATASET@N, DATASET@sha256:... or a version digest.")]


@dataclass
class Globals:
    workspace: str | None = None


GLOBALS = Globals()


def open_cli_workspace() -> Workspace:
    """The workspace found as git finds a repository, acting as MLWARDEN_TOKEN or the stored login."""
    paths = find_workspace(GLOBALS.workspace)
    from mlwarden.service.workspace import ENV_TOKEN, open_workspace  # the database stack: only when needed

    token = os.environ.get(ENV_TOKEN) or credentials.stored_token(load_config(paths).workspace_id)
    return open_workspace(paths.root, token=token, client="cli")


def read_secret_from_stdin(what: str) -> str:
    value = sys.stdin.readline().rstrip("\r\n")
    if not value:
        raise UsageError(f"no {what} on standard input")
    return value


def output(json_mode: bool) -> Output:
    return Output(json_mode)


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str | None) -> timedelta | None:
    """'90m', '12h', '30d', '2w' -> timedelta; None stays None."""
    if text is None:
        return None
    number, unit = text[:-1], text[-1:].lower()
    if unit not in _UNITS or not number.isdigit() or int(number) == 0:
        raise UsageError(f"invalid duration {text!r}", hint="use a positive number and a unit: 90m, 12h, 30d, 2w")
    return timedelta(seconds=int(number) * _UNITS[unit])
