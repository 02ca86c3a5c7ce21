"""The authorization decision, and the workspace-level policy of the foundation.

The permission table is data: one rule per action, deny by default. Project roles, separation of duties
and step-up MFA arrive as another ``Authorizer`` behind the same door, without touching the services.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from sqlalchemy import Connection, select

from mlwarden.access.roles import PROJECT_MATRIX, STEP_UP_ACTIONS, WORKSPACE_ADMIN_ACTIONS, Role
from mlwarden.domain.actions import Action
from mlwarden.domain.events import Actor, AuthMethod, Resource
from mlwarden.store.tables import role_bindings


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
    Action.PROJECT_CREATE: Rule.ADMIN,
    Action.PROJECT_LIST: Rule.AUTHENTICATED,
    # Allowing a global lets every pickle that uses it through the scanner: admins, with a step-up.
    Action.SCAN_ALLOW: Rule.ADMIN,
    Action.SCAN_DISALLOW: Rule.ADMIN,
    Action.SCAN_ALLOWLIST: Rule.AUTHENTICATED,
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


StepUpCheck = Callable[[Connection, str, str, str], bool]
"""(conn, user id, action, resource key) -> whether a fresh TOTP step-up for exactly that was consumed."""


def step_up_key(resource: Resource) -> str:
    """What a step-up is bound to: the resource and the digest of its content (when it has one)."""
    return f"{resource.type}:{resource.id}@{resource.attribute('digest') or ''}"


class RolePolicy:
    """The one decision function: workspace rules, project roles, separation of duties, step-up.

    Project-scoped actions are decided by the project roles of the actor in the project of the resource
    (read from the resource, never from the request). Approvals also check the request's own required
    role and author. Sensitive actions then need a step-up, consumed here, inside the change's transaction.
    """

    def __init__(self, step_up: StepUpCheck | None = None, workspace: WorkspacePolicy | None = None) -> None:
        self.step_up = step_up
        self.workspace = workspace or WorkspacePolicy()

    def decide(self, conn: Connection, actor: Actor, action: Action, resource: Resource) -> Decision:
        if action in PROJECT_MATRIX:
            decision = self._project_decision(conn, actor, action, resource)
        else:
            decision = self.workspace.decide(conn, actor, action, resource)
        if not decision.allowed or not needs_step_up(actor, action, resource) or actor.auth_method is AuthMethod.SYSTEM:
            return decision
        return self._stepped_up(conn, actor, action, resource, decision)

    def _project_decision(self, conn: Connection, actor: Actor, action: Action, resource: Resource) -> Decision:
        if actor.auth_method is AuthMethod.SYSTEM:
            return Decision(True, "mlwarden itself")
        if actor.user_id is None:
            return Decision(False, "not authenticated")
        if action in WORKSPACE_ADMIN_ACTIONS and actor.is_admin and resource.project is None:
            return Decision(True, "allowed: workspace admin, all projects")
        if resource.project is None:
            return Decision(False, f"{action} needs a project")
        if action in (Action.APPROVAL_APPROVE, Action.APPROVAL_REJECT):
            return self._vote_decision(conn, actor, action, resource)
        if action in WORKSPACE_ADMIN_ACTIONS and actor.is_admin:
            return Decision(True, "allowed: workspace admin")
        held = roles_of(conn, actor.user_id, resource.project)
        allowed = PROJECT_MATRIX[action]
        if held & allowed:
            return Decision(True, f"allowed: {', '.join(sorted(held & allowed))} in {resource.project}")
        needed = ", ".join(sorted(allowed))
        return Decision(False, f"{action} in project {resource.project} needs one of: {needed}", NOT_FOUND_OR_NOT_YOURS)

    def _vote_decision(self, conn: Connection, actor: Actor, action: Action, resource: Resource) -> Decision:
        # Separation of duties first: however they are connected (another role, a token, admin rights),
        # the author of a change never votes on it.
        if resource.attribute("author") == actor.user_id:
            return Decision(False, "nobody approves what they authored")
        assert actor.user_id is not None and resource.project is not None  # noqa: S101 - checked by caller
        required = Role(resource.attribute("required_role") or Role.APPROVER)
        if required is Role.ADMIN and actor.is_admin:
            return Decision(True, "allowed: workspace admin, as the request requires an admin")
        if required in roles_of(conn, actor.user_id, resource.project):
            return Decision(True, f"allowed: {required} in {resource.project}")
        return Decision(False, f"{action} here needs the {required} role in {resource.project}", NOT_FOUND_OR_NOT_YOURS)

    def _stepped_up(
        self, conn: Connection, actor: Actor, action: Action, resource: Resource, decision: Decision
    ) -> Decision:
        key = step_up_key(resource)
        if self.step_up is not None and actor.user_id is not None and self.step_up(conn, actor.user_id, action, key):
            return Decision(True, decision.reason + "; TOTP step-up verified")
        return Decision(
            False,
            f"{action} needs a TOTP step-up for {key} within the last 5 minutes",
            f"{action} needs a fresh TOTP code for this change (a step-up)",
        )


def needs_step_up(actor: Actor, action: Action, resource: Resource) -> bool:
    """Sensitive changes: the ones in STEP_UP_ACTIONS, and whatever makes or takes over an admin —
    adding an admin, minting a token for or setting the password of another admin, resetting someone
    else's second factor. Without this, one stolen admin token could add two sock-puppet admins who
    then approve each other."""
    if action in STEP_UP_ACTIONS:
        return True
    if action is Action.MODEL_PROMOTE:  # what reaches production is asked for with a second factor
        return resource.attribute("stage") == "production"
    if action is Action.DATA_TRUST:  # marking rows trusted, not withdrawing the mark
        return resource.attribute("digest") is not None
    others = resource.owner != actor.user_id
    if action is Action.MFA_DISABLE:
        return others
    if action is Action.USER_ADD:
        return resource.attribute("admin") == "true"
    if action in (Action.TOKEN_CREATE, Action.USER_SET_PASSWORD):
        return others and resource.attribute("admin") == "true"
    return False


def roles_of(conn: Connection, user_id: str, project: str) -> frozenset[Role]:
    rows = conn.execute(
        select(role_bindings.c.role).where(role_bindings.c.user_id == user_id, role_bindings.c.project == project)
    )
    return frozenset(Role(role) for (role,) in rows)
