"""`mlwarden demo`: the main job end to end, on a throw-away workspace, in seconds.

Each later capability adds its step here. Today: a workspace, users and tokens, a denied attempt, four
eyes with TOTP, a password login, three sources feeding a dataset (one poisoned) traced by diff and blame
and reverted, a checkpoint exported to a witness, `audit verify`, and then attacks by someone with write
access to the database or the blob folder: an edited event (caught by verify), a truncated log with a
recomputed tree (caught by the witness), an inserted admin (caught by reconciliation) and edited stored
rows (caught by `data verify`); a model file with a pickle trap is caught by the scanner before loading.
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.rule import Rule
from rich.text import Text

from mlwarden.audit import merkle
from mlwarden.cli import demo_data, demo_registry, demo_scan, demo_tracking
from mlwarden.cli.demo_access import four_eyes
from mlwarden.cli.render import Output
from mlwarden.errors import PermissionDenied
from mlwarden.service.init import init_workspace
from mlwarden.service.workspace import Workspace, open_workspace

DEMO_PASSWORD = "demo-password-not-for-production"


def demo(
    keep: Annotated[Path | None, typer.Option("--keep", help="Build the demo workspace here and keep it.")] = None,
) -> None:
    """Walk the main job on a temporary workspace and show each control catching its attack."""
    out = Output(False)
    started = time.perf_counter()
    base = keep or Path(tempfile.mkdtemp(prefix="mlwarden-demo-"))
    try:
        failures = _run(out, base)
    finally:
        if keep is None:
            shutil.rmtree(base, ignore_errors=True)
    out.console.print(Rule())
    elapsed = time.perf_counter() - started
    verdict = "every control behaved as expected" if not failures else f"{failures} step(s) misbehaved"
    out.line(Text(f"demo finished in {elapsed:.1f}s: {verdict}", style="bold green" if not failures else "bold red"))
    if failures:
        raise typer.Exit(1)


def _step(out: Output, title: str) -> None:
    out.console.print(Rule(Text(title, style="bold")))


def _run(out: Output, base: Path) -> int:
    failures = 0
    _step(out, "1. init: workspace, checkpoint key, first admin")
    init = init_workspace(base / "workspace", admin="admin", admin_password=DEMO_PASSWORD)
    init.workspace.close()
    root = init.workspace.root
    out.line(f"workspace {root}; admin token shown once: {init.token.plaintext[:16]}…")
    admin = open_workspace(root, token=init.token.plaintext, client="demo")
    alice_token = _people(out, admin)
    failures += _denied_attempt(out, root, alice_token)
    _step(out, "4. four eyes: a new approver needs another admin, with TOTP")
    failures += four_eyes(out, admin)
    bob_token = _login(out, root)
    with open_workspace(root, token=alice_token, client="demo") as alice:
        failures += _data(out, alice)
        _step(out, "10. a training run: the quarantined version refused, the accepted one used and recorded")
        failures += demo_tracking.train(out, alice, base)
        _step(out, "11. scan model files before anyone loads them")
        failures += demo_scan.scan_models(out, alice, base)
        _step(out, "12. the model registry: signed, evaluated, staged; production only with an approver's TOTP")
        failures += demo_registry.register_and_promote(out, alice, bob_token)
    witness = base / "witness"
    _step(out, "13. a signed checkpoint exported to a witness folder")
    cp = admin.audit.checkpoint(export=witness)
    out.line(cp.note.rstrip("\n"))
    failures += _verify_clean(out, admin, witness)
    admin.close()
    failures += _edit_attack(out, root, base, init.token.plaintext)
    failures += _truncate_attack(out, root, base, init.token.plaintext, witness)
    failures += _backdoor_attack(out, root, base, init.token.plaintext)
    _step(out, "18. attack: stored rows edited in the blob folder")
    failures += demo_data.tampered_segment(out, root, base, alice_token)
    return failures


def _data(out: Output, alice: Workspace) -> int:
    _step(out, "6. alice (data steward) ingests from three sources: every row keeps its provenance")
    digests = demo_data.ingest(out, alice)
    _step(out, "7. the ingestion gate: a label shift quarantined, a broken contract rejected")
    failures = demo_data.gate(out, alice)
    _step(out, "8. forensics: diff and blame trace the moved labels to one source; the detectors agree")
    failures += demo_data.forensics(out, alice)
    _step(out, "9. revert the poisoned source: a new version, recorded with what it undid")
    return failures + demo_data.revert(out, alice, digests)


def _people(out: Output, admin: Workspace) -> str:
    _step(out, "2. users and API tokens (stored only as hashes)")
    admin.users.add("alice")
    admin.users.add("bob", password=DEMO_PASSWORD)
    token = admin.tokens.create("laptop", user="alice")
    out.line(f"added alice and bob; alice's token {token.info.id} (secret shown once)")
    return token.plaintext


def _denied_attempt(out: Output, root: Path, alice_token: str) -> int:
    _step(out, "3. alice (not an admin) tries to add an admin: denied, audited")
    with open_workspace(root, token=alice_token, client="demo") as alice:
        try:
            alice.users.add("mallory", admin=True)
        except PermissionDenied as denied:
            out.line(Text(f"denied: {denied}", style="yellow"))
            return 0
    out.line(Text("alice was NOT denied", style="bold red"))
    return 1


def _login(out: Output, root: Path) -> str:
    _step(out, "5. bob logs in with his password (argon2id), gets a token")
    with open_workspace(root, client="demo") as anonymous:
        token = anonymous.login("bob", DEMO_PASSWORD)
    out.line(f"bob logged in; token {token.info.id}")
    return token.plaintext


def _verify_clean(out: Output, admin: Workspace, witness: Path) -> int:
    _step(out, "14. the audit log; verify and witness on the untouched workspace")
    events = admin.audit.log()
    for event in events[-8:]:
        rec = event.record
        out.line(
            f"  {event.seq:>3} {rec.actor:<10} {rec.action:<18} {rec.resource.type}:{rec.resource.id} {rec.outcome}"
        )
    report = admin.audit.verify()
    witnessed, _ = admin.audit.witness(witness)
    ok = report.ok and witnessed.ok
    out.line(
        Text(
            f"verify: {'OK' if report.ok else 'FAILED'} ({report.size} events); "
            f"witness: {'OK' if witnessed.ok else 'FAILED'}",
            style="green" if ok else "bold red",
        )
    )
    return 0 if ok else 1


def _tampered_copy(root: Path, base: Path, name: str) -> Path:
    copy = base / name
    shutil.copytree(root, copy)
    return copy


def _edit_attack(out: Output, root: Path, base: Path, token: str) -> int:
    _step(out, "15. attack: an insider edits one event in the database")
    copy = _tampered_copy(root, base, "tampered-edit")
    with sqlite3.connect(copy / ".mlwarden" / "metadata.db") as db:
        db.execute("DROP TRIGGER audit_events_no_update")
        db.execute(
            "UPDATE audit_events SET body = CAST(replace(body, 'alice', 'alicf') AS BLOB), actor = 'alicf' "
            "WHERE seq = 6"
        )
    with open_workspace(copy, token=token, client="demo") as ws:
        report = ws.audit.verify()
    caught = not report.ok
    style = "green" if caught else "bold red"
    out.line(
        Text(
            f"verify {'caught it' if caught else 'MISSED it'}: first bad seq {report.first_bad_seq}",
            style=style,
        )
    )
    for problem in report.problems[:3]:
        out.line(f"  - {problem.message}")
    return 0 if caught else 1


def _truncate_attack(out: Output, root: Path, base: Path, token: str, witness: Path) -> int:
    _step(out, "16. attack: bob's login erased, with its token, tree and records")
    copy = _tampered_copy(root, base, "tampered-truncate")
    with sqlite3.connect(copy / ".mlwarden" / "metadata.db") as db:
        login = db.execute("SELECT seq, resource_id FROM audit_events WHERE action = 'auth.login'").fetchone()
        _rewrite_tail(db, int(login[0]))
        db.execute("DELETE FROM api_tokens WHERE id = ?", (login[1],))
    with open_workspace(copy, token=token, client="demo") as ws:
        verified = ws.audit.verify()
        out.line(f"verify, with the signer's record: {'OK' if verified.ok else 'caught it'}")
        (copy / ".mlwarden" / "keys" / "checkpoint.last").unlink()
        verified = ws.audit.verify()
        witnessed, _ = ws.audit.witness(witness)
    caught = not witnessed.ok
    out.line(f"verify, record removed too: {'OK: the rewrite is self-consistent' if verified.ok else 'caught it'}")
    style = "green" if caught else "bold red"
    out.line(Text(f"witness {'caught it' if caught else 'MISSED it'}:", style=style))
    for problem in witnessed.problems[:3]:
        out.line(f"  - {problem.message}")
    return 0 if caught else 1


def _backdoor_attack(out: Output, root: Path, base: Path, token: str) -> int:
    _step(out, "17. attack: an admin inserted straight into the database")
    copy = _tampered_copy(root, base, "tampered-backdoor")
    with sqlite3.connect(copy / ".mlwarden" / "metadata.db") as db:
        db.execute(
            "INSERT INTO users (id, name, is_admin, disabled, password_hash, created_at) "
            "VALUES ('usr_mallory', 'mallory', 1, 0, NULL, '2026-01-01T00:00:00.000000Z')"
        )
    with open_workspace(copy, token=token, client="demo") as ws:
        report = ws.audit.verify()
    found = [p.message for p in report.problems if p.kind == "state"]
    out.line(
        Text(
            f"verify {'caught it' if found else 'MISSED it'}: the credential tables disagree with the log",
            style="green" if found else "bold red",
        )
    )
    for message in found[:3]:
        out.line(f"  - {message}")
    return 0 if found else 1


def _rewrite_tail(db: sqlite3.Connection, keep: int) -> None:
    """Delete events >= keep, then make nodes and stored checkpoints consistent with what is left."""
    for table in ("audit_events", "audit_nodes", "audit_checkpoints"):
        db.execute(f"DROP TRIGGER {table}_no_delete")
    db.execute("DELETE FROM audit_events WHERE seq >= ?", (keep,))
    db.execute("DELETE FROM audit_nodes")
    db.execute("DELETE FROM audit_checkpoints WHERE size > ?", (keep,))
    leaves = [bytes(row[0]) for row in db.execute("SELECT leaf FROM audit_events ORDER BY seq")]
    db.executemany("INSERT INTO audit_nodes(level, idx, hash) VALUES (?, ?, ?)", merkle.perfect_nodes(leaves))
