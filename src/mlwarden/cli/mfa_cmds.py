"""The mfa group: enroll, verify, step-up, status, disable (TOTP, RFC 6238)."""

from __future__ import annotations

import io
from typing import Annotated

import segno
import typer

from mlwarden.cli.common import JsonOption, open_cli_workspace, output
from mlwarden.cli.render import safe

mfa_app = typer.Typer(help="TOTP second factor: authenticator apps, codes, step-ups.", no_args_is_help=True)

CodeArgument = Annotated[str, typer.Argument(help="The 6-digit code your authenticator app shows now.")]
UserOption = Annotated[str | None, typer.Option("--user", help="Another user's (admins only).")]


@mfa_app.command("enroll")
def mfa_enroll(json_mode: JsonOption = False) -> None:
    """Enroll an authenticator app for yourself; the secret is shown once (then confirm with `mfa verify`)."""
    out = output(json_mode)
    with open_cli_workspace() as ws:
        enrollment = ws.mfa.enroll()
    if json_mode:
        # Dataclass fields holding the secret are left out of generic rendering; here they are the point.
        out.emit({**_plain(enrollment), "uri": enrollment.uri, "secret": enrollment.secret})
        return
    qr = io.StringIO()
    segno.make(enrollment.uri, error="l").terminal(out=qr, compact=True)
    out.line("Scan this QR code with your authenticator app (shown once, stored only sealed):")
    out.line(qr.getvalue().rstrip("\n"))
    out.line(f"or add it by hand: {enrollment.uri}")
    out.line(f"  account {safe(enrollment.account)}, secret {enrollment.secret} (SHA-1, 6 digits, 30 s)")
    if enrollment.replaced:
        out.line("This replaces your earlier, unconfirmed enrollment.")
    out.line("Then confirm it: mlwarden mfa verify CODE")


@mfa_app.command("verify")
def mfa_verify(code: CodeArgument, json_mode: JsonOption = False) -> None:
    """Check a code of your authenticator; the first accepted code confirms the enrollment."""
    out = output(json_mode)
    with open_cli_workspace() as ws:
        ws.mfa.verify(code)
        status = ws.mfa.status()
    if json_mode:
        out.emit({"verified": True, "user": status.user, "confirmed": status.confirmed})
    else:
        out.line(f"Code accepted for {safe(status.user)}; the authenticator is confirmed.")


@mfa_app.command("step-up")
def mfa_step_up(
    code: CodeArgument,
    action: Annotated[str, typer.Option("--action", help="The action to allow, e.g. role.grant.")],
    resource: Annotated[str, typer.Option("--resource", help="The resource key the action will be checked on.")],
    json_mode: JsonOption = False,
) -> None:
    """Record a step-up: a fresh code allowing one ACTION on one RESOURCE key, once, within 5 minutes."""
    out = output(json_mode)
    with open_cli_workspace() as ws:
        grant = ws.mfa.step_up(code, action, resource)
    if json_mode:
        out.emit(grant)
    else:
        out.line(
            f"Step-up {grant.id}: {safe(grant.action)} on {safe(grant.resource_key)} "
            f"allowed once until {grant.expires_at}"
        )


@mfa_app.command("status")
def mfa_status(user: UserOption = None, json_mode: JsonOption = False) -> None:
    """Show whether you (or, as an admin, another user) have a confirmed authenticator."""
    out = output(json_mode)
    with open_cli_workspace() as ws:
        status = ws.mfa.status(user)
    if json_mode:
        out.emit(status)
        return
    state = "confirmed" if status.confirmed else "enrolled, not confirmed" if status.enrolled else "not enrolled"
    out.line(f"{safe(status.user)}: {state}")
    if status.locked_until is not None:
        out.line(f"locked until {status.locked_until} after {status.failures} refused codes")
    elif status.failures:
        out.line(f"{status.failures} refused codes since the last accepted one")
    if status.step_ups_open:
        out.line(f"{status.step_ups_open} step-up grant(s) open")


@mfa_app.command("disable")
def mfa_disable(
    user: UserOption = None,
    code: Annotated[
        str | None,
        typer.Option("--code", help="Your current code: for your own factor, or your step-up to reset another's."),
    ] = None,
    json_mode: JsonOption = False,
) -> None:
    """Remove an authenticator: your own with a current code, or another user's as an admin."""
    out = output(json_mode)
    with open_cli_workspace() as ws:
        name = user or ws.whoami().name
        ws.mfa.disable(user, code)
    if json_mode:
        out.emit({"user": name, "disabled": True})
    else:
        out.line(f"Removed the authenticator of {safe(name)}; its open step-ups are revoked.")


def _plain(value: object) -> dict[str, object]:
    from mlwarden.cli.render import jsonable

    data = jsonable(value)
    assert isinstance(data, dict)  # noqa: S101 - a dataclass
    return data
