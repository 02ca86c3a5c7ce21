"""The audit log as users see it: query, verify, prove, checkpoint and witness."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from sqlalchemy import Connection, Select, select

from mlwarden.audit import encoding, merkle
from mlwarden.audit.checkpoint import Checkpoint, NoteVerifier, verify_checkpoint_note
from mlwarden.audit.clock import normalize_ts
from mlwarden.audit.log import StoredCheckpoint, column_value
from mlwarden.audit.verify import Problem, VerifyReport, check_checkpoint_note, verify_log
from mlwarden.audit.witness import WitnessReport, check_witness
from mlwarden.domain.actions import Action
from mlwarden.domain.events import AuditEvent, Resource
from mlwarden.errors import IntegrityError, NotFound, UsageError
from mlwarden.service.assembly import publish_checkpoint
from mlwarden.service.context import ServiceContext
from mlwarden.service.door import Applied, access, mutation
from mlwarden.service.reconcile import reconcile_credentials
from mlwarden.service.reconcile_data import reconcile_datasets
from mlwarden.service.reconcile_runs import reconcile_runs
from mlwarden.store.tables import audit_events

LOG_RESOURCE = Resource(type="audit_log", id="main")
MAX_QUERY_LIMIT = 100_000


@dataclass(frozen=True)
class AuditQuery:
    actor: str | None = None
    action: str | None = None
    resource: str | None = None  # "TYPE" or "TYPE:ID"
    since: str | None = None  # ISO 8601 UTC, inclusive
    until: str | None = None  # ISO 8601 UTC, exclusive
    from_seq: int = 0  # page through a long log: the next page starts after the last seq seen
    limit: int = 1000

    def details(self) -> dict[str, str | int | bool | None]:
        return {key: value for key, value in asdict(self).items() if value is not None}


@dataclass(frozen=True)
class InclusionProof:
    seq: int
    leaf: bytes
    size: int
    root: bytes
    proof: list[bytes]
    checkpoint: str | None  # the signed note whose root the proof reaches, when one covers the event
    verified: bool

    @property
    def signed(self) -> bool:
        """Whether ``root`` comes from a signed checkpoint (otherwise it is the current, unsigned root)."""
        return self.checkpoint is not None


def pinned_vkey(conn: Connection) -> str | None:
    """The checkpoint verifier key recorded by `workspace.init`, the first event of the log."""
    body = conn.execute(select(audit_events.c.body).where(audit_events.c.seq == 0)).scalar()
    if body is None:
        return None
    try:
        value = encoding.decode(bytes(body)).record.details.get("checkpoint_vkey")
    except Exception:  # a damaged first event is reported by verify itself
        return None
    return value if isinstance(value, str) else None


class AuditService:
    def __init__(self, ctx: ServiceContext) -> None:
        self._ctx = ctx

    @access
    def log(self, query: AuditQuery | None = None) -> list[AuditEvent]:
        """Events matching the filters (oldest first); the query itself is audited."""
        query = query or AuditQuery()
        if not 0 < query.limit <= MAX_QUERY_LIMIT:
            raise UsageError(f"limit must be between 1 and {MAX_QUERY_LIMIT}")

        def apply(conn: Connection) -> Applied[list[AuditEvent]]:
            rows = conn.execute(_select(query))
            events = [e for e in (_decode(int(seq), bytes(body)) for seq, body in rows) if _matches(e, query)]
            return Applied(events, details={**query.details(), "returned": len(events)})

        return self._ctx.door.run(self._ctx.actor, Action.AUDIT_READ, LOG_RESOURCE, apply)

    def verify(self) -> VerifyReport:
        """Recompute every leaf, node and checkpoint signature (read-only)."""
        return self._ctx.door.read(self._ctx.actor, Action.AUDIT_VERIFY, LOG_RESOURCE, self._verify)

    def _verify(self, conn: Connection) -> VerifyReport:
        current = self._ctx.verifier.to_vkey()
        pinned = pinned_vkey(conn)
        report = verify_log(conn, NoteVerifier.from_vkey(pinned or current), self._ctx.config.origin)
        if pinned is None and report.size > 0:
            report.problems.append(Problem("key", "event 0 records no checkpoint key: the log's start was altered", 0))
        elif pinned is not None and pinned != current:
            problem = Problem("key", "the checkpoint signing key differs from the one recorded at init (replaced?)")
            report.problems.append(problem)
        report.problems.extend(self._check_signer_state(report))
        report.problems.extend(reconcile_credentials(conn))
        report.problems.extend(reconcile_datasets(conn))
        report.problems.extend(reconcile_runs(conn))
        from mlwarden.service.dataset_trust import reconcile_trust
        from mlwarden.service.reconcile_models import reconcile_models  # the registry loads on demand

        report.problems.extend(reconcile_models(conn))
        report.problems.extend(reconcile_trust(conn))
        return report

    def _check_signer_state(self, report: VerifyReport) -> list[Problem]:
        """The signer's own record of its newest checkpoint is a witness the database cannot rewrite."""
        state = self._ctx.log.state
        note = state.note() if state is not None else None
        if note is None:
            return []
        signed, problems = check_checkpoint_note(
            note, report.tree, self._ctx.verifier, self._ctx.config.origin, where="the signer's last"
        )
        if signed is not None and signed.size > report.size and self._committed_since(signed):
            return []  # signed after this verification's snapshot was taken: not a truncation
        return problems

    def _committed_since(self, signed: Checkpoint) -> bool:
        """Whether the log, read afresh, holds the signer's newest checkpoint exactly."""
        with self._ctx.db.read() as conn:
            log = self._ctx.log
            return log.size(conn) >= signed.size and log.root(conn, signed.size) == signed.root

    def prove(self, seq: int) -> InclusionProof:
        """An inclusion proof for event ``seq`` against the newest signed checkpoint that covers it."""
        return self._ctx.door.read(self._ctx.actor, Action.AUDIT_VERIFY, LOG_RESOURCE, lambda c: self._prove(c, seq))

    def _prove(self, conn: Connection, seq: int) -> InclusionProof:
        log = self._ctx.log
        size = log.size(conn)
        if not 0 <= seq < size:
            raise NotFound(f"no audit event with seq {seq} (the log has {size} events, numbered from 0)")
        latest = log.latest_checkpoint(conn)
        note = latest.note if latest is not None and latest.size > seq else None
        if note is not None:  # the root the signature covers, not a database column's copy of it
            signed = verify_checkpoint_note(note, self._ctx.verifier)
            tree_size, root = signed.size, signed.root
        else:
            tree_size, root = size, log.root(conn, size)
        leaf = log.leaf(conn, seq)
        proof = log.inclusion_proof(conn, seq, tree_size)
        verified = merkle.verify_inclusion(leaf, seq, tree_size, proof, root)
        return InclusionProof(seq, leaf, tree_size, root, proof, checkpoint=note, verified=verified)

    @mutation
    def checkpoint(self, export: Path | None = None) -> StoredCheckpoint:
        """Sign a checkpoint of the log now; with ``export`` (or the configured witness_dir), write it there."""

        def apply(conn: Connection) -> Applied[StoredCheckpoint]:
            stored = self._ctx.log.checkpoint(conn)
            return Applied(stored, details={"size": stored.size, "root": stored.root.hex()})

        stored = self._ctx.door.run(self._ctx.actor, Action.AUDIT_CHECKPOINT, LOG_RESOURCE, apply)
        if export is not None:  # the configured witness_dir got it already, as every signed checkpoint
            publish_checkpoint(self._ctx, stored, export, strict=True)
        return stored

    def witness(self, path: Path) -> tuple[WitnessReport, VerifyReport]:
        """Check the log against every checkpoint exported into ``path`` (and verify it fully)."""

        def fetch(conn: Connection) -> tuple[WitnessReport, VerifyReport]:
            report = self._verify(conn)

            def proof(size1: int, size2: int) -> list[bytes]:
                return self._ctx.log.consistency_proof(conn, size1, size2)

            current = self._ctx.verifier.to_vkey()
            return check_witness(path, report.tree, current, self._ctx.config.origin, proof), report

        return self._ctx.door.read(self._ctx.actor, Action.AUDIT_VERIFY, LOG_RESOURCE, fetch)


def _decode(seq: int, body: bytes) -> AuditEvent:
    try:
        return encoding.decode(body)
    except IntegrityError as exc:
        raise IntegrityError(f"audit event {seq} is damaged: {exc}", hint="run `mlwarden audit verify`") from exc


def _select(query: AuditQuery) -> Select[int, bytes]:
    stmt = (
        select(audit_events.c.seq, audit_events.c.body)
        .where(audit_events.c.seq >= query.from_seq)
        .order_by(audit_events.c.seq)
        .limit(query.limit)
    )
    if query.actor is not None:
        stmt = stmt.where(audit_events.c.actor == column_value(query.actor))
    if query.action is not None:
        stmt = stmt.where(audit_events.c.action == column_value(query.action))
    if query.resource is not None:
        rtype, _, rid = query.resource.partition(":")
        stmt = stmt.where(audit_events.c.resource_type == column_value(rtype))
        if rid:
            stmt = stmt.where(audit_events.c.resource_id == column_value(rid))
    if query.since is not None:
        stmt = stmt.where(audit_events.c.ts >= normalize_ts(query.since))
    if query.until is not None:
        stmt = stmt.where(audit_events.c.ts < normalize_ts(query.until))
    return stmt


def _matches(event: AuditEvent, query: AuditQuery) -> bool:
    """Exact match on the full values (the indexed columns hold only a prefix of very long ones)."""
    rec = event.record
    if query.actor is not None and rec.actor != query.actor:
        return False
    if query.action is not None and rec.action != query.action:
        return False
    if query.resource is not None:
        rtype, _, rid = query.resource.partition(":")
        return rec.resource.type == rtype and (not rid or rec.resource.id == rid)
    return True
