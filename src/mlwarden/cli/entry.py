"""The command line's entry point, and the one place errors become exit codes.

`mlwarden scan` is a local tool that people run on files they are about to load: it starts on a short
path that loads the scanner and not the workspace stack (database, audit log, data), unless a workspace
is found, so that its start-up stays near a tenth of a second.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

import typer

from mlwarden.cli.common import GLOBALS
from mlwarden.cli.render import Output
from mlwarden.errors import AuthenticationError, CheckFailed, MlwardenError, PermissionDenied

EXIT_OK, EXIT_CHECK_FAILED, EXIT_USAGE, EXIT_DENIED = 0, 1, 2, 3


def _command(args: list[str]) -> tuple[typer.Typer, list[str], str]:
    """The Typer app to run, the arguments it gets, and the program name it shows."""
    if args[:1] == ["scan"]:
        from mlwarden.cli.scan_cmds import scan_app

        return scan_app, args[1:], "mlwarden scan"
    from mlwarden.cli.app import app_for

    return app_for(args), args, "mlwarden"


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
        app, app_args, prog_name = _command(args)
        result = app(args=app_args, prog_name=prog_name, standalone_mode=False)
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
