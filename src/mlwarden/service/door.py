"""The one door: authorize -> change -> audit, in one database transaction (DESIGN invariant 1).

Every service method that changes state, or hands out content, goes through ``Door.run`` and is marked
with ``@mutation`` or ``@access`` so a test can enumerate them and prove each writes exactly one audit
event. A denied attempt is rolled back and then audited on its own, with the reason.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Generic, ParamSpec, TypeVar

from sqlalchemy import Connection

from mlwarden.access.policy import Authorizer
from mlwarden.audit.log import AuditLog
from mlwarden.domain.actions import Action
from mlwarden.domain.events import Actor, AuditRecord, DetailValue, Outcome, Resource
from mlwarden.errors import AuthenticationError, PermissionDenied
from mlwarden.store.db import Database

T = TypeVar("T")
P = ParamSpec("P")
Target = Resource | Callable[[Connection], Resource]

DOOR_KIND = "__mlwarden_door__"


def mutation(fn: Callable[P, T]) -> Callable[P, T]:
    """Mark a service method that changes state (it must write exactly one audit event)."""
    setattr(fn, DOOR_KIND, "mutation")
    return fn


def access(fn: Callable[P, T]) -> Callable[P, T]:
    """Mark a service method that hands out content (audited like a change)."""
    setattr(fn, DOOR_KIND, "access")
    return fn


@dataclass(frozen=True)
class Applied(Generic[T]):
    """What a change returns to the door: its value and what the audit event should say about it."""

    value: T
    resource: Resource | None = None  # when the change itself decides the id (a new user, say)
    digest_before: str | None = None
    digest_after: str | None = None
    details: dict[str, DetailValue] = field(default_factory=dict)


class _Denied(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Door:
    def __init__(self, db: Database, log: AuditLog, authorizer: Authorizer) -> None:
        self.db = db
        self.log = log
        self.authorizer = authorizer

    def run(self, actor: Actor, action: Action, target: Target, apply: Callable[[Connection], Applied[T]]) -> T:
        """Authorize, apply and audit in one write transaction; audit and raise on denial."""
        with self._authorized(self.db.write, actor, action, target) as (conn, resource):
            applied = apply(conn)
            self.log.append(conn, _record(actor, action, applied.resource or resource, applied))
            return applied.value

    def read(self, actor: Actor, action: Action, target: Target, fetch: Callable[[Connection], T]) -> T:
        """Authorize a read that hands out nothing sensitive: only a denial is audited."""
        with self._authorized(self.db.read, actor, action, target) as (conn, _resource):
            return fetch(conn)

    @contextmanager
    def _authorized(
        self,
        transaction: Callable[[], AbstractContextManager[Connection]],
        actor: Actor,
        action: Action,
        target: Target,
    ) -> Iterator[tuple[Connection, Resource]]:
        resource: Resource | None = target if isinstance(target, Resource) else None
        try:
            with transaction() as conn:
                resource = target(conn) if callable(target) else target
                decision = self.authorizer.decide(conn, actor, action, resource)
                if not decision.allowed:
                    raise _Denied(decision.reason)
                yield conn, resource
        except _Denied as denied:
            assert resource is not None  # noqa: S101 - set before any denial
            self.record_denial(actor, action, resource, denied.reason)
            raise _denial_error(actor, action, denied.reason) from None

    def record_denial(self, actor: Actor, action: Action, resource: Resource, reason: str) -> None:
        record = AuditRecord(
            actor=actor.name,
            auth_method=actor.auth_method,
            action=action.value,
            resource=resource,
            outcome=Outcome.DENIED,
            reason=reason,
            request_id=actor.request_id,
            client=actor.client,
            credential=actor.credential,
        )
        with self.db.write() as conn:
            self.log.append(conn, record)


def _denial_error(actor: Actor, action: Action, reason: str) -> Exception:
    if not actor.authenticated:
        return AuthenticationError(f"{action} needs a logged-in user")
    return PermissionDenied(f"{actor.name} may not {action}: {reason}", hint="ask a workspace admin")


def _record(actor: Actor, action: Action, resource: Resource, applied: Applied[T]) -> AuditRecord:
    return AuditRecord(
        actor=actor.name,
        auth_method=actor.auth_method,
        action=action.value,
        resource=resource,
        outcome=Outcome.OK,
        digest_before=applied.digest_before,
        digest_after=applied.digest_after,
        request_id=actor.request_id,
        client=actor.client,
        details=applied.details,
        credential=actor.credential,
    )
