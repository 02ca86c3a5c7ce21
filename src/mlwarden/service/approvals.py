"""Approval requests: the four-eyes mechanism other capabilities use.

A request is about one resource in one project and binds to the content digest the author asked about.
It needs N distinct approvers holding the required role, none of them its author (however connected:
another role, a token, admin rights); it expires; a newer request for the same resource supersedes it;
and its approval is void for any content other than the digest it bound to.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from importlib import import_module
from typing import Any

from sqlalchemy import Connection, insert, select, update

from mlwarden.access.roles import Role
from mlwarden.audit.clock import format_ts, utcnow
from mlwarden.domain.actions import Action
from mlwarden.domain.events import DetailValue, Resource, UserId
from mlwarden.errors import NotFound, UsageError
from mlwarden.service.context import ServiceContext
from mlwarden.service.door import Applied, Refusal, mutation
from mlwarden.service.projects import require_project
from mlwarden.store.tables import approval_requests, approval_votes, users

DEFAULT_LIFETIME = timedelta(days=7)
MAX_COMMENT = 4096
PENDING, APPROVED, REJECTED, EXPIRED, SUPERSEDED = "pending", "approved", "rejected", "expired", "superseded"

# What happens when a request of a kind is approved, run inside the approving transaction. What it returns
# joins the approval event's details (what was put into effect, for reconciliation).
OnApproved = Callable[[Connection, "ApprovalRequest", ServiceContext], dict[str, DetailValue] | None]
_ON_APPROVED: dict[str, OnApproved] = {}
# Where each kind's handler registers itself: imported on demand, so that approving in a process that never
# loaded (say) the data service still puts the approved change into effect.
_HANDLER_MODULES = {
    "dataset.change": "mlwarden.service.dataset_changes",
    "dataset.accept": "mlwarden.service.dataset_gate",
    "model.promote": "mlwarden.service.promotion",
}


def on_approved(kind: str, handler: OnApproved) -> None:
    _ON_APPROVED[kind] = handler


@dataclass(frozen=True)
class Vote:
    approver: str
    approver_id: UserId = field(repr=False)
    decision: str
    digest: str
    comment: str | None
    at: str


@dataclass(frozen=True)
class ApprovalRequest:
    id: str
    kind: str
    project: str
    resource_type: str
    resource_id: str
    digest: str
    author: str
    author_id: UserId = field(repr=False)
    required_count: int
    required_role: str
    status: str
    created_at: str
    expires_at: str
    decided_at: str | None
    payload: dict[str, Any]
    votes: list[Vote]

    @property
    def approvals(self) -> int:
        return sum(1 for vote in self.votes if vote.decision == APPROVED and vote.digest == self.digest)

    def resource(self) -> Resource:
        """The request as the door sees it: project, author and required role read from the request."""
        attributes = (("author", self.author_id), ("required_role", self.required_role), ("digest", self.digest))
        return Resource("approval_request", self.id, self.project, attributes=attributes)


def open_request(
    conn: Connection,
    *,
    kind: str,
    project: str,
    resource: Resource,
    digest: str,
    author_id: str | None,
    required_count: int = 1,
    required_role: Role = Role.APPROVER,
    payload: dict[str, Any] | None = None,
    lifetime: timedelta = DEFAULT_LIFETIME,
) -> str:
    """Open a request inside the caller's door transaction; it supersedes older pending ones.

    Its author must be a user (``author_id``): separation of duties is defined against one. A change made
    by mlwarden itself (the workspace ``init`` returns acts as mlwarden) cannot ask for approval.
    """
    if author_id is None:
        raise UsageError(
            "this change needs an approval request, and only a user can author one",
            hint="open the workspace with a user's token (`mlwarden login`, or MLWARDEN_TOKEN) and try again",
        )
    if required_count < 1:
        raise UsageError("an approval needs at least one approver")
    require_project(conn, project)
    now = utcnow()
    same = (approval_requests.c.kind == kind) & (approval_requests.c.resource_id == resource.id)
    conn.execute(
        update(approval_requests)
        .where(same, approval_requests.c.project == project, approval_requests.c.status == PENDING)
        .values(status=SUPERSEDED, decided_at=format_ts(now))
    )
    request_id = "apr_" + secrets.token_hex(8)
    conn.execute(
        insert(approval_requests).values(
            id=request_id,
            kind=kind,
            project=project,
            resource_type=resource.type,
            resource_id=resource.id,
            digest=digest,
            author_id=author_id,
            required_count=required_count,
            required_role=Role(required_role).value,
            status=PENDING,
            payload=json.dumps(payload or {}, sort_keys=True),
            created_at=format_ts(now),
            expires_at=format_ts(now + lifetime),
            decided_at=None,
        )
    )
    return request_id


def load_request(conn: Connection, request_id: str) -> ApprovalRequest:
    row = conn.execute(select(approval_requests).where(approval_requests.c.id == request_id)).mappings().first()
    if row is None:
        raise NotFound(f"no approval request {request_id!r}", hint="see `mlwarden approvals list`")
    names: dict[str, str] = dict(conn.execute(select(users.c.id, users.c.name)).all())
    votes = [
        Vote(
            names.get(v["approver_id"], v["approver_id"]),
            UserId(v["approver_id"]),
            v["decision"],
            v["digest"],
            v["comment"],
            v["at"],
        )
        for v in conn.execute(
            select(approval_votes).where(approval_votes.c.request_id == request_id).order_by(approval_votes.c.at)
        ).mappings()
    ]
    status = row["status"]
    if status == PENDING and row["expires_at"] <= format_ts(utcnow()):
        status = EXPIRED  # expiry needs no writer: it is read off the clock
    fields = {k: row[k] for k in ("id", "kind", "project", "resource_type", "resource_id", "digest")}
    return ApprovalRequest(
        **fields,
        author=names.get(row["author_id"], row["author_id"]),
        author_id=UserId(row["author_id"]),
        required_count=int(row["required_count"]),
        required_role=row["required_role"],
        status=status,
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        decided_at=row["decided_at"],
        payload=json.loads(row["payload"]),
        votes=votes,
    )


class ApprovalService:
    def __init__(self, ctx: ServiceContext, step_up: Callable[[str | None, Action, Resource], None]) -> None:
        self._ctx = ctx
        self._step_up = step_up

    def list(self, project: str | None = None, status: str | None = None) -> list[ApprovalRequest]:
        """Requests of a project (of every project, for a workspace admin), oldest first."""

        def fetch(conn: Connection) -> list[ApprovalRequest]:
            query = select(approval_requests.c.id).order_by(approval_requests.c.created_at)
            if project is not None:
                query = query.where(approval_requests.c.project == project)
            found = [load_request(conn, rid) for (rid,) in conn.execute(query)]
            return [r for r in found if status is None or r.status == status]

        target = Resource("approval_request", "*", project)
        if project is None and not self._ctx.actor.is_admin:
            raise UsageError("name a project with --project", hint="see `mlwarden project list`")
        return self._ctx.door.read(self._ctx.actor, Action.APPROVAL_LIST, target, fetch)

    def show(self, request_id: str) -> ApprovalRequest:
        def target(conn: Connection) -> Resource:
            request = load_request(conn, request_id)
            return Resource("approval_request", request.id, request.project)

        return self._ctx.door.read(self._ctx.actor, Action.APPROVAL_LIST, target, lambda c: load_request(c, request_id))

    @mutation
    def approve(self, request_id: str, *, totp: str | None = None, comment: str | None = None) -> ApprovalRequest:
        """Vote for a request (with a TOTP step-up); at N distinct approvals it is approved and applied."""
        return self._vote(Action.APPROVAL_APPROVE, APPROVED, request_id, totp, comment)

    @mutation
    def reject(self, request_id: str, *, comment: str | None = None) -> ApprovalRequest:
        """Reject a request: it is closed at once (saying no needs no step-up)."""
        return self._vote(Action.APPROVAL_REJECT, REJECTED, request_id, None, comment)

    def _vote(
        self, action: Action, decision: str, request_id: str, totp: str | None, comment: str | None
    ) -> ApprovalRequest:
        with self._ctx.db.read() as conn:
            try:
                known = load_request(conn, request_id)
            except NotFound:
                known = None
        if known is not None and totp is not None:
            self._step_up(totp, action, known.resource())

        def target(conn: Connection) -> Resource:
            return load_request(conn, request_id).resource()

        def apply(conn: Connection) -> Applied[ApprovalRequest]:
            request = load_request(conn, request_id)
            _refuse_closed_or_repeated(request, self._ctx.actor.user_id)
            conn.execute(
                insert(approval_votes).values(
                    request_id=request.id,
                    approver_id=self._ctx.actor.user_id,
                    decision=decision,
                    digest=request.digest,
                    comment=(comment or "")[:MAX_COMMENT] or None,
                    at=format_ts(utcnow()),
                )
            )
            effects = _settle(conn, load_request(conn, request_id), decision, self._ctx)
            final = load_request(conn, request_id)
            details: dict[str, DetailValue] = {
                "kind": request.kind,
                "decision": decision,
                "status": final.status,
                "approvals": final.approvals,
            }
            if final.status == APPROVED:  # what the approval put into effect, for reconciliation
                details["applied"] = f"{request.resource_type}:{request.resource_id}"
                details.update(effects or {})
            return Applied(final, digest_after=request.digest, details=details)

        return self._ctx.door.run(self._ctx.actor, action, target, apply)

    def valid(self, request_id: str, digest: str) -> bool:
        """Whether the request is approved for exactly this content: any other digest voids it."""
        request = self.show(request_id)
        return request.status == APPROVED and request.digest == digest and request.approvals >= request.required_count


def _refuse_closed_or_repeated(request: ApprovalRequest, approver: str | None) -> None:
    if request.status != PENDING:
        raise Refusal(f"request {request.id} is {request.status}, not pending")
    if any(vote.approver_id == approver for vote in request.votes):
        raise Refusal(f"a second vote on {request.id} by the same person does not count")


def _settle(
    conn: Connection, request: ApprovalRequest, decision: str, ctx: ServiceContext
) -> dict[str, DetailValue] | None:
    status = REJECTED if decision == REJECTED else (APPROVED if request.approvals >= request.required_count else None)
    if status is None:
        return None
    conn.execute(
        update(approval_requests)
        .where(approval_requests.c.id == request.id)
        .values(status=status, decided_at=format_ts(utcnow()))
    )
    if status == APPROVED and request.kind not in _ON_APPROVED and request.kind in _HANDLER_MODULES:
        import_module(_HANDLER_MODULES[request.kind])
    if status == APPROVED and request.kind in _ON_APPROVED:
        return _ON_APPROVED[request.kind](conn, request, ctx)
    return None
