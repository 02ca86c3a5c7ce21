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

from mlwarden.access.policy import NOT_FOUND_OR_NOT_YOURS, Authorizer, Decision
from mlwarden.audit.log import AuditLog
from mlwarden.domain.actions import Action
from mlwarden.domain.events import Actor, AuditRecord, AuthMethod, DetailValue, Outcome, Resource
from mlwarden.errors import AuthenticationError, NotFound, PermissionDenied
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


class Refusal(Exception):
    """Raised by a change when a rule about the resource's state refuses it (already voted, expired...).

    The door rolls the change back, audits the attempt as denied with this reason, and raises
    PermissionDenied: a refusal is a decision, and every decision is in the log.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Denied(Exception):
    def __init__(self, decision: Decision) -> None:
        super().__init__(decision.reason)
        self.decision = decision


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

    def record_in(
        self, conn: Connection, actor: Actor, action: Action, resource: Resource, applied: Applied[T]
    ) -> None:
        """Authorize and audit a change the caller made in its own write transaction ``conn``.

        For the one change the door cannot wrap: a schema migration, which must run in Alembic's
        transaction. The change and its event still commit together.
        """
        decision = self.authorizer.decide(conn, actor, action, resource)
        if not decision.allowed:
            raise _denial_error(actor, action, decision.told)
        self.log.append(conn, _record(actor, action, resource, applied))

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
                resource = _resolve(conn, actor, action, target)
                decision = self.authorizer.decide(conn, actor, action, resource)
                if not decision.allowed:
                    raise _Denied(decision)
                try:
                    yield conn, resource
                except Refusal as refusal:
                    raise _Denied(Decision(False, refusal.reason)) from refusal
        except _Denied as denied:
            if resource is None:  # the target itself was not found
                resource = Resource(type=action.value.split(".")[0], id="(not found)")
            self.record_denial(actor, action, resource, denied.decision.reason)
            raise _denial_error(actor, action, denied.decision.told) from None

    def record_denial(self, actor: Actor, action: Action, resource: Resource, reason: str) -> None:
        # Whatever a denied caller sent is kept, but bounded: an attempt must not be able to make its own
        # audit event too large to store (and so go unaudited).
        record = AuditRecord(
            actor=_bounded(actor.name),
            auth_method=actor.auth_method,
            action=action.value,
            resource=Resource(_bounded(resource.type), _bounded(resource.id), resource.project),
            outcome=Outcome.DENIED,
            reason=_bounded(reason, MAX_DENIED_REASON),
            request_id=actor.request_id,
            client=actor.client,
            credential=actor.credential,
        )
        with self.db.write() as conn:
            self.log.append(conn, record)


MAX_DENIED_FIELD = 256 * 1024  # three such fields and the rest stay under the 1 MiB event limit
MAX_DENIED_REASON = 4 * 1024


def _bounded(value: str, limit: int = MAX_DENIED_FIELD) -> str:
    if len(value) <= limit:
        return value
    return value[:limit] + f"…[+{len(value) - limit} chars not stored]"


def _resolve(conn: Connection, actor: Actor, action: Action, target: Target) -> Resource:
    """The resource, read inside the transaction. To anyone but an admin, "no such thing" is a denial:
    otherwise a probe could tell which users or tokens exist from the error it gets."""
    if not callable(target):
        return target
    try:
        return target(conn)
    except NotFound as missing:
        if actor.is_admin or actor.auth_method is AuthMethod.SYSTEM:
            raise
        raise _Denied(Decision(False, f"not found ({missing})", NOT_FOUND_OR_NOT_YOURS)) from missing


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
