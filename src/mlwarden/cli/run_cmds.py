"""`mlwarden run`: list, show and compare experiment runs."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from mlwarden.cli.common import (
    DefaultProjectOption,
    JsonOption,
    open_cli_workspace,
    output,
)

run_app = typer.Typer(help="Experiment runs: params, metrics, inputs, environment.", no_args_is_help=True)

RunArgument = Annotated[str, typer.Argument(help="A run id (see `mlwarden run list`).")]


@run_app.command("list")
def run_list(project: DefaultProjectOption = None, json_mode: JsonOption = False) -> None:
    """The project's runs, oldest first."""
    out = output(json_mode)
    with open_cli_workspace() as ws:
        found = ws.runs.list_runs(project=project)
    if json_mode:
        out.emit(found)
        return
    out.table(
        ["run", "name", "status", "by", "started", "ended"],
        [(r["id"], r["name"], r["status"], r["actor"], r["started_at"], r["ended_at"] or "") for r in found],
    )


@run_app.command("show")
def run_show(run: RunArgument, json_mode: JsonOption = False) -> None:
    """A run: status, code version, params, the last value of each metric, tags and input datasets."""
    out = output(json_mode)
    with open_cli_workspace() as ws:
        shown = ws.runs.show_run(run)
    if json_mode:
        out.emit(shown)
        return
    summary, code = shown["run"], shown["environment"].get("code", {})
    out.line(f"{summary['id']} {summary['name']}: {summary['status']} (by {summary['actor']}, {summary['started_at']})")
    dirty = f" + uncommitted changes {code['dirty']}" if code.get("dirty") else ""
    out.line(f"code: {code.get('commit') or 'no git commit'}{dirty}")
    _pairs(out, "params", shown["params"])
    _pairs(out, "metrics", shown["metrics"])
    _pairs(out, "tags", shown["tags"])
    for used in shown["inputs"]:
        out.line(f"input: {used['dataset']}@{used['version']} {used['digest']}")
    for artifact in shown["artifacts"]:
        out.line(f"artifact: {artifact['name']} ({artifact['size']:,} bytes) {artifact['digest']}")


def _pairs(out: Any, title: str, values: dict[str, Any]) -> None:
    if values:
        out.table([title, "value"], sorted(values.items()))


@run_app.command("compare")
def run_compare(a: RunArgument, b: RunArgument, json_mode: JsonOption = False) -> None:
    """Params that differ between two runs, and each metric in both with the change."""
    out = output(json_mode)
    with open_cli_workspace() as ws:
        compared = ws.runs.compare_runs(a, b)
    if json_mode:
        out.emit(compared)
        return
    _pairs(out, "param (a, b)", {k: f"{x} -> {y}" for k, (x, y) in compared["params"].items()})
    rows = [(k, m["a"], m["b"], m["delta"]) for k, m in compared["metrics"].items()]
    out.table(["metric", "a", "b", "b - a"], rows)
