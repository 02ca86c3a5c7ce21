"""`mlwarden scan`: is this model file safe to load? It needs no workspace; inside one, the workspace's
allow-list additions apply."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn
from rich.text import Text

import mlwarden
from mlwarden.cli.common import JsonOption, open_cli_workspace, output
from mlwarden.cli.render import Output, safe
from mlwarden.errors import UsageError, WorkspaceNotFound
from mlwarden.scan import FileVerdict, ScanPolicy, ScanReport, Verdict, scan_path
from mlwarden.scan.sarif import to_sarif

_STYLE = {
    Verdict.CLEAN: "green",
    Verdict.UNSAFE: "bold red",
    Verdict.MALICIOUS: "bold red",
    Verdict.UNVERIFIABLE: "yellow",
    Verdict.NOT_A_MODEL: "yellow",
}


def scan(
    paths: Annotated[list[Path], typer.Argument(help="Model files or folders (folders are walked).")],
    sarif: Annotated[Path | None, typer.Option("--sarif", help="Also write a SARIF 2.1.0 log to this file.")] = None,
    allow: Annotated[
        list[str] | None,
        typer.Option("--allow", help="Also allow this global as a callable (module:name); repeatable."),
    ] = None,
    builtin: Annotated[
        bool, typer.Option("--builtin", help="Use only the packaged allow-list, not the workspace's additions.")
    ] = False,
    json_mode: JsonOption = False,
) -> None:
    """Scan model files without loading them; exit 1 unless every file is clean.

    Inside a workspace you are logged in to, the workspace's allow-list additions apply (`mlwarden
    allowlist`); elsewhere, or with --builtin, the packaged list alone."""
    out = output(json_mode)
    policy = ScanPolicy() if builtin else _workspace_policy(out)
    if allow:
        try:
            policy = ScanPolicy(allow=policy.allow.extended(allow))
        except ValueError as error:
            raise UsageError(str(error), hint="write globals as module:name, e.g. mypkg.layers:Custom") from None
    report = _scan(out, paths, policy)
    if sarif is not None:
        document = to_sarif(report, tool_version=mlwarden.__version__)
        sarif.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    if json_mode:
        out.emit(report.to_dict())
    else:
        _show(out, report)
    if not report.clean:
        raise typer.Exit(1)


# `mlwarden scan` runs as its own small app (see mlwarden.cli.entry): the root app would load the
# workspace stack first.
scan_app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None)
scan_app.command()(scan)


def _workspace_policy(out: Output) -> ScanPolicy:
    """The workspace's allow-list when there is a workspace and a login; else the packaged one."""
    try:
        with open_cli_workspace() as ws:
            if not ws.actor.authenticated:
                out.err.print("note: not logged in to this workspace: its allow-list additions do not apply")
                return ScanPolicy()
            return ws.scans.policy()
    except WorkspaceNotFound:
        return ScanPolicy()


def _scan(out: Output, paths: list[Path], policy: ScanPolicy) -> ScanReport:
    if out.json_mode:
        return scan_path(paths, policy=policy)
    columns = (SpinnerColumn(), TextColumn("{task.description}"))
    with Progress(*columns, console=out.err, transient=True) as progress:
        task = progress.add_task("scanning", total=None)

        def observe(verdict: FileVerdict) -> None:
            progress.update(task, description=f"scanned {safe(verdict.path, 100)}")

        return scan_path(paths, policy=policy, observer=observe)


def _show(out: Output, report: ScanReport) -> None:
    out.table(["file", "verdict", "format", "findings"], [_row(v) for v in report.files])
    for verdict in report.files:
        _show_findings(out, verdict)
    if report.skipped:
        out.line(f"{len(report.skipped)} file(s) in the folders scanned are not models and were skipped")
    style = _STYLE[report.verdict]
    out.line(Text(f"{report.verdict.value.upper()}: {len(report.files)} file(s) scanned", style=style))


def _row(verdict: FileVerdict) -> tuple[object, ...]:
    counted = [f for f in verdict.findings if f.severity.value != "info"]
    return (verdict.path, verdict.verdict.value, verdict.format, len(counted))


def _show_findings(out: Output, verdict: FileVerdict) -> None:
    shown = [f for f in verdict.findings if f.severity.value != "info"][:20]
    for finding in shown:
        where = f" [{safe(finding.location, 120)}]" if finding.location else ""
        chain = f"\n      {safe(finding.chain, 300)}" if finding.chain else ""
        line = f"  {safe(verdict.path, 120)}{where}: {finding.severity.value}: {safe(finding.message, 400)}{chain}"
        out.line(Text(line, style=_STYLE.get(Verdict(finding.severity.value), "")))
