"""`mlwarden allowlist`: the workspace's additions to the model scanner's allow-list."""

from __future__ import annotations

from typing import Annotated

import typer

from mlwarden.cli.common import JsonOption, open_cli_workspace, output

allowlist_app = typer.Typer(
    help="Globals this workspace lets pickles use, beyond the scanner's packaged list.", no_args_is_help=True
)
GlobalArgument = Annotated[str, typer.Argument(help="The global, as module:qualname (e.g. mypkg.layers:Custom).")]


@allowlist_app.command("add")
def allowlist_add(
    name: GlobalArgument,
    reason: Annotated[str, typer.Option("--reason", help="Why it is safe to load (kept in the audit log).")],
    role: Annotated[str, typer.Option("--role", help="call, class or ref: the strongest use allowed.")] = "call",
    totp: Annotated[str | None, typer.Option("--totp", help="A fresh TOTP code (step-up).")] = None,
    json_mode: JsonOption = False,
) -> None:
    """Allow a global in this workspace's scans (admins, with --totp)."""
    out = output(json_mode)
    with open_cli_workspace() as ws:
        entry = ws.scans.allow(name, role=role, reason=reason, totp=totp)
    out.emit(entry) if json_mode else out.line(f"allowed {entry.name} ({entry.role})")


@allowlist_app.command("remove")
def allowlist_remove(name: GlobalArgument, json_mode: JsonOption = False) -> None:
    """Take a global off this workspace's allow-list (admins)."""
    out = output(json_mode)
    with open_cli_workspace() as ws:
        entry = ws.scans.disallow(name)
    out.emit(entry) if json_mode else out.line(f"removed {entry.name}")


@allowlist_app.command("list")
def allowlist_list(json_mode: JsonOption = False) -> None:
    """This workspace's additions (the packaged list is in docs/scanner.md)."""
    out = output(json_mode)
    with open_cli_workspace() as ws:
        found = ws.scans.allowlist()
    if json_mode:
        out.emit(found)
    else:
        out.table(
            ["global", "role", "reason", "by", "at"],
            [(e.name, e.role, e.reason, e.added_by, e.added_at) for e in found],
        )
