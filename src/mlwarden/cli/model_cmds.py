"""`mlwarden model`: register, list, show, compare, verify, pull, evaluate, alias, promote, rollback and
the promotion policy."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from mlwarden.cli.access_cmds import TotpOption
from mlwarden.cli.common import DefaultProjectOption, JsonOption, open_cli_workspace, output
from mlwarden.cli.render import Output

model_app = typer.Typer(
    help="The model registry: signed versions, evaluations, stages, promotions.", no_args_is_help=True
)

ModelRefArgument = Annotated[
    str, typer.Argument(help="NAME@VERSION, NAME@STAGE (e.g. production), NAME@ALIAS, or NAME for the newest.")
]
StageArgument = Annotated[str, typer.Option("--to", help="staging, production or archived.")]


@model_app.command("register")
def model_register(
    name: Annotated[str, typer.Argument(help="The model's name in the project.")],
    artifact: Annotated[str, typer.Argument(help="A model file or folder, or the name of an artifact the run logged.")],
    run: Annotated[str | None, typer.Option("--run", help="The run that produced it (its lineage).")] = None,
    source: Annotated[str | None, typer.Option("--source", help="Where an external model came from.")] = None,
    project: DefaultProjectOption = None,
    json_mode: JsonOption = False,
) -> None:
    """Register a new signed version (without --run: an external model, with no lineage)."""
    out = output(json_mode)
    with open_cli_workspace() as ws:
        made = ws.models.register(name, artifact, run=run, project=project, source=source)
    if json_mode:
        out.emit(made)
        return
    origin = f"from run {made['run']}" if made["run"] else "external (no lineage)"
    out.line(f"registered {made['ref']} ({made['format']}, {origin}): {made['digest']}")
    out.line(f"signed; scan: {made['scan']}; stage: {made['stage']}")


@model_app.command("list")
def model_list(project: DefaultProjectOption = None, json_mode: JsonOption = False) -> None:
    """The project's models, with their versions in each stage."""
    out = output(json_mode)
    with open_cli_workspace() as ws:
        found = ws.models.list_models(project=project)
    if json_mode:
        out.emit(found)
        return
    rows = [
        (
            m["name"],
            m["versions"],
            _versions(m["stages"].get("production")),
            _versions(m["stages"].get("staging")),
            ", ".join(f"{a}->{v}" for a, v in sorted(m["aliases"].items())),
        )
        for m in found
    ]
    out.table(["model", "versions", "production", "staging", "aliases"], rows)


def _versions(numbers: list[int] | None) -> str:
    return ", ".join(map(str, numbers or []))


@model_app.command("show")
def model_show(ref: ModelRefArgument, project: DefaultProjectOption = None, json_mode: JsonOption = False) -> None:
    """A version: stage, digest, signature status, lineage, scan, evaluations; and the model's history."""
    out = output(json_mode)
    with open_cli_workspace() as ws:
        shown = ws.models.show(ref, project=project)
    if json_mode:
        out.emit(shown)
        return
    _describe(out, shown)
    out.table(
        ["version", "stage", "external", "digest"],
        [(v["version"], v["stage"], "yes" if v["external"] else "", v["digest"]) for v in shown["versions"]],
    )


def _describe(out: Output, shown: dict[str, Any]) -> None:
    signature = shown["signature"]
    out.line(f"{shown['ref']} in {shown['stage']}: {shown['format']}, {shown['digest']}")
    out.line(f"signature: {signature['status']}" + "".join(f"\n  {p}" for p in signature["problems"]))
    lineage = f"run {shown['run']}" if shown["run"] else f"external ({shown['source'] or 'source not given'})"
    out.line(f"lineage: {lineage}; scan: {shown['scan']['verdict']}; by {shown['author']} at {shown['created_at']}")
    for used in shown["inputs"]:
        out.line(f"trained on: {used['dataset']}@{used['version']} {used['digest']}")
    if shown["aliases"]:
        out.line("aliases: " + ", ".join(shown["aliases"]))
    for evaluation in shown["evaluations"]:
        out.line(f"evaluated on {evaluation['dataset']}: {_metrics(evaluation['metrics'])}")


@model_app.command("compare")
def model_compare(
    a: ModelRefArgument, b: ModelRefArgument, project: DefaultProjectOption = None, json_mode: JsonOption = False
) -> None:
    """Metric deltas from A to B (run metrics and evaluations on the same data); exit 1 if B is worse."""
    out = output(json_mode)
    with open_cli_workspace() as ws:
        compared = ws.models.compare(a, b, project=project)
    if json_mode:
        out.emit(compared)
    else:
        out.table(
            ["metric", compared["a"], compared["b"], "b - a", ""],
            [
                (r["metric"], _num(r["a"]), _num(r["b"]), _num(r["delta"]), "DEGRADED" if r["degraded"] else "")
                for r in compared["metrics"]
            ],
        )
    if compared["degraded"]:
        raise typer.Exit(1)


def _metrics(values: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.4f}" for k, v in sorted(values.items()))


def _num(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


@model_app.command("verify")
def model_verify(ref: ModelRefArgument, project: DefaultProjectOption = None, json_mode: JsonOption = False) -> None:
    """Check the signature and every file's bytes; exit 1 on any mismatch."""
    out = output(json_mode)
    with open_cli_workspace() as ws:
        checked = ws.models.verify(ref, project=project)
    if json_mode:
        out.emit(checked)
    elif checked["ok"]:
        out.line(f"{checked['ref']}: signature valid, every file intact ({checked['digest']})")
    else:
        out.line(f"{checked['ref']}: DOES NOT VERIFY")
        for problem in checked["problems"]:
            out.line(f"  {problem}")
    if not checked["ok"]:
        raise typer.Exit(1)


@model_app.command("pull")
def model_pull(
    ref: ModelRefArgument,
    out_dir: Annotated[Path, typer.Argument(help="A new or empty folder.")],
    project: DefaultProjectOption = None,
    json_mode: JsonOption = False,
) -> None:
    """Write a verified version's files and its signature (model.sig) into a folder."""
    out = output(json_mode)
    with open_cli_workspace() as ws:
        pulled = ws.models.pull(ref, out_dir, project=project)
    if json_mode:
        out.emit(pulled)
        return
    out.line(f"{pulled['ref']} -> {pulled['path']} (signature {pulled['signature']})")


@model_app.command("evaluate")
def model_evaluate(
    ref: ModelRefArgument,
    dataset: Annotated[str, typer.Argument(help="DATASET@VERSION the gate accepted; its label column is the truth.")],
    label: Annotated[str | None, typer.Option("--label", help="The truth column, if not the dataset's label.")] = None,
    project: DefaultProjectOption = None,
    json_mode: JsonOption = False,
) -> None:
    """Measure a version on a dataset version and record it (promotion policies read these)."""
    out = output(json_mode)
    with open_cli_workspace() as ws:
        measured = ws.models.evaluate(ref, dataset, project=project, label=label)
    if json_mode:
        out.emit(measured)
        return
    out.line(f"{measured['ref']} on {measured['dataset']}: {_metrics(measured['metrics'])}")


@model_app.command("alias")
def model_alias(
    ref: ModelRefArgument,
    alias: Annotated[str, typer.Argument(help="e.g. champion; NAME@ALIAS then names this version.")],
    remove: Annotated[bool, typer.Option("--remove", help="Remove the alias instead.")] = False,
    project: DefaultProjectOption = None,
    json_mode: JsonOption = False,
) -> None:
    """Point an alias at a version (or remove it)."""
    out = output(json_mode)
    with open_cli_workspace() as ws:
        done = (
            ws.models.remove_alias(ref, alias, project=project)
            if remove
            else ws.models.set_alias(ref, alias, project=project)
        )
    if json_mode:
        out.emit(done)
        return
    out.line(
        f"{done['model']}@{done['alias']} removed"
        if remove
        else f"{done['model']}@{done['alias']} -> version {done['version']}"
    )


@model_app.command("promote")
def model_promote(
    ref: ModelRefArgument,
    to: StageArgument,
    check: Annotated[bool, typer.Option("--check", help="Only list the requirements and what holds.")] = False,
    totp: TotpOption = None,
    project: DefaultProjectOption = None,
    json_mode: JsonOption = False,
) -> None:
    """Move a version to a stage when the promotion policy holds; production opens an approval request
    (needs --totp). Exit 1 when blocked or waiting for approval."""
    out = output(json_mode)
    with open_cli_workspace() as ws:
        result = (
            ws.models.check(ref, to, project=project)
            if check
            else ws.models.promote(ref, to, project=project, totp=totp)
        )
    if json_mode:
        out.emit(result)
    else:
        _render_move(out, result, check)
    if (check and not result["ok"]) or (not check and result["status"] != "moved"):
        raise typer.Exit(1)


def _render_move(out: Output, result: dict[str, Any], check: bool) -> None:
    out.table(
        ["requirement", "", "found"],
        [(r["name"], "ok" if r["ok"] else "FAIL", r["detail"]) for r in result["requirements"]],
    )
    if check:
        out.line(f"approvals needed: {result['approvals_needed']} ({result['approver_role']})")
    elif result["status"] == "moved":
        out.line(f"{result['ref']} is now in {result['stage']}")
    else:
        out.line(
            f"{result['ref']} -> {result['to']}: waiting for {result['approvals_needed']} approval(s),"
            f" request {result['request']}"
        )
        out.line(f"an approver runs: mlwarden approvals approve {result['request']} --totp CODE")


@model_app.command("rollback")
def model_rollback(
    name: Annotated[str, typer.Argument(help="The model.")],
    to: Annotated[int, typer.Option("--to", help="A version that was in production before.")],
    totp: TotpOption = None,
    project: DefaultProjectOption = None,
    json_mode: JsonOption = False,
) -> None:
    """Return a former production version to production (needs --totp and one approver)."""
    out = output(json_mode)
    with open_cli_workspace() as ws:
        result = ws.models.rollback(name, to, project=project, totp=totp)
    if json_mode:
        out.emit(result)
    else:
        _render_move(out, result, False)
    if result["status"] != "moved":
        raise typer.Exit(1)


@model_app.command("policy")
def model_policy(
    file: Annotated[Path | None, typer.Option("--set", help="A YAML or TOML promotion policy to set.")] = None,
    totp: TotpOption = None,
    project: DefaultProjectOption = None,
    json_mode: JsonOption = False,
) -> None:
    """Show the project's promotion policy, or set it with --set FILE (admins, with --totp)."""
    out = output(json_mode)
    with open_cli_workspace() as ws:
        shown = (
            ws.models.set_policy(file, project=project, totp=totp)
            if file is not None
            else ws.models.policy(project=project)
        )
    if json_mode:
        out.emit(shown)
        return
    if file is not None:
        out.line(f"promotion policy of {shown['project']} set: {shown['digest']}")
        return
    for stage, rule in shown["stages"].items():
        out.line(f"{stage}: " + ", ".join(f"{k}={v}" for k, v in rule.items() if v not in ((), [])))


@model_app.command("public-key")
def model_public_key() -> None:
    """The PEM public key that verifies this workspace's model signatures (for `model_signing verify key`)."""
    with open_cli_workspace() as ws:
        typer.echo(ws.models.public_key(), nl=False)
