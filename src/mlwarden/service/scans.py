"""The model scanner inside a workspace: its allow-list extended by the workspace, through the door.

The packaged allow-list covers what common ML libraries pickle. A team with its own classes (a custom
layer, a tokenizer) adds them here; each addition is an admin's decision with a TOTP step-up, audited,
and reconciled with the log by `audit verify`, since one line here lets every pickle using that global
through the gate.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection, delete, insert, select

from mlwarden.audit.clock import format_ts, utcnow
from mlwarden.domain.actions import Action
from mlwarden.domain.events import Resource
from mlwarden.errors import AlreadyExists, NotFound, UsageError
from mlwarden.scan import AllowList, GlobalRef, Role, ScanPolicy, ScanReport, scan_path
from mlwarden.service.context import ServiceContext
from mlwarden.service.door import Applied, mutation
from mlwarden.store.tables import scan_allowlist

MAX_REASON = 1024
StepUp = Callable[[str | None, Action, Resource], None]


@dataclass(frozen=True)
class AllowedGlobal:
    name: str  # module:qualname
    role: str  # call, class or ref
    reason: str
    added_by: str
    added_at: str


def allowlist_resource(name: str) -> Resource:
    return Resource("scan_allowlist", name)


def canonical_global(text: str) -> str:
    """``module:qualname`` for a global written ``module:name`` or ``module.name``."""
    try:
        ref = GlobalRef.parse(text.strip())
    except ValueError as exc:
        raise UsageError(str(exc), hint="write a global as module:name, e.g. mypkg.layers:Custom") from None
    if len(str(ref)) > 500 or not all(part.isidentifier() for part in (*ref.module.split("."), *ref.name.split("."))):
        raise UsageError(f"not a Python global: {text[:80]!r}", hint="write a global as module:name")
    return f"{ref.module}:{ref.name}"


class ScanService:
    def __init__(self, ctx: ServiceContext, step_up: StepUp) -> None:
        self._ctx = ctx
        self._step_up = step_up

    @mutation
    def allow(self, name: str, *, role: str = "call", reason: str, totp: str | None = None) -> AllowedGlobal:
        """Add a global to this workspace's allow-list (admins, with a TOTP step-up)."""
        name = canonical_global(name)
        try:
            role = Role.parse(role).name.lower()
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        if not reason.strip():
            raise UsageError("say why this global is safe to load", hint="--reason 'our own layer, reviewed in #123'")
        self._step_up(totp, Action.SCAN_ALLOW, allowlist_resource(name))
        entry = AllowedGlobal(name, role, reason[:MAX_REASON], self._ctx.actor.name, format_ts(utcnow()))

        def apply(conn: Connection) -> Applied[AllowedGlobal]:
            if conn.execute(select(scan_allowlist.c.role).where(scan_allowlist.c.global_name == name)).first():
                raise AlreadyExists(f"{name} is on the allow-list already", hint="remove it first to change its role")
            conn.execute(
                insert(scan_allowlist).values(
                    global_name=name, role=role, reason=entry.reason, added_by=entry.added_by, added_at=entry.added_at
                )
            )
            return Applied(entry, details={"role": role, "reason": entry.reason})

        return self._ctx.door.run(self._ctx.actor, Action.SCAN_ALLOW, allowlist_resource(name), apply)

    @mutation
    def disallow(self, name: str) -> AllowedGlobal:
        """Take a global off this workspace's allow-list (admins; tightening needs no step-up)."""
        name = canonical_global(name)

        def apply(conn: Connection) -> Applied[AllowedGlobal]:
            found = _entries(conn, name)
            if not found:
                raise NotFound(f"{name} is not on this workspace's allow-list", hint="see `mlwarden allowlist list`")
            conn.execute(delete(scan_allowlist).where(scan_allowlist.c.global_name == name))
            return Applied(found[0])

        return self._ctx.door.run(self._ctx.actor, Action.SCAN_DISALLOW, allowlist_resource(name), apply)

    def allowlist(self) -> list[AllowedGlobal]:
        """The workspace's additions (the packaged list is in docs/scanner.md and mlwarden/scan)."""
        return self._ctx.door.read(self._ctx.actor, Action.SCAN_ALLOWLIST, allowlist_resource("*"), _entries)

    def policy(self) -> ScanPolicy:
        """The packaged allow-list extended with this workspace's additions."""
        allow = AllowList.default()
        for entry in self.allowlist():
            allow = allow.extended([entry.name], Role.parse(entry.role))
        return ScanPolicy(allow=allow)

    def scan(self, paths: Iterable[str | Path]) -> ScanReport:
        """Scan files and folders against this workspace's allow-list."""
        return scan_path(list(paths), policy=self.policy())


def _entries(conn: Connection, name: str | None = None) -> list[AllowedGlobal]:
    query = select(scan_allowlist).order_by(scan_allowlist.c.global_name)
    if name is not None:
        query = query.where(scan_allowlist.c.global_name == name)
    return [
        AllowedGlobal(r["global_name"], r["role"], r["reason"], r["added_by"], r["added_at"])
        for r in conn.execute(query).mappings()
    ]
