"""The four-eyes step of `mlwarden demo`: a role grant that needs another admin, approved with TOTP.

The demo plays the authenticator app itself: it computes the codes from the secrets enrollment shows,
one 30 s step apart (within the window the server accepts), so it needs no waiting.
"""

from __future__ import annotations

import time
from datetime import timedelta

import pyotp
from rich.text import Text

from mlwarden.audit.clock import utcnow
from mlwarden.cli.render import Output
from mlwarden.errors import PermissionDenied
from mlwarden.service.workspace import Workspace, open_workspace

CAROL_PASSWORD = "carol-demo-password-not-for-production"


class _App:
    """An authenticator app: codes for the previous, current and next step, in turn, each used once
    (the server accepts one step either side). It starts clear of a 30 s boundary, so that all its
    codes are checked within the step they were made in."""

    def __init__(self, secret: str) -> None:
        self.totp = pyotp.TOTP(secret)
        self.offset = -30
        left = 30 - time.time() % 30
        if left < 5:
            time.sleep(left + 0.2)

    def code(self) -> str:
        code = self.totp.at(utcnow() + timedelta(seconds=self.offset))
        self.offset += 30
        return code

    def next_step(self) -> None:
        """Every code of this step and its neighbours is spent (each works once): wait for the next 30 s
        step, whose following step's code is then fresh."""
        time.sleep(30 - time.time() % 30 + 0.2)
        self.offset = 30


def enrolled_app(ws: Workspace) -> _App:
    """Enroll ``ws``'s user in TOTP with a fresh app, and confirm it."""
    app = _App(ws.mfa.enroll().secret)
    ws.mfa.verify(app.code())
    return app


def four_eyes(out: Output, admin: Workspace) -> int:
    """admin asks for bob to become an approver; admin's own approval is refused; carol approves, then
    makes alice the project's data steward and ML engineer (roles that need no second admin, only carol's
    step-up)."""
    admin_app = enrolled_app(admin)
    admin.projects.create("fraud", "card-fraud model")
    # Making an admin is a step-up too; carol then logs in with her own password.
    admin.users.add("carol", admin=True, password=CAROL_PASSWORD, totp=admin_app.code())
    with open_workspace(admin.root, token="", client="demo") as anonymous:
        carol_token = anonymous.login("carol", CAROL_PASSWORD).plaintext
    request = admin.roles.grant("bob", "approver", "fraud", totp=admin_app.code()).approval_request
    out.line(f"admin asked for bob to become an approver in fraud: request {request} (needs another admin)")
    failures = 0
    try:  # separation of duties is decided before any step-up: no code is needed to be refused
        admin.approvals.approve(request or "")
        out.line(Text("admin approved their own request: NOT refused", style="bold red"))
        failures += 1
    except PermissionDenied as refused:
        out.line(Text(f"admin approving it themselves: refused ({refused.message.split(': ', 1)[-1]})", style="yellow"))
    with open_workspace(admin.root, token=carol_token, client="demo") as carol:
        carol_app = enrolled_app(carol)
        approved = carol.approvals.approve(request or "", totp=carol_app.code(), comment="four eyes")
        carol.roles.grant("alice", "data_steward", "fraud", totp=carol_app.code())
        out.line("carol's next step-up needs a fresh TOTP code: waiting for the next 30 s step ...")
        carol_app.next_step()
        carol.roles.grant("alice", "ml_engineer", "fraud", totp=carol_app.code())
        roles = [(b.user, b.role) for b in carol.roles.list("fraud")]
    ok = approved.status == "approved" and ("bob", "approver") in roles and ("alice", "data_steward") in roles
    style = "green" if ok else "bold red"
    out.line(Text(f"carol approved with a TOTP step-up: request {approved.status}; fraud roles {roles}", style=style))
    return failures + (0 if ok else 1)
