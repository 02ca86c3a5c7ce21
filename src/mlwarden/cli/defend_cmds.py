"""`mlwarden defend`: scan a dataset version for poison, and trace it to its sources."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from mlwarden.cli.access_cmds import TotpOption
from mlwarden.cli.common import (
    DatasetArgument,
    DefaultProjectOption,
    JsonOption,
    RefArgument,
    open_cli_workspace,
    output,
)
from mlwarden.cli.render import Output

defend_app = typer.Typer(
    help="Poisoning defenses: suspicious rows, suspected sources, the revert.", no_args_is_help=True
)

LabelOption = Annotated[str | None, typer.Option("--label-column", help="The label column, if not the dataset's own.")]


@defend_app.command("scan")
def defend_scan(
    ref: RefArgument,
    label_column: LabelOption = None,
    limit: Annotated[int, typer.Option("--limit", help="Rows to list, most suspicious first.")] = 20,
    project: DefaultProjectOption = None,
    json_mode: JsonOption = False,
) -> None:
    """The most suspicious rows, each with its score, detector, reason and provenance; exit 1 when a
    source holds significantly more of them than the others."""
    out = output(json_mode)
    with open_cli_workspace() as ws:
        found = ws.defense.scan(ref, project=project, label_column=label_column, limit=limit)
    if json_mode:
        out.emit(found)
    else:
        _scan_text(out, found)
    if found["suspected_sources"]:
        raise typer.Exit(1)


def _scan_text(out: Output, found: dict[str, Any]) -> None:
    out.line(f"{found['version']['ref']}: {found['flagged']} of {found['rows_judged']} rows flagged" + _sampled(found))
    out.table(["detector", "flagged", "note"], [(d["name"], d["flagged"], d["note"]) for d in found["detectors"]])
    out.table(
        ["position", "score", "detector", "source", "reason"],
        [(r["position"], f"{r['score']:.3f}", r["detector"], r["source"], r["reason"]) for r in found["rows"]],
    )
    if found["suspected_sources"]:
        out.line("suspected sources: " + ", ".join(found["suspected_sources"]) + " (see `mlwarden defend forensics`)")


def _sampled(found: dict[str, Any]) -> str:
    return f" (a uniform sample of {found['rows']} rows)" if found["sampled"] else ""


@defend_app.command("forensics")
def defend_forensics(
    ref: RefArgument,
    by: Annotated[str, typer.Option("--by", help="source or ingestion.")] = "source",
    label_column: LabelOption = None,
    project: DefaultProjectOption = None,
    json_mode: JsonOption = False,
) -> None:
    """Sources (or ingestions) ranked by suspicion, the revert that drops the top suspect and what a simple
    model gains without it; exit 1 when one is suspected."""
    out = output(json_mode)
    with open_cli_workspace() as ws:
        found = ws.defense.forensics(ref, project=project, label_column=label_column, by=by)
    if json_mode:
        out.emit(found)
    else:
        _forensics_text(out, found)
    if found["suspected"]:
        raise typer.Exit(1)


def _forensics_text(out: Output, found: dict[str, Any]) -> None:
    out.line(f"{found['version']['ref']}, by {found['by']}" + _sampled(found))
    out.table(
        [found["by"], "rows", "flagged", "share", "rest", "p-value", ""],
        [
            (
                r["group"],
                r["rows"],
                r["flagged"],
                f"{r['fraction']:.1%}",
                f"{r['others_rate']:.1%}",
                f"{r['p_value']:.2g}",
                "SUSPECTED" if r["suspected"] else "",
            )
            for r in found["ranking"]
        ],
    )
    out.line(
        f"measured against the trusted version {found['trusted']}"
        if found["trusted"]
        else "no trusted version: each source judged against the others (see `mlwarden defend trust`)"
    )
    if found["revert"]:
        out.line(f"to drop it: {found['revert']}")
    what_if = found.get("what_if") or {}
    if "gain_without" in what_if:
        out.line(
            f"what if: a logistic regression without {what_if['dropped']} scores {what_if['accuracy_without']:.3f}"
            f" on the other sources' held-out rows, {what_if['accuracy_with']:.3f} with it"
        )


@defend_app.command("trust")
def defend_trust(
    ref: RefArgument,
    totp: TotpOption = None,
    note: Annotated[str | None, typer.Option("--note", help="Why these rows can be trusted.")] = None,
    project: DefaultProjectOption = None,
    json_mode: JsonOption = False,
) -> None:
    """Mark an accepted version as the dataset's trusted rows (needs --totp): forensics then measure every
    row, and each source's harm to a model, against it."""
    out = output(json_mode)
    with open_cli_workspace() as ws:
        marked = ws.defense.trust(ref, project=project, totp=totp, note=note)
    if json_mode:
        out.emit(marked)
        return
    out.line(f"{marked['dataset']}@{marked['version']} is the trusted version ({marked['digest']})")


@defend_app.command("untrust")
def defend_untrust(
    dataset: DatasetArgument, project: DefaultProjectOption = None, json_mode: JsonOption = False
) -> None:
    """Withdraw the dataset's trusted version."""
    out = output(json_mode)
    with open_cli_workspace() as ws:
        done = ws.defense.untrust(dataset, project=project)
    if json_mode:
        out.emit(done)
        return
    out.line(f"{done['dataset']} has no trusted version now")


@defend_app.command("trusted")
def defend_trusted(
    dataset: DatasetArgument, project: DefaultProjectOption = None, json_mode: JsonOption = False
) -> None:
    """The dataset's trusted version: which, by whom, when and why."""
    out = output(json_mode)
    with open_cli_workspace() as ws:
        found = ws.defense.trusted(dataset, project=project)
    if json_mode:
        out.emit(found)
    elif found is None:
        out.line(f"{dataset} has no trusted version")
    else:
        out.line(f"{dataset}@{found['version']} {found['digest']}, marked by {found['actor']} at {found['at']}")
