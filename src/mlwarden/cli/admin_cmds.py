"""`mlwarden store` and `mlwarden db`."""

from __future__ import annotations

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn
from rich.text import Text

from mlwarden.cli.common import GLOBALS, JsonOption, open_cli_workspace, output
from mlwarden.cli.render import jsonable
from mlwarden.service.config import find_workspace, load_config
from mlwarden.service.init import upgrade_workspace
from mlwarden.store import schema
from mlwarden.store.db import Database

store_app = typer.Typer(help="The content-addressed blob store.", no_args_is_help=True)
db_app = typer.Typer(help="The metadata database schema.", no_args_is_help=True)


@store_app.command("verify")
def store_verify(json_mode: JsonOption = False) -> None:
    """Re-hash every blob; exit 1 if any does not match its digest."""
    out = output(json_mode)
    with open_cli_workspace() as ws:
        if json_mode:
            report = ws.store.verify()
        else:
            with Progress(TextColumn("verifying blobs"), BarColumn(), DownloadColumn(), console=out.err) as bar:
                task = bar.add_task("verify", total=None)
                report = ws.store.verify(lambda n: bar.advance(task, n))
    if json_mode:
        out.emit({"ok": report.ok, **jsonable(report)})
    elif report.ok:
        out.line(
            Text(
                f"OK: {report.checked} blobs ({report.checked_bytes} bytes) match their digests",
                style="green",
            )
        )
    else:
        out.line(Text(f"FAILED: {len(report.bad)} of {report.checked} blobs are bad", style="bold red"))
        out.table(["digest", "location", "problem"], [(b.digest, b.location, b.reason) for b in report.bad])
    if not report.ok:
        raise typer.Exit(1)


@db_app.command("upgrade")
def db_upgrade(json_mode: JsonOption = False) -> None:
    """Migrate the metadata database to this version's schema (back it up first)."""
    out = output(json_mode)
    state = upgrade_workspace(GLOBALS.workspace)
    if json_mode:
        out.emit({"revision": state.current, "head": state.head})
    else:
        out.line(f"schema at revision {state.current} (head {state.head})")


@db_app.command("status")
def db_status(json_mode: JsonOption = False) -> None:
    """Show the schema revision of the database and the one this mlwarden needs."""
    out = output(json_mode)
    paths = find_workspace(GLOBALS.workspace)
    db = Database(paths.database_url(load_config(paths)))
    try:
        state = schema.schema_state(db)
    finally:
        db.dispose()
    if json_mode:
        out.emit({"revision": state.current, "head": state.head, "up_to_date": state.up_to_date})
    else:
        out.line(f"database at {state.current or 'no schema'}, this mlwarden needs {state.head}")
