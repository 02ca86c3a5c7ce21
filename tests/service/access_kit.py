"""Test kit for access control: users with roles and enrolled authenticators, and a clock to step."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pyotp

from mlwarden.service.workspace import Workspace
from tests.conftest import Env


class StepClock:
    """Time for the MFA code paths; each code asked for moves it to a fresh 30 s step."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float = 30) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class Person:
    name: str
    ws: Workspace
    secret: str
    clock: StepClock
    tokens: list[str] = field(default_factory=list)

    def code(self) -> str:
        """A fresh code: the clock moves one step first, as a person waiting for the next code would."""
        self.clock.advance()
        return pyotp.TOTP(self.secret).at(self.clock.now)


def person(
    env: Env, admin: Workspace, clock: StepClock, name: str, *, is_admin: bool = False, by: Person | None = None
) -> Person:
    """A user (added by the admin fixture's workspace) with a confirmed authenticator. Making an admin
    (and minting their token) takes step-ups: ``by`` is the enrolled admin who gives them."""
    if name != "admin":
        admin.users.add(name, admin=is_admin, totp=by.code() if is_admin and by else None)
        token = admin.tokens.create("tests", user=name, totp=by.code() if is_admin and by else None).plaintext
        ws = env.open(token)
    else:
        ws = env.open()
    enrollment = ws.mfa.enroll()
    someone = Person(name, ws, enrollment.secret, clock)
    ws.mfa.verify(someone.code())
    return someone
