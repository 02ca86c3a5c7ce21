"""The root command, and the one place errors become exit codes."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
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
from mlwarden.cli.render import Output
from mlwarden.errors import AuthenticationError, CheckFailed, MlwardenError, PermissionDenied

EXIT_OK, EXIT_CHECK_FAILED, EXIT_USAGE, EXIT_DENIED = 0, 1, 2, 3

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


def exit_code_for(error: MlwardenError) -> int:
    if isinstance(error, PermissionDenied | AuthenticationError):
        return EXIT_DENIED
    if isinstance(error, CheckFailed):
        return EXIT_CHECK_FAILED
    return EXIT_USAGE


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI in-process and return its exit code (tests call this directly)."""
    args = list(sys.argv[1:] if argv is None else argv)
    json_mode = "--json" in args
    GLOBALS.workspace = None
    try:
        result = app(args=args, prog_name="mlwarden", standalone_mode=False)
    except MlwardenError as error:
        _report(json_mode, type(error).__name__, error.message, error.hint)
        return exit_code_for(error)
    except OSError as error:  # a file the user named cannot be read or written
        where = f": {error.filename}" if error.filename else ""
        _report(json_mode, "OSError", f"{error.strerror or error}{where}", "check the path and its permissions")
        return EXIT_USAGE
    except typer.Abort:
        _report(json_mode, "Aborted", "aborted", "")
        return EXIT_USAGE
    except typer.TyperException as error:  # bad arguments or options
        _report(json_mode, "UsageError", error.format_message(), "see `mlwarden --help`")
        return EXIT_USAGE
    return result if isinstance(result, int) else EXIT_OK


def _report(json_mode: bool, kind: str, message: str, hint: str) -> None:
    out = Output(json_mode)
    if json_mode:
        out.emit({"error": {"type": kind, "message": message, "hint": hint}})
    out.error(message, hint)


def run() -> None:
    """Console-script entry point.

    It leaves without the interpreter's teardown: freeing a large ingestion's memory and stopping the
    hash engine's runtime took a quarter of a second of every `data add`. Everything that must reach disk
    is written and closed by then (the database inside each command's `with` block, files atomically),
    and the output streams are flushed here.
    """
    code = main()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except OSError:  # a closed pipe (`mlwarden ... | head`): nothing more can be said
            code = code or EXIT_USAGE
    os._exit(code)
