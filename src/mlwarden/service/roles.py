"""Role bindings: who holds which role in which project.

Changing bindings is sensitive: it needs a TOTP step-up. Granting approver or admin changes who can
approve or administer, so it only opens an approval request that another admin must approve (with their
own step-up); nobody escalates themselves.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Connection, delete, insert, select

from mlwarden.access.roles import PRIVILEGED_ROLES, Role
from mlwarden.audit.clock import format_ts, utcnow
from mlwarden.domain.actions import Action
from mlwarden.domain.events import DetailValue, Resource
from mlwarden.errors import AlreadyExists, NotFound, UsageError
from mlwarden.service.approvals import ApprovalRequest, on_approved, open_request
from mlwarden.service.context import ServiceContext
from mlwarden.service.door import Applied, Refusal, mutation
from mlwarden.service.projects import require_project
from mlwarden.service.users import find_user
from mlwarden.store.tables import role_bindings, users

ROLE_GRANT_KIND = "role.grant"


@dataclass(frozen=True)
class Binding:
    project: str
    user: str
    role: str
    granted_at: str


@dataclass(frozen=True)
class GrantResult:
    """A grant applied at once, or (for approver and admin) the approval request it opened."""

    binding: Binding | None
    approval_request: str | None


def binding_resource(project: str, user: str, role: Role) -> Resource:
    """A binding as a resource; its digest is what a step-up and an approval bind to."""
    spec = f"{project}\n{user}\n{role.value}".encode()
    digest = "sha256:" + hashlib.sha256(spec).hexdigest()
    return Resource("role_binding", f"{project}/{user}/{role.value}", project, attributes=(("digest", digest),))


def _held(conn: Connection, project: str, user: str, role: Role) -> Binding | None:
    """The binding as it stands, or None."""
    person = find_user(conn, user)
    granted_at = conn.execute(
        select(role_bindings.c.granted_at).where(
            role_bindings.c.project == project, role_bindings.c.user_id == person.id, role_bindings.c.role == role.value
        )
    ).scalar()
    return None if granted_at is None else Binding(project, user, role.value, granted_at)


def _insert_binding(conn: Connection, project: str, user: str, role: Role) -> Binding:
    person = find_user(conn, user)
    if _held(conn, project, user, role) is not None:
        raise Refusal(f"{user} already holds {role.value} in {project}")
    binding = Binding(project=project, user=user, role=role.value, granted_at=format_ts(utcnow()))
    conn.execute(
        insert(role_bindings).values(project=project, user_id=person.id, role=role.value, granted_at=binding.granted_at)
    )
    return binding


def _apply_approved_grant(conn: Connection, request: ApprovalRequest, _ctx: object) -> None:
    spec = request.payload
    role = Role(spec["role"])
    expected = binding_resource(spec["project"], spec["user"], role).attribute("digest")
    if expected != request.digest:  # the approval binds to this exact binding, nothing else
        raise Refusal(f"approval request {request.id} does not match the binding it names")
    _insert_binding(conn, spec["project"], spec["user"], role)


on_approved(ROLE_GRANT_KIND, _apply_approved_grant)


class RoleService:
    def __init__(self, ctx: ServiceContext, step_up: Callable[[str | None, Action, Resource], None]) -> None:
        self._ctx = ctx
        self._step_up = step_up

    @mutation
    def grant(self, user: str, role: str, project: str, *, totp: str | None = None) -> GrantResult:
        """Grant a role (with a TOTP step-up); approver and admin go through another admin's approval."""
        wanted = _role(role)
        resource = binding_resource(project, user, wanted)
        self._step_up(totp, Action.ROLE_GRANT, resource)

        def target(conn: Connection) -> Resource:
            require_project(conn, project)
            find_user(conn, user)
            return resource

        def apply(conn: Connection) -> Applied[GrantResult]:
            details: dict[str, DetailValue] = {"user": user, "role": wanted.value, "project": project}
            if _held(conn, project, user, wanted) is not None:
                raise AlreadyExists(f"{user} already holds {wanted.value} in {project}")
            if wanted not in PRIVILEGED_ROLES:
                binding = _insert_binding(conn, project, user, wanted)
                return Applied(GrantResult(binding, None), digest_after=resource.attribute("digest"), details=details)
            request_id = open_request(
                conn,
                kind=ROLE_GRANT_KIND,
                project=project,
                resource=resource,
                digest=resource.attribute("digest") or "",
                author_id=self._ctx.actor.user_id,
                required_role=Role.ADMIN,
                payload={"project": project, "user": user, "role": wanted.value},
            )
            details |= {"approval_request": request_id, "pending": True}
            return Applied(GrantResult(None, request_id), details=details)

        return self._ctx.door.run(self._ctx.actor, Action.ROLE_GRANT, target, apply)

    @mutation
    def revoke(self, user: str, role: str, project: str, *, totp: str | None = None) -> Binding:
        """Take a role away at once (with a TOTP step-up): the very next call of that user sees it gone."""
        wanted = _role(role)
        resource = binding_resource(project, user, wanted)
        self._step_up(totp, Action.ROLE_REVOKE, resource)

        def target(conn: Connection) -> Resource:
            require_project(conn, project)
            return resource

        def apply(conn: Connection) -> Applied[Binding]:
            person = find_user(conn, user)
            held = _held(conn, project, user, wanted)
            removed = conn.execute(
                delete(role_bindings).where(
                    role_bindings.c.project == project,
                    role_bindings.c.user_id == person.id,
                    role_bindings.c.role == wanted.value,
                )
            )
            if removed.rowcount != 1:
                raise NotFound(f"{user} holds no {wanted.value} role in {project}")
            assert held is not None  # noqa: S101 - the row just deleted
            details: dict[str, DetailValue] = {"user": user, "role": wanted.value, "project": project}
            return Applied(held, digest_before=resource.attribute("digest"), details=details)

        return self._ctx.door.run(self._ctx.actor, Action.ROLE_REVOKE, target, apply)

    def list(self, project: str) -> list[Binding]:
        """The role bindings of a project."""

        def target(conn: Connection) -> Resource:
            require_project(conn, project)
            return Resource("role_binding", "*", project)

        def fetch(conn: Connection) -> list[Binding]:
            query = (
                select(role_bindings.c.project, users.c.name, role_bindings.c.role, role_bindings.c.granted_at)
                .join(users, users.c.id == role_bindings.c.user_id)
                .where(role_bindings.c.project == project)
                .order_by(users.c.name, role_bindings.c.role)
            )
            return [Binding(*row) for row in conn.execute(query)]

        return self._ctx.door.read(self._ctx.actor, Action.ROLE_LIST, target, fetch)


def _role(name: str) -> Role:
    try:
        return Role(name)
    except ValueError:
        known = ", ".join(role.value for role in Role)
        raise UsageError(f"unknown role {name!r}", hint=f"roles: {known}") from None
