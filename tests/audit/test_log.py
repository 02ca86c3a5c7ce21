"""The stored log: O(log n) appends, checkpoint policy (every N events or T seconds), monotonic time,
and proofs from stored nodes that agree with the tree recomputed from the events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from mlwarden.audit import merkle
from mlwarden.audit.checkpoint import verify_checkpoint_note
from mlwarden.audit.log import AuditLog, CheckpointPolicy, stored_checkpoints
from mlwarden.domain.events import AuditRecord, AuthMethod, Outcome, Resource
from mlwarden.service.workspace import Workspace
from mlwarden.store.tables import audit_events

RECORD = AuditRecord("tester", AuthMethod.SYSTEM, "test.event", Resource("thing", "1"), Outcome.OK)


class FakeClock:
    def __init__(self) -> None:
        self.now = datetime(2030, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def _log(admin: Workspace, every: int, seconds: float, clock: FakeClock) -> AuditLog:
    base = admin._ctx.log
    return AuditLog(base.signer, base.origin, CheckpointPolicy(every, seconds), clock, state=base.state)


def _append(admin: Workspace, log: AuditLog, count: int = 1) -> None:
    with admin._ctx.db.write() as conn:
        log.append_many(conn, [RECORD] * count)


def _sizes(admin: Workspace) -> list[int]:
    with admin._ctx.db.read() as conn:
        return [cp.size for cp in stored_checkpoints(conn)]


def test_checkpoint_every_n_events(admin: Workspace) -> None:
    clock = FakeClock()
    log = _log(admin, every=5, seconds=1e9, clock=clock)
    before = _sizes(admin)
    with admin._ctx.db.read() as conn:
        start = log.size(conn)
    for _ in range(12):
        _append(admin, log)
    new = [size for size in _sizes(admin) if size not in before]
    assert new == [size for size in range(start + 1, start + 13) if size % 5 == 0]


def test_checkpoint_when_the_last_one_is_older_than_t_seconds(admin: Workspace) -> None:
    clock = FakeClock()
    log = _log(admin, every=10**9, seconds=60, clock=clock)
    _append(admin, log)  # the newest checkpoint was made in the real present, long before 2030: due
    before = _sizes(admin)
    clock.now += timedelta(seconds=30)
    _append(admin, log)
    assert _sizes(admin) == before  # 30 s: not due
    clock.now += timedelta(seconds=31)
    _append(admin, log)
    assert len(_sizes(admin)) == len(before) + 1


def test_timestamps_never_go_backwards(admin: Workspace) -> None:
    clock = FakeClock()
    log = _log(admin, every=10**9, seconds=1e9, clock=clock)
    _append(admin, log)
    clock.now -= timedelta(days=1)  # the wall clock jumps back
    _append(admin, log)
    with admin._ctx.db.read() as conn:
        stamps = [row[0] for row in conn.execute(select(audit_events.c.ts).order_by(audit_events.c.seq))]
    assert stamps == sorted(stamps)


def test_stored_tree_gives_the_same_roots_and_proofs_as_the_events(admin: Workspace) -> None:
    for count in (1, 2, 5, 17, 64):
        _append(admin, admin._ctx.log, count)
    with admin._ctx.db.read() as conn:
        leaves = [bytes(r[0]) for r in conn.execute(select(audit_events.c.leaf).order_by(audit_events.c.seq))]
        log = admin._ctx.log
        n = len(leaves)
        for size in (1, 2, 3, n // 2, n - 1, n):
            root = log.root(conn, size)
            assert root == merkle.root(leaves[:size])
            for index in {0, size // 3, size - 1}:
                proof = log.inclusion_proof(conn, index, size)
                assert merkle.verify_inclusion(leaves[index], index, size, proof, root)
            if size < n:
                proof = log.consistency_proof(conn, size, n)
                assert merkle.verify_consistency(size, n, root, merkle.root(leaves), proof)


def test_append_reads_only_the_compact_range(admin: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    _append(admin, admin._ctx.log, 1000)
    from mlwarden.audit import log as log_module

    queries: list[int] = []
    original = log_module._select_nodes.__wrapped__

    def counting(count: int):  # type: ignore[no-untyped-def]
        queries.append(count)
        return original(count)

    monkeypatch.setattr(log_module, "_select_nodes", counting)
    _append(admin, admin._ctx.log, 1)
    assert len(queries) == 1 and queries[0] <= 11  # one query for at most log2(n) + 1 nodes


def test_every_stored_checkpoint_is_signed_for_this_log(admin: Workspace) -> None:
    _append(admin, admin._ctx.log, 30)
    admin.audit.checkpoint()
    with admin._ctx.db.read() as conn:
        for cp in stored_checkpoints(conn):
            checkpoint = verify_checkpoint_note(cp.note, admin._ctx.verifier)
            assert (checkpoint.origin, checkpoint.size, checkpoint.root) == (admin.config.origin, cp.size, cp.root)
