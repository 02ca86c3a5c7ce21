"""The authorization decision, and the workspace-level policy of the foundation.

The permission table is data: one rule per action, deny by default. Project roles, separation of duties
and step-up MFA arrive as another ``Authorizer`` behind the same door, without touching the services.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from sqlalchemy import Connection

from mlwarden.domain.actions import Action
from mlwarden.domain.events import Actor, AuthMethod, Resource


class Rule(StrEnum):
    AUTHENTICATED = "any authenticated user"
    SELF = "the user the resource belongs to"
    SELF_OR_ADMIN = "the user the resource belongs to, or a workspace admin"
    ADMIN = "a workspace admin"
    SYSTEM = "mlwarden itself"


PERMISSIONS: Mapping[Action, Rule] = {
    Action.WORKSPACE_INIT: Rule.SYSTEM,
    Action.SCHEMA_UPGRADE: Rule.SYSTEM,
    Action.USER_ADD: Rule.ADMIN,
    Action.USER_LIST: Rule.ADMIN,
    Action.USER_DISABLE: Rule.ADMIN,
    Action.USER_SET_PASSWORD: Rule.SELF_OR_ADMIN,
    Action.TOKEN_CREATE: Rule.SELF_OR_ADMIN,
    Action.TOKEN_LIST: Rule.SELF_OR_ADMIN,
    Action.TOKEN_REVOKE: Rule.SELF_OR_ADMIN,
    Action.AUTH_LOGIN: Rule.AUTHENTICATED,
    Action.AUDIT_READ: Rule.ADMIN,
    Action.AUDIT_VERIFY: Rule.ADMIN,
    Action.AUDIT_CHECKPOINT: Rule.ADMIN,
    Action.STORE_VERIFY: Rule.ADMIN,
    # Only the user: an admin who enrolled someone else's authenticator would know their second factor.
    Action.MFA_ENROLL: Rule.SELF,
    Action.MFA_VERIFY: Rule.SELF,
    Action.MFA_STEP_UP: Rule.SELF,
    Action.MFA_STATUS: Rule.SELF_OR_ADMIN,
    Action.MFA_DISABLE: Rule.SELF_OR_ADMIN,
}


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str  # what the audit log records
    shown: str | None = None  # what the caller is told, when it must say less than the reason

    @property
    def told(self) -> str:
        return self.shown if self.shown is not None else self.reason


# Told to a non-admin for both "someone else's" and "no such thing", so a denial reveals neither.
NOT_FOUND_OR_NOT_YOURS = "not found, or not yours"


class Authorizer(Protocol):
    def decide(self, conn: Connection, actor: Actor, action: Action, resource: Resource) -> Decision: ...


class WorkspacePolicy:
    """Admins and ordinary users, per the PERMISSIONS table."""

    def __init__(self, permissions: Mapping[Action, Rule] = PERMISSIONS) -> None:
        self.permissions = permissions

    def decide(self, conn: Connection, actor: Actor, action: Action, resource: Resource) -> Decision:
        rule = self.permissions.get(action)
        if rule is None:
            return Decision(False, f"no permission rule for {action} (deny by default)")
        if actor.auth_method is AuthMethod.SYSTEM:
            return Decision(True, "mlwarden itself")
        if not actor.authenticated:
            return Decision(False, "not authenticated")
        if rule is Rule.SYSTEM:
            return Decision(False, f"{action} is done by mlwarden itself, not by users")
        own = resource.owner is not None and resource.owner == actor.user_id
        if rule is Rule.SELF:
            return Decision(True, "allowed: own resource") if own else Decision(False, f"{action} needs {rule}")
        if rule is Rule.AUTHENTICATED or actor.is_admin:
            return Decision(True, f"allowed: {rule}")
        if rule is Rule.SELF_OR_ADMIN and own:
            return Decision(True, "allowed: own resource")
        shown = NOT_FOUND_OR_NOT_YOURS if rule is Rule.SELF_OR_ADMIN else None
        return Decision(False, f"{action} needs {rule}", shown)
