"""The ingestion gate on the command line: `data gate|profile|contract|policy` and `validate`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from mlwarden.cli.common import (
    DatasetArgument,
    DefaultProjectOption,
    JsonOption,
    RefArgument,
    open_cli_workspace,
    output,
)
from mlwarden.cli.render import Output
from mlwarden.errors import UsageError


def data_gate(ref: RefArgument, project: DefaultProjectOption = None, json_mode: JsonOption = False) -> None:
    """The gate's verdict on a version (accepted or quarantined), each batch's findings, recent rejections."""
    out = output(json_mode)
    with open_cli_workspace() as ws:
        report = ws.quality.gate(ref, project=project)
    if json_mode:
        out.emit(report)
        return
    version = report["version"]
    out.line(f"{report['dataset']}@{version['version']}: {report['verdict']}")
    for batch in report["ingestions"]:
        out.line(f"  {batch['ingestion']} from {batch['source']}: {batch['verdict']}")
        record = batch["record"]
        if record:
            _findings(out, record["report"]["findings"])
    for rejected in report["recent_rejections"]:
        out.line(f"  rejected {rejected['ingestion']} ({rejected['created_at']}, by {rejected['actor']})")
        _findings(out, rejected["report"]["findings"])


def _findings(out: Output, findings: list[dict[str, Any]]) -> None:
    for finding in findings:
        if finding["outcome"] != "passed":
            out.line(f"    {finding['outcome']:8} {finding['name']}: {finding['message']}")


def data_profile(
    ref: RefArgument,
    project: DefaultProjectOption = None,
    html: Annotated[Path | None, typer.Option("--html", help="Write an HTML report to this file.")] = None,
    json_mode: JsonOption = False,
) -> None:
    """Per column: counts, nulls, NaN/inf, min/max, mean/std, quantiles, distinct values, top values."""
    out = output(json_mode)
    with open_cli_workspace() as ws:
        profile = ws.quality.profile(ref, project=project)
    if html is not None:
        from mlwarden.quality.profile import profile_html

        html.write_text(profile_html(profile, f"{ref}"), encoding="utf-8")
    summary = profile.summary()
    if json_mode:
        out.emit(summary)
        return
    columns = summary["columns"]
    rows = [
        (
            c["name"],
            c["type"],
            c["count"],
            c["nulls"],
            _n(c.get("min")),
            _n(c.get("max")),
            _n(c.get("mean")),
            _n(c.get("distinct")),
        )
        for c in columns
    ]
    out.table(["column", "type", "rows", "nulls", "min", "max", "mean", "distinct"], rows)
    if html is not None:
        out.line(f"wrote {html}")


def _n(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return "" if value is None else str(value)


def data_contract(
    dataset: DatasetArgument,
    file: Annotated[
        Path | None, typer.Argument(help="A contract (YAML or TOML); omit to show the one in force.")
    ] = None,
    clear: Annotated[bool, typer.Option("--clear", help="Remove the contract.")] = False,
    project: DefaultProjectOption = None,
    json_mode: JsonOption = False,
) -> None:
    """Show or set the contract every later batch of the dataset must meet."""
    _document(dataset, file, clear, project, json_mode, "contract")


def data_policy(
    dataset: DatasetArgument,
    file: Annotated[Path | None, typer.Argument(help="A gate policy (YAML or TOML); omit to show it.")] = None,
    clear: Annotated[bool, typer.Option("--clear", help="Back to the default policy.")] = False,
    project: DefaultProjectOption = None,
    json_mode: JsonOption = False,
) -> None:
    """Show or set the policy that turns the gate's findings into accepted, quarantined or rejected."""
    _document(dataset, file, clear, project, json_mode, "policy")


def _document(dataset: str, file: Path | None, clear: bool, project: str | None, json_mode: bool, kind: str) -> None:
    out = output(json_mode)
    if file is not None and clear:
        raise UsageError("give a file or --clear, not both")
    with open_cli_workspace() as ws:
        if file is None and not clear:
            current: Any = ws.quality.documents(dataset, project=project)[kind]
            if current is None and kind == "policy":
                current = ws.quality.policy(dataset, project=project).to_json()
            result = {"dataset": dataset, "kind": kind, "document": current}
        else:
            setter = ws.quality.set_contract if kind == "contract" else ws.quality.set_policy
            result = setter(dataset, None if clear else file, project=project)
    if json_mode:
        out.emit(result)
    elif file is None and not clear:
        import yaml

        sys.stdout.write(
            yaml.safe_dump(result["document"], sort_keys=False) if result["document"] else f"# no {kind}\n"
        )
    else:
        out.line(f"{kind} of {dataset}: {'cleared' if clear else result['digest']}")


def validate(
    file: Annotated[Path | None, typer.Argument(help="A batch to judge (CSV, Parquet, JSON Lines, Arrow).")] = None,
    against: Annotated[
        str | None, typer.Option("--against", help="DATASET@V: its contract, policy, reference.")
    ] = None,
    infer: Annotated[str | None, typer.Option("--infer", help="DATASET@V: print the contract it satisfies.")] = None,
    contract: Annotated[Path | None, typer.Option("--contract", help="Use this contract instead.")] = None,
    policy: Annotated[Path | None, typer.Option("--policy", help="Use this policy instead.")] = None,
    project: DefaultProjectOption = None,
    json_mode: JsonOption = False,
) -> None:
    """Run the ingestion gate on FILE without ingesting it (exit 1 unless accepted), or infer a contract."""
    out = output(json_mode)
    if infer is not None:
        with open_cli_workspace() as ws:
            inferred = ws.quality.infer_contract(infer, project=project)
        if json_mode:
            out.emit(inferred.to_json())
        else:
            sys.stdout.write(inferred.to_yaml())
        return
    if file is None or against is None:
        raise UsageError("give FILE --against DATASET@V, or --infer DATASET@V")
    with open_cli_workspace() as ws:
        result = ws.quality.validate(file, against=against, project=project, contract=contract, policy=policy)
    if json_mode:
        out.emit(result)
    else:
        out.line(f"{file.name}: {result['verdict']} ({result['rows']} rows, against {against}; dry run)")
        _findings(out, result["findings"])
    if result["verdict"] != "accepted":
        raise typer.Exit(1)
