"""`mlwarden data`: ingest, versions, diff, blame, lineage, revert, export, verify, protection."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from mlwarden.cli.common import (
    DatasetArgument,
    DefaultProjectOption,
    JsonOption,
    RefArgument,
    open_cli_workspace,
    output,
)
from mlwarden.cli.render import Output

if TYPE_CHECKING:
    from mlwarden.service.dataset_changes import Change

ProgressCallback = Callable[[int], None]

data_app = typer.Typer(help="Datasets: row-level versions with per-row provenance.", no_args_is_help=True)

LimitOption = Annotated[int, typer.Option("--limit", help="Show at most this many rows.")]


@data_app.command("add")
def data_add(
    dataset: DatasetArgument,
    file: Annotated[Path, typer.Argument(help="CSV, Parquet, JSON Lines or Arrow IPC (told by content).")],
    source: Annotated[str, typer.Option("--source", help="Where the rows came from (a vendor, a labeler...).")],
    project: DefaultProjectOption = None,
    label_column: Annotated[str | None, typer.Option("--label-column", help="The label (first ingest).")] = None,
    note: Annotated[str | None, typer.Option("--note", help="Why (kept with the ingestion).")] = None,
    replace: Annotated[bool, typer.Option("--replace", help="Replace every row instead of appending.")] = False,
    json_mode: JsonOption = False,
) -> None:
    """Ingest a batch: a new immutable version (previous rows plus these, or only these with --replace)."""
    out = output(json_mode)
    with open_cli_workspace() as ws, _progress(out, file) as progress:
        change = ws.data.add(
            dataset, file, source=source, project=project, label_column=label_column, note=note,
            replace=replace, progress=progress,
        )  # fmt: skip
    _report_change(out, change)
    if change.verdict == "quarantined":
        raise typer.Exit(1)


def _report_change(out: Output, change: Change) -> None:
    if out.json_mode:
        out.emit(change.to_dict())
    elif change.version is not None:
        v = change.version
        added = f", {change.ingestion.rows} new" if change.ingestion else ""
        out.line(f"{v.ref}: {v.rows} rows{added}, {v.kind}, digest {v.digest}")
        if change.verdict == "quarantined":
            out.line(
                f"the gate quarantined the batch: accept it with `mlwarden approvals approve {change.accept_request}`"
            )
            out.line(f"(an approver, not you), or drop it with `mlwarden data revert {change.dataset} --ingestion ...`")
    else:
        out.line(f"{change.dataset} is protected: approval request {change.approval_request} is pending")
        out.line(f"the version it proposes has digest {change.digest}")


@contextmanager
def _progress(out: Output, file: Path) -> Iterator[ProgressCallback | None]:
    if out.json_mode or not file.is_file():
        yield None
        return
    columns = (TextColumn("reading " + file.name[:40]), BarColumn(), DownloadColumn(), TimeElapsedColumn())
    with Progress(*columns, console=out.err, transient=True) as bar:
        task = bar.add_task("read", total=file.stat().st_size)
        yield lambda n: bar.advance(task, n)


@data_app.command("list")
def data_list(project: DefaultProjectOption = None, json_mode: JsonOption = False) -> None:
    """The project's datasets and their latest versions."""
    out = output(json_mode)
    with open_cli_workspace() as ws:
        found = ws.data.list(project=project)
    if json_mode:
        out.emit(found)
        return
    rows = []
    for d in found:
        latest = d["latest"] or {}
        rows.append(
            (
                d["name"],
                latest.get("version"),
                latest.get("rows"),
                latest.get("digest"),
                "yes" if d["protected"] else "",
            )
        )
    out.table(["dataset", "version", "rows", "digest", "protected"], rows)


@data_app.command("versions")
def data_versions(
    dataset: DatasetArgument, project: DefaultProjectOption = None, json_mode: JsonOption = False
) -> None:
    """Every version of a dataset, oldest first."""
    out = output(json_mode)
    with open_cli_workspace() as ws:
        found = ws.data.versions(dataset, project=project)
    if json_mode:
        out.emit([v.to_dict() for v in found])
        return
    out.table(
        ["version", "kind", "rows", "digest", "by", "at", "undid"],
        [(v.number, v.kind, v.rows, v.digest, v.actor, v.created_at, _undid(v.undid)) for v in found],
    )


def _undid(undid: dict[str, Any] | None) -> str:
    return f"--{undid['by']} {undid['value']} (-{undid['rows_removed']} rows)" if undid else ""


@data_app.command("show")
def data_show(ref: RefArgument, project: DefaultProjectOption = None, json_mode: JsonOption = False) -> None:
    """A version: digest, schema, and the ingestions and sources its rows came from."""
    out = output(json_mode)
    with open_cli_workspace() as ws:
        shown = ws.data.show(ref, project=project)
    if json_mode:
        out.emit(shown)
        return
    v, d = shown["version"], shown["dataset"]
    out.line(f"{v['ref']}  {v['rows']} rows  {v['kind']}  digest {v['digest']}")
    out.line("schema: " + ", ".join(f"{c['name']}:{c['type']}" for c in d["schema"]) + f"  label: {d['label_column']}")
    _ingestion_table(out, shown["ingestions"])


def _ingestion_table(out: Output, ingestions: list[dict[str, Any]]) -> None:
    out.table(
        ["ingestion", "source", "by", "at", "rows", "input"],
        [
            (i["id"], i["source"], i["actor"], i["created_at"], i["rows_in_version"], i["input_name"])
            for i in ingestions
        ],
    )


@data_app.command("lineage")
def data_lineage(ref: RefArgument, project: DefaultProjectOption = None, json_mode: JsonOption = False) -> None:
    """Where a version's rows came from, and the versions that led to it."""
    out = output(json_mode)
    with open_cli_workspace() as ws:
        found = ws.data.lineage(ref, project=project)
    if json_mode:
        out.emit(found)
        return
    out.table(
        ["source", "rows", "ingestions", "by"],
        [(s["source"], s["rows"], s["ingestions"], ", ".join(s["actors"])) for s in found["sources"]],
    )
    _ingestion_table(out, found["ingestions"])
    out.table(
        ["version", "kind", "rows", "by", "undid"],
        [(h["version"], h["kind"], h["rows"], h["actor"], _undid(h["undid"])) for h in found["history"]],
    )


@data_app.command("diff")
def data_diff(
    a: Annotated[str, typer.Argument(help="From: DATASET@A.")],
    b: Annotated[str, typer.Argument(help="To: DATASET@B.")],
    rows: Annotated[bool, typer.Option("--rows", help="List the rows added and removed.")] = False,
    limit: LimitOption = 20,
    project: DefaultProjectOption = None,
    json_mode: JsonOption = False,
) -> None:
    """Rows added and removed from A to B (by fingerprint), by source, with column statistics."""
    out = output(json_mode)
    with open_cli_workspace() as ws:
        found = ws.data.diff(a, b, project=project, rows=limit if rows else None)
    if json_mode:
        out.emit(found)
        return
    a_ref, b_ref = found["a"]["ref"], found["b"]["ref"]
    out.line(f"{a_ref} -> {b_ref}: +{found['added']} -{found['removed']} rows, {found['unchanged']} unchanged")
    out.table(["source", "added", "removed"], [(s["source"], s["added"], s["removed"]) for s in found["by_source"]])
    for side in ("added", "removed"):
        stats = found["columns"][side]
        if any(entry["count"] for entry in stats.values()):
            out.table(
                ["column", "count", "nulls", "min", "max", "mean"],
                [_stat_row(k, e) for k, e in stats.items()],
                title=f"{side} rows",
            )
    if rows:
        _row_table(out, found["added_rows"], "added")
        _row_table(out, found["removed_rows"], "removed")


def _stat_row(name: str, entry: dict[str, Any]) -> tuple[object, ...]:
    return (
        name,
        entry["count"],
        entry["nulls"],
        entry.get("min"),
        entry.get("max"),
        entry.get("mean", entry.get("distinct")),
    )


def _row_table(out: Output, rows: list[dict[str, Any]], title: str) -> None:
    if rows:
        out.table(
            ["position", "source", "ingestion", "row digest", "values"],
            [(r["position"], r["source"], r["ingestion"], r["row_digest"][:19] + "…", r["values"]) for r in rows],
            title=f"{title} rows",
        )


@data_app.command("blame")
def data_blame(
    ref: RefArgument,
    where: Annotated[str | None, typer.Option("--where", help="A SQL condition over the columns.")] = None,
    row_digest: Annotated[str | None, typer.Option("--row-digest", help="A row digest (sha256:...).")] = None,
    limit: LimitOption = 100,
    project: DefaultProjectOption = None,
    json_mode: JsonOption = False,
) -> None:
    """Which ingestion (source, actor, time) brought each matching row."""
    out = output(json_mode)
    with open_cli_workspace() as ws:
        found = ws.data.blame(ref, project=project, where=where, row_digest=row_digest, limit=limit)
    if json_mode:
        out.emit(found)
        return
    out.line(f"{found['version']['ref']}: {found['matched']} matching rows (showing {found['shown']})")
    _row_table(out, found["rows"], "matching")


@data_app.command("revert")
def data_revert(
    dataset: DatasetArgument,
    source: Annotated[str | None, typer.Option("--source", help="Drop every row from this source.")] = None,
    ingestion: Annotated[str | None, typer.Option("--ingestion", help="Drop the rows of one ingestion.")] = None,
    since: Annotated[str | None, typer.Option("--since", help="Drop rows ingested at or after this time.")] = None,
    to: Annotated[int | None, typer.Option("--to", help="Go back to the rows of version N.")] = None,
    note: Annotated[str | None, typer.Option("--note", help="Why.")] = None,
    project: DefaultProjectOption = None,
    json_mode: JsonOption = False,
) -> None:
    """Make a new version without the chosen rows; it records what it undid."""
    out = output(json_mode)
    with open_cli_workspace() as ws:
        change = ws.data.revert(
            dataset, project=project, source=source, ingestion=ingestion, since=since, to=to, note=note
        )
    _report_change(out, change)


@data_app.command("export")
def data_export(
    ref: RefArgument,
    out_path: Annotated[Path, typer.Argument(metavar="OUT", help="A .parquet, .csv, .jsonl or .arrow file.")],
    project: DefaultProjectOption = None,
    json_mode: JsonOption = False,
) -> None:
    """Write every row of a version to a file (its digest is re-checked on the way)."""
    out = output(json_mode)
    with open_cli_workspace() as ws:
        done = ws.data.export(ref, out_path, project=project)
    if json_mode:
        out.emit(done)
    else:
        out.line(f"wrote {done['rows']} rows of {done['version']['ref']} to {out_path}")


@data_app.command("verify")
def data_verify(
    dataset: Annotated[str | None, typer.Argument(help="One dataset (default: all in the project).")] = None,
    project: DefaultProjectOption = None,
    json_mode: JsonOption = False,
) -> None:
    """Re-hash stored rows and recompute version digests; exit 1 on any change made outside mlwarden."""
    out = output(json_mode)
    with open_cli_workspace() as ws:
        report = ws.data.verify(dataset, project=project)
    if json_mode:
        out.emit(report.to_dict())
    elif report.ok:
        out.line(
            Text(
                f"OK: {report.datasets} datasets, {report.versions} versions, {report.rows} rows re-hashed",
                style="green",
            )
        )
    else:
        out.line(Text(f"FAILED: {len(report.problems)} problems", style="bold red"))
        out.table(["dataset", "item", "problem"], [(p.dataset, p.item, p.problem) for p in report.problems])
    if not report.ok:
        raise typer.Exit(1)


@data_app.command("protect")
def data_protect(
    dataset: DatasetArgument,
    approvals: Annotated[int, typer.Option("--approvals", help="Approvers each change needs.")] = 1,
    project: DefaultProjectOption = None,
    json_mode: JsonOption = False,
) -> None:
    """Accept changes to the dataset only through an approved request."""
    out = output(json_mode)
    with open_cli_workspace() as ws:
        found = ws.data.protect(dataset, project=project, approvals=approvals)
    out.emit(found.to_dict()) if json_mode else out.line(f"{dataset} is protected ({approvals} approval(s) per change)")


@data_app.command("unprotect")
def data_unprotect(
    dataset: DatasetArgument,
    totp: Annotated[str | None, typer.Option("--totp", help="A fresh TOTP code (step-up).")] = None,
    project: DefaultProjectOption = None,
    json_mode: JsonOption = False,
) -> None:
    """Accept changes without approval again (admins, with --totp)."""
    out = output(json_mode)
    with open_cli_workspace() as ws:
        found = ws.data.unprotect(dataset, project=project, totp=totp)
    out.emit(found.to_dict()) if json_mode else out.line(f"{dataset} is no longer protected")


def _register_gate_commands() -> None:
    from mlwarden.cli import gate_cmds

    data_app.command("gate")(gate_cmds.data_gate)
    data_app.command("profile")(gate_cmds.data_profile)
    data_app.command("contract")(gate_cmds.data_contract)
    data_app.command("policy")(gate_cmds.data_policy)


_register_gate_commands()
