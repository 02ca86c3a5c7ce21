"""The append-only audit log: events, stored subtree hashes and signed checkpoints.

Appends run inside the caller's write transaction (the one door), so a change and its event commit or
roll back together. Each append stores the event, its leaf and the perfect subtree nodes it completes:
O(log n) work, never a recomputation of the tree (RFC 6962 section 2.1).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache

from sqlalchemy import Connection, Select, and_, bindparam, insert, or_, select

from mlwarden.audit import encoding, merkle
from mlwarden.audit.checkpoint import Checkpoint, NoteSigner, sign_checkpoint
from mlwarden.audit.clock import format_ts, utcnow
from mlwarden.audit.signer import SignerState
from mlwarden.domain.events import AuditEvent, AuditRecord
from mlwarden.errors import IntegrityError, NotFound, UsageError
from mlwarden.store.db import after_commit
from mlwarden.store.tables import audit_checkpoints, audit_events, audit_nodes

# Query columns hold at most this many characters so that any value fits a B-tree index (PostgreSQL
# refuses index entries over ~2.7 kB); the body, which the leaf hash covers, always holds the full value.
COLUMN_CHARS = 200


@dataclass(frozen=True)
class CheckpointPolicy:
    """Sign a checkpoint every ``every`` events, or when the last one is older than ``seconds``."""

    every: int = 1000
    seconds: float = 3600.0


@dataclass(frozen=True)
class StoredCheckpoint:
    size: int
    root: bytes
    note: str
    created_at: str


class NodeReader:
    """Reads perfect subtree nodes from the database, remembering those written in this transaction."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._cache: dict[tuple[int, int], bytes] = {}

    def remember(self, nodes: Iterable[tuple[int, int, bytes]]) -> None:
        for level, idx, digest in nodes:
            self._cache[(level, idx)] = digest

    def prefetch(self, positions: Sequence[tuple[int, int]]) -> None:
        """Load several nodes in one query (an append needs only the compact range of the tree)."""
        wanted = [p for p in positions if p not in self._cache]
        if wanted:
            params = {
                f"{axis}{i}": value for i, pos in enumerate(wanted) for axis, value in zip("li", pos, strict=True)
            }
            rows = self._conn.execute(_select_nodes(len(wanted)), params)
            self.remember((int(level), int(idx), bytes(digest)) for level, idx, digest in rows)

    def __call__(self, level: int, idx: int) -> bytes:
        cached = self._cache.get((level, idx))
        if cached is not None:
            return cached
        self.prefetch([(level, idx)])
        found = self._cache.get((level, idx))
        if found is None:
            raise NotFound(f"audit tree node ({level}, {idx}) is missing", hint="run `mlwarden audit verify`")
        return found


# Statements built once: an unbatched append is a handful of small queries, and building and compiling
# them anew each time would cost more than running them.
@cache
def _select_nodes(count: int) -> Select[int, int, bytes]:
    # OR of point lookups, one statement per count: SQLite answers each from the primary key, where a
    # row-value IN list would scan the whole table.
    lookups = [
        and_(audit_nodes.c.level == bindparam(f"l{i}"), audit_nodes.c.idx == bindparam(f"i{i}")) for i in range(count)
    ]
    return select(audit_nodes.c.level, audit_nodes.c.idx, audit_nodes.c.hash).where(or_(*lookups))


_LAST_EVENT = select(audit_events.c.seq, audit_events.c.ts).order_by(audit_events.c.seq.desc()).limit(1)
_LAST_CHECKPOINT_AT = (
    select(audit_checkpoints.c.created_at).order_by(audit_checkpoints.c.size.desc()).limit(1).scalar_subquery()
)
_TAIL = select(
    _LAST_EVENT.with_only_columns(audit_events.c.seq).scalar_subquery(),
    _LAST_EVENT.with_only_columns(audit_events.c.ts).scalar_subquery(),
    _LAST_CHECKPOINT_AT,
)
_INSERT_EVENTS = insert(audit_events)
_INSERT_NODES = insert(audit_nodes)


@dataclass(frozen=True)
class _Tail:
    size: int
    last_ts: str | None
    last_checkpoint_at: str | None


class AuditLog:
    def __init__(
        self,
        signer: NoteSigner,
        origin: str,
        policy: CheckpointPolicy | None = None,
        clock: Callable[[], datetime] = utcnow,
        state: SignerState | None = None,
        on_signed: Callable[[StoredCheckpoint], None] | None = None,
    ) -> None:
        self.signer = signer
        self.origin = origin
        self.policy = policy or CheckpointPolicy()
        self.clock = clock
        self.state = state
        self.on_signed = on_signed  # runs after the signing transaction commits

    # -- writing ---------------------------------------------------------------------------------

    def append(self, conn: Connection, record: AuditRecord) -> AuditEvent:
        """Append one event inside the caller's (write) transaction."""
        return self.append_many(conn, [record])[0]

    def append_many(self, conn: Connection, records: Sequence[AuditRecord]) -> list[AuditEvent]:
        if not records:
            return []
        tail = self._read_tail(conn)
        size = tail.size
        now = self.clock()
        # Timestamps never go backwards in the log, even if the wall clock does; verify relies on it.
        ts = max(format_ts(now), tail.last_ts or "")
        reader = NodeReader(conn)
        reader.prefetch(merkle.compact_range(size))
        events: list[AuditEvent] = []
        event_rows: list[dict[str, object]] = []
        node_rows: list[dict[str, object]] = []
        for offset, record in enumerate(records):
            event = AuditEvent(seq=size + offset, ts=ts, record=record)
            body = encoding.encode(event)
            leaf = merkle.leaf_hash(body)
            nodes = merkle.append_nodes(event.seq, leaf, reader)
            reader.remember(nodes)
            events.append(event)
            event_rows.append(_event_row(event, body, leaf))
            node_rows.extend({"level": lvl, "idx": idx, "hash": h} for lvl, idx, h in nodes)
        conn.execute(_INSERT_EVENTS, event_rows)
        conn.execute(_INSERT_NODES, node_rows)
        new_size = size + len(events)
        if self._checkpoint_due(tail, new_size, now):
            self._store_checkpoint(conn, new_size, reader)
        return events

    def checkpoint(self, conn: Connection) -> StoredCheckpoint:
        """Sign and store a checkpoint of the current tree (or return the latest if nothing changed)."""
        size, _ = self._tail(conn)
        latest = self.latest_checkpoint(conn)
        if latest is not None and latest.size == size:
            return latest
        if size == 0:
            raise UsageError("the audit log is empty: there is nothing to checkpoint yet")
        return self._store_checkpoint(conn, size, NodeReader(conn))

    def _checkpoint_due(self, tail: _Tail, new_size: int, now: datetime) -> bool:
        if new_size // self.policy.every > tail.size // self.policy.every or tail.last_checkpoint_at is None:
            return True
        # Fixed-width UTC timestamps compare as strings, which spares a parse on every append.
        return tail.last_checkpoint_at <= format_ts(now - timedelta(seconds=self.policy.seconds))

    def _store_checkpoint(self, conn: Connection, size: int, reader: NodeReader) -> StoredCheckpoint:
        self._refuse_inconsistent(conn, size, reader)
        root = merkle.root_from_nodes(size, reader)
        note = sign_checkpoint(Checkpoint(origin=self.origin, size=size, root=root), self.signer)
        stored = StoredCheckpoint(size=size, root=root, note=note, created_at=format_ts(self.clock()))
        conn.execute(insert(audit_checkpoints).values(**stored.__dict__))
        if self.on_signed is not None:
            callback = self.on_signed
            after_commit(conn, lambda: callback(stored))
        return stored

    def _refuse_inconsistent(self, conn: Connection, size: int, reader: NodeReader) -> None:
        """Never sign a tree that does not extend what was signed before (RFC 9162 section 2.1.4)."""
        latest = self.latest_checkpoint(conn)
        priors = [
            ("the newest checkpoint this key signed", self.state.last() if self.state is not None else None),
            (
                "the newest stored checkpoint",
                None if latest is None else Checkpoint(self.origin, latest.size, latest.root),
            ),
        ]
        for label, prior in priors:
            if prior is None:
                continue
            if prior.size > size:
                problem = f"{label} covers {prior.size} events but the log has {size}: truncated or replaced"
            elif merkle.root_from_nodes(prior.size, reader) != prior.root:
                problem = f"the log no longer matches {label} (size {prior.size}): history was rewritten"
            else:
                continue
            raise IntegrityError(
                f"refusing to sign a checkpoint: {problem}",
                hint="stop writing, run `mlwarden audit verify` and `audit witness`, restore from a backup",
            )

    # -- reading ---------------------------------------------------------------------------------

    def size(self, conn: Connection) -> int:
        return self._tail(conn)[0]

    def root(self, conn: Connection, size: int | None = None) -> bytes:
        size = self.size(conn) if size is None else size
        return merkle.root_from_nodes(size, NodeReader(conn))

    def leaf(self, conn: Connection, seq: int) -> bytes:
        row = conn.execute(select(audit_events.c.leaf).where(audit_events.c.seq == seq)).first()
        if row is None:
            raise NotFound(f"no audit event with seq {seq}")
        return bytes(row[0])

    def inclusion_proof(self, conn: Connection, seq: int, size: int) -> list[bytes]:
        return merkle.inclusion_proof_from(seq, size, merkle.range_hash_from_nodes(NodeReader(conn)))

    def consistency_proof(self, conn: Connection, size1: int, size2: int) -> list[bytes]:
        return merkle.consistency_proof_from(size1, size2, merkle.range_hash_from_nodes(NodeReader(conn)))

    def latest_checkpoint(self, conn: Connection) -> StoredCheckpoint | None:
        rows = stored_checkpoints(conn, newest_first=True, limit=1)
        return rows[0] if rows else None

    @staticmethod
    def _read_tail(conn: Connection) -> _Tail:
        last_seq, last_ts, last_checkpoint_at = conn.execute(_TAIL).one()
        size = 0 if last_seq is None else int(last_seq) + 1
        return _Tail(size=size, last_ts=last_ts, last_checkpoint_at=last_checkpoint_at)

    def _tail(self, conn: Connection) -> tuple[int, str | None]:
        tail = self._read_tail(conn)
        return tail.size, tail.last_ts


def stored_checkpoints(
    conn: Connection, *, newest_first: bool = False, limit: int | None = None
) -> list[StoredCheckpoint]:
    order = audit_checkpoints.c.size.desc() if newest_first else audit_checkpoints.c.size
    query = select(audit_checkpoints).order_by(order)
    if limit is not None:
        query = query.limit(limit)
    return [_checkpoint_from_row(row) for row in conn.execute(query)]


def _checkpoint_from_row(row: object) -> StoredCheckpoint:
    mapping = row._mapping  # type: ignore[attr-defined]
    return StoredCheckpoint(
        size=int(mapping["size"]),
        root=bytes(mapping["root"]),
        note=mapping["note"],
        created_at=mapping["created_at"],
    )


def column_value(value: str) -> str:
    """The indexed copy of a field: a bounded prefix (the hashed body keeps the whole value)."""
    return value[:COLUMN_CHARS]


def _event_row(event: AuditEvent, body: bytes, leaf: bytes) -> dict[str, object]:
    rec = event.record
    project = rec.resource.project
    return {
        "seq": event.seq,
        "ts": event.ts,
        "actor": column_value(rec.actor),
        "action": column_value(rec.action),
        "resource_type": column_value(rec.resource.type),
        "resource_id": column_value(rec.resource.id),
        "project": None if project is None else column_value(project),
        "outcome": rec.outcome.value,
        "body": body,
        "leaf": leaf,
    }
