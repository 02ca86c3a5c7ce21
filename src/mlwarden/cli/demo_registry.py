"""The registry step of `mlwarden demo`: the training run's model is registered (signed), evaluated on
the accepted data, promoted to staging at once, and to production only after bob, an approver who is not
its author, approves with TOTP; then it is loaded back, verified."""

from __future__ import annotations

from rich.text import Text

from mlwarden.cli.demo_access import enrolled_app
from mlwarden.cli.demo_data import DATASET, PROJECT
from mlwarden.cli.render import Output
from mlwarden.errors import PermissionDenied
from mlwarden.service.workspace import Workspace, open_workspace

MODEL = "diagnosis-classifier"


def register_and_promote(out: Output, alice: Workspace, bob_token: str) -> int:
    run = [r for r in alice.runs.list_runs(project=PROJECT) if r["status"] == "finished"][-1]
    made = alice.models.register(MODEL, "model.skops", run=run["id"], project=PROJECT)
    out.line(f"  registered {made['ref']} from run {run['id']}: {made['format']}, scan {made['scan']}, signed")
    measured = alice.models.evaluate(made["ref"], f"{DATASET}@4", project=PROJECT)
    out.line(f"  evaluated on {measured['dataset']}: accuracy {measured['metrics']['accuracy']:.3f}")
    staged = alice.models.promote(made["ref"], "staging", project=PROJECT)
    out.line(f"  staging: {staged['status']} (every requirement held: {len(staged['requirements'])} checked)")
    alice_app = enrolled_app(alice)
    pending = alice.models.promote(made["ref"], "production", project=PROJECT, totp=alice_app.code())
    out.line(f"  production: {pending['status']}, request {pending['request']} (alice's TOTP step-up given)")
    failures = _own_approval_refused(out, alice, pending["request"])
    with open_workspace(alice.root, token=bob_token, client="demo") as bob:
        bob_app = enrolled_app(bob)
        bob.approvals.approve(pending["request"], totp=bob_app.code(), comment="metrics and lineage reviewed")
    shown = alice.models.show(f"{MODEL}@production", project=PROJECT)
    model = alice.load_model(f"{MODEL}@production", project=PROJECT)
    ok = shown["version"] == made["version"] and shown["signature"]["status"] == "valid" and hasattr(model, "predict")
    style = "green" if ok else "bold red"
    out.line(
        Text(
            f"  bob approved with TOTP: {shown['ref']} in production, signature {shown['signature']['status']},"
            f" loaded back as {type(model).__name__}",
            style=style,
        )
    )
    return failures + (0 if ok else 1)


def _own_approval_refused(out: Output, alice: Workspace, request: str) -> int:
    try:
        alice.approvals.approve(request)
    except PermissionDenied as refused:
        out.line(
            Text(f"  alice approving her own promotion: refused ({refused.message.split(': ', 1)[-1]})", style="yellow")
        )
        return 0
    out.line(Text("  alice approved her own promotion: MISSED", style="bold red"))
    return 1
