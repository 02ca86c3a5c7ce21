"""`mlwarden audit`: log, verify, prove, checkpoint, witness."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from mlwarden.audit import encoding, merkle
from mlwarden.audit.verify import Problem, VerifyReport
from mlwarden.cli.common import JsonOption, open_cli_workspace, output
from mlwarden.cli.render import Output, safe
from mlwarden.domain.events import AuditEvent
from mlwarden.service.auditing import AuditQuery

audit_app = typer.Typer(help="Query, verify and prove the tamper-evident audit log.", no_args_is_help=True)


@audit_app.command("log")
def log(
    actor: Annotated[str | None, typer.Option("--actor", help="Only events by this actor.")] = None,
    action: Annotated[str | None, typer.Option("--action", help="Only this action, e.g. user.add.")] = None,
    resource: Annotated[str | None, typer.Option("--resource", help="TYPE or TYPE:ID, e.g. user:alice.")] = None,
    since: Annotated[str | None, typer.Option("--since", help="From this UTC date/time (ISO 8601).")] = None,
    until: Annotated[str | None, typer.Option("--until", help="Before this UTC date/time (ISO 8601).")] = None,
    from_seq: Annotated[int, typer.Option("--from-seq", help="Start at this seq (to page through).")] = 0,
    limit: Annotated[int, typer.Option("--limit", help="At most this many events.")] = 1000,
    json_mode: JsonOption = False,
) -> None:
    """Show audit events, oldest first (the query is itself audited)."""
    out = output(json_mode)
    query = AuditQuery(
        actor=actor, action=action, resource=resource, since=since, until=until, from_seq=from_seq, limit=limit
    )
    with open_cli_workspace() as ws:
        events = ws.audit.log(query)
    if json_mode:
        out.emit([_event_json(e) for e in events])
        return
    out.table(["seq", "time (UTC)", "actor", "action", "resource", "outcome", "reason"], [_row(e) for e in events])


def _event_json(event: AuditEvent) -> dict[str, object]:
    """The event exactly as the log hashes it (docs/audit.md), plus its RFC 6962 leaf hash."""
    body = encoding.encode(event)
    document: dict[str, object] = json.loads(body)
    document["leaf_hash"] = merkle.leaf_hash(body).hex()
    return document


def _row(event: AuditEvent) -> tuple[object, ...]:
    rec = event.record
    resource = f"{rec.resource.type}:{rec.resource.id}"
    return (event.seq, event.ts, rec.actor, rec.action, resource, rec.outcome.value, rec.reason)


@audit_app.command("verify")
def verify(json_mode: JsonOption = False) -> None:
    """Recompute every leaf, tree node and checkpoint signature; exit 1 naming the first bad seq."""
    out = output(json_mode)
    with open_cli_workspace() as ws:
        report = ws.audit.verify()
    if json_mode:
        out.emit(_verify_json(report))
    else:
        _show_verify(out, report, "audit log")
    if not report.ok:
        raise typer.Exit(1)


def _verify_json(report: VerifyReport) -> dict[str, object]:
    return {
        "ok": report.ok,
        "size": report.size,
        "root": report.root.hex(),
        "checkpoints": report.checkpoints,
        "first_bad_seq": report.first_bad_seq,
        "problems": [_problem_json(p) for p in report.problems],
    }


def _problem_json(problem: Problem) -> dict[str, object]:
    return {"kind": problem.kind, "seq": problem.seq, "message": problem.message}


def _show_verify(out: Output, report: VerifyReport, what: str) -> None:
    if report.ok:
        out.line(Text(f"OK: {what} of {report.size} events verified", style="green"))
        out.line(f"root {report.root.hex()}; {report.checkpoints} signed checkpoints checked")
        return
    first = report.first_bad_seq
    where = f" (first bad seq: {first})" if first is not None else ""
    out.line(Text(f"FAILED: {what} does not verify{where}", style="bold red"))
    _show_problems(out, report.problems)


def _show_problems(out: Output, problems: list[Problem]) -> None:
    for problem in problems[:50]:
        out.line(Text(f"  - [{problem.kind}] {safe(problem.message, 500)}"))
    if len(problems) > 50:
        out.line(f"  ... and {len(problems) - 50} more")


@audit_app.command("prove")
def prove(
    seq: Annotated[int, typer.Argument(help="The event's sequence number (from 0).")],
    json_mode: JsonOption = False,
) -> None:
    """Print an inclusion proof for one event and the signed checkpoint it verifies against."""
    out = output(json_mode)
    with open_cli_workspace() as ws:
        proof = ws.audit.prove(seq)
    if json_mode:
        out.emit(
            {
                "seq": proof.seq,
                "leaf_hash": proof.leaf.hex(),
                "tree_size": proof.size,
                "root": proof.root.hex(),
                "root_base64": base64.b64encode(proof.root).decode(),
                "proof": [p.hex() for p in proof.proof],
                "checkpoint": proof.checkpoint,
                "signed": proof.signed,
                "verified": proof.verified,
            }
        )
    else:
        out.line(f"event {proof.seq} leaf {proof.leaf.hex()}")
        out.line(f"tree size {proof.size} root {proof.root.hex()}")
        for i, step in enumerate(proof.proof):
            out.line(f"  proof[{i}] {step.hex()}")
        out.line(proof.checkpoint or "no signed checkpoint covers this event yet: run `mlwarden audit checkpoint`")
        out.line(
            Text(
                "inclusion proof verifies" if proof.verified else "inclusion proof FAILED",
                style="green" if proof.verified else "bold red",
            )
        )
    if not proof.verified:
        raise typer.Exit(1)


@audit_app.command("checkpoint")
def checkpoint(
    export: Annotated[
        Path | None, typer.Option("--export", help="Witness folder to write the checkpoint into.")
    ] = None,
    json_mode: JsonOption = False,
) -> None:
    """Sign a checkpoint of the log now, and export it to a witness folder outside the database."""
    out = output(json_mode)
    with open_cli_workspace() as ws:
        stored = ws.audit.checkpoint(export)
    if json_mode:
        out.emit({"size": stored.size, "root": stored.root.hex(), "note": stored.note, "exported_to": export})
        return
    out.line(stored.note.rstrip("\n"))
    if export is not None:
        out.line(f"exported to {export}")


@audit_app.command("witness")
def witness(
    path: Annotated[Path, typer.Argument(help="A witness folder (or one checkpoint file) from --export.")],
    json_mode: JsonOption = False,
) -> None:
    """Check the log against every exported checkpoint (catches truncation and rewrites); exit 1 on failure."""
    out = output(json_mode)
    with open_cli_workspace() as ws:
        report, verified = ws.audit.witness(path)
    problems = verified.problems + report.problems
    if json_mode:
        out.emit(
            {
                "ok": not problems,
                "size": report.size,
                "checkpoints": report.checked,
                "problems": [_problem_json(p) for p in problems],
            }
        )
    elif problems:
        out.line(Text(f"FAILED: the log does not match {report.checked} exported checkpoints", style="bold red"))
        _show_problems(out, problems)
    else:
        out.line(
            Text(
                f"OK: the log ({report.size} events) extends all {report.checked} exported checkpoints",
                style="green",
            )
        )
    if problems:
        raise typer.Exit(1)
