"""The root command and its command groups (errors become exit codes in `mlwarden.cli.entry`)."""

from __future__ import annotations

from typing import Annotated

import typer

from mlwarden.cli import (
    access_cmds,
    admin_cmds,
    allowlist_cmds,
    audit_cmds,
    data_cmds,
    identity_cmds,
    mfa_cmds,
    scan_cmds,
)
from mlwarden.cli.common import GLOBALS
from mlwarden.cli.demo import demo

app = typer.Typer(
    name="mlwarden",
    help="Security controls around the ML lifecycle, under one tamper-evident audit log.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


@app.callback()
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


app.command("init")(identity_cmds.init)
app.command("login")(identity_cmds.login)
app.command("logout")(identity_cmds.logout)
app.command("whoami")(identity_cmds.whoami)
app.command("demo")(demo)
app.command("scan")(scan_cmds.scan)
app.add_typer(identity_cmds.token_app, name="token")
app.add_typer(identity_cmds.user_app, name="user")
app.add_typer(audit_cmds.audit_app, name="audit")
app.add_typer(admin_cmds.store_app, name="store")
app.add_typer(admin_cmds.db_app, name="db")
app.add_typer(mfa_cmds.mfa_app, name="mfa")
app.add_typer(access_cmds.project_app, name="project")
app.add_typer(access_cmds.role_app, name="role")
app.add_typer(access_cmds.approvals_app, name="approvals")
app.add_typer(data_cmds.data_app, name="data")
app.add_typer(allowlist_cmds.allowlist_app, name="allowlist")
