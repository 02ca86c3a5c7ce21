"""Audit events and the actors that cause them."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import NewType

UserId = NewType("UserId", str)
TokenId = NewType("TokenId", str)

DetailValue = str | int | bool | None


class AuthMethod(StrEnum):
    TOKEN = "token"
    PASSWORD = "password"
    SYSTEM = "system"  # mlwarden itself, e.g. `mlwarden init` creating the first admin
    NONE = "none"  # an unauthenticated attempt


class Outcome(StrEnum):
    OK = "ok"
    DENIED = "denied"
    FAILED = "failed"  # something mlwarden had to do did not happen (e.g. exporting a checkpoint)


@dataclass(frozen=True)
class Actor:
    """Who is calling: a user authenticated somehow, plus where the call came from."""

    name: str
    auth_method: AuthMethod
    user_id: UserId | None = None
    is_admin: bool = False
    token_id: TokenId | None = None
    client: str = "sdk"
    request_id: str | None = None

    @property
    def credential(self) -> str | None:
        """What the audit log records as the credential used (never a secret)."""
        return f"token:{self.token_id}" if self.token_id is not None else None

    @property
    def authenticated(self) -> bool:
        return self.user_id is not None or self.auth_method is AuthMethod.SYSTEM


ANONYMOUS = Actor(name="anonymous", auth_method=AuthMethod.NONE)
SYSTEM = Actor(name="mlwarden", auth_method=AuthMethod.SYSTEM, is_admin=True, client="mlwarden")


@dataclass(frozen=True)
class Resource:
    """What an action is about. ``project`` is None for workspace-level resources.

    ``owner`` (the user a resource belongs to, e.g. a token's user) feeds the authorization decision;
    it is not part of the audit event.
    """

    type: str
    id: str
    project: str | None = None
    owner: UserId | None = None
    # Facts the decision needs that are read from the resource itself (never from the request), e.g.
    # ("author", user id) and ("required_role", "approver") of an approval request. Not audited.
    attributes: tuple[tuple[str, str], ...] = ()

    def attribute(self, name: str) -> str | None:
        return next((value for key, value in self.attributes if key == name), None)


@dataclass(frozen=True)
class AuditRecord:
    """An event before the log assigns it a sequence number and a timestamp."""

    actor: str
    auth_method: AuthMethod
    action: str
    resource: Resource
    outcome: Outcome
    reason: str | None = None
    digest_before: str | None = None
    digest_after: str | None = None
    request_id: str | None = None
    client: str | None = None
    details: dict[str, DetailValue] = field(default_factory=dict)
    credential: str | None = None  # which credential authenticated the actor, e.g. "token:<id>"


@dataclass(frozen=True)
class AuditEvent:
    """An event as stored: a record placed at ``seq`` (its leaf index) at time ``ts`` (UTC)."""

    seq: int
    ts: str
    record: AuditRecord
