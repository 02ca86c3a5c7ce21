"""Wiring a workspace's parts together: database, signer and its memory, audit log, door, blob store."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from sqlalchemy import Connection

from mlwarden.access.policy import Authorizer, RolePolicy, step_up_key
from mlwarden.audit.checkpoint import NoteSigner
from mlwarden.audit.keys import load_private_key
from mlwarden.audit.log import AuditLog, CheckpointPolicy, StoredCheckpoint
from mlwarden.audit.signer import SignerState
from mlwarden.audit.witness import export_checkpoint
from mlwarden.domain.actions import Action
from mlwarden.domain.events import SYSTEM, Actor, AuditRecord, AuthMethod, Outcome, Resource
from mlwarden.errors import MlwardenError
from mlwarden.service.config import WorkspacePaths, load_config
from mlwarden.service.context import ServiceContext
from mlwarden.service.door import Door
from mlwarden.store.blobs import LocalBlobStore
from mlwarden.store.db import Database


def build_context(
    paths: WorkspacePaths, actor: Actor, authorizer: Authorizer | None = None, *, new: bool = False
) -> ServiceContext:
    """Open a workspace's parts (``new``: while `init` creates it, so its database may not exist yet)."""
    config = load_config(paths)
    db = Database(paths.database_url(config), create=new)
    key_path = paths.resolve(config.key_file)
    signer = NoteSigner(load_private_key(key_path), config.key_name)
    state = SignerState(key_path.with_suffix(".last"), signer.verifier())
    log = AuditLog(
        signer,
        config.origin,
        CheckpointPolicy(every=config.checkpoint_every, seconds=config.checkpoint_seconds),
        state=state,
    )
    door = Door(db, log, authorizer or RolePolicy(step_up=_consume_step_up))
    ctx = ServiceContext(
        paths=paths,
        config=config,
        db=db,
        log=log,
        verifier=signer.verifier(),
        door=door,
        blobs=LocalBlobStore(paths.resolve(config.blob_dir)),
        actor=actor,
    )
    log.on_signed = lambda stored: publish_checkpoint(ctx, stored, paths.witness_dir(config), strict=False)
    return ctx


def _consume_step_up(conn: Connection, user_id: str, action: str, resource_key: str) -> bool:
    from mlwarden.service import mfa
    from mlwarden.service.mfa_store import consume_step_up

    return consume_step_up(conn, user_id, action, resource_key, mfa.now())


def step_up_with(ctx: ServiceContext) -> Callable[[str | None, Action, Resource], None]:
    """What a service calls with the TOTP code a caller gave for a sensitive change: verify it and
    record a step-up bound to that action and resource (the door's decision then consumes it)."""

    def step_up(code: str | None, action: Action, resource: Resource) -> None:
        if code is None:
            return  # the decision will say a step-up is needed
        from mlwarden.service.mfa import MfaService

        MfaService(ctx).step_up(code, action.value, step_up_key(resource))

    return step_up


def publish_checkpoint(ctx: ServiceContext, stored: StoredCheckpoint, folder: Path | None, *, strict: bool) -> None:
    """After a checkpoint commits: make it durable, let the signer remember it, export it to a witness.

    ``strict`` raises any failure (an export the user asked for). Otherwise the checkpoint was signed as a
    side effect of some other change that has committed already: failing that change now would be a lie,
    so the failure becomes an audit event of its own (outcome "failed"), for `audit log` and alerts.
    """
    try:
        ctx.db.make_durable()
        if ctx.log.state is not None:
            ctx.log.state.record(stored.note, stored.size)
        if folder is not None:
            export_checkpoint(folder, stored.note, ctx.verifier.to_vkey(), lambda m, n: _prove(ctx, m, n))
    except (MlwardenError, OSError) as exc:
        if strict:
            raise
        _record_failure(ctx, stored, folder, exc)


def _prove(ctx: ServiceContext, size1: int, size2: int) -> list[bytes]:
    with ctx.db.read() as conn:
        return ctx.log.consistency_proof(conn, size1, size2)


def _record_failure(ctx: ServiceContext, stored: StoredCheckpoint, folder: Path | None, exc: Exception) -> None:
    record = AuditRecord(
        actor=SYSTEM.name,
        auth_method=AuthMethod.SYSTEM,
        action=Action.AUDIT_PUBLISH.value,
        resource=Resource("checkpoint", str(stored.size)),
        outcome=Outcome.FAILED,
        reason=f"{type(exc).__name__}: {exc}"[:4096],
        details={"witness_dir": str(folder) if folder is not None else None},
        client=SYSTEM.client,
    )
    with ctx.db.write() as conn:
        ctx.log.append(conn, record)
