"""The audit log under real concurrency and real crashes, on SQLite and PostgreSQL.

* Eight OS processes append 500 events each, all at once, through ``Database.write()`` and
  ``AuditLog.append`` (every 25th through the service door as an ``audit.checkpoint`` mutation): the log
  must hold exactly 4000 new events, numbered without gaps or duplicates, and verify.
* ``audit verify`` reads one snapshot: an append committed by another connection while it runs is not
  half-seen (its nodes without its event).
* A writer appending in a loop is SIGKILLed 20 times, at random moments and at chosen points inside an
  open write transaction (after inserting the events and nodes, while signing the policy checkpoint of
  an append, while signing an `audit checkpoint`, just before COMMIT): after every kill the log
  verifies, no event lacks its tree nodes or its policy checkpoint, no committed event is lost and the
  killed transaction left nothing behind.

The writers are tests/audit/_writer.py, run with ``sys.executable``.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pytest
from sqlalchemy import select

from mlwarden.audit import merkle
from mlwarden.audit.checkpoint import NoteVerifier, verify_checkpoint_note
from mlwarden.audit.log import stored_checkpoints
from mlwarden.audit.verify import RebuiltTree
from mlwarden.domain.events import AuditRecord, Outcome, Resource
from mlwarden.service.init import init_workspace
from mlwarden.service.workspace import Workspace, open_workspace
from mlwarden.store.db import Database
from mlwarden.store.tables import audit_events, audit_nodes
from tests.conftest import Env

WRITER = Path(__file__).with_name("_writer.py")
MAX_BATCH = 3  # the loop writer appends 1-3 events per transaction (and 1 per door call)


@dataclass(frozen=True)
class Ws:
    root: Path
    token: str


def _init(tmp_path: Path, db_url: str | None, checkpoint_every: int) -> Ws:
    result = init_workspace(tmp_path / "ws", db_url=db_url, checkpoint_every=checkpoint_every)
    result.workspace.close()
    return Ws(result.workspace.root, result.token.plaintext)


@contextmanager
def _opened(ws: Ws) -> Iterator[Workspace]:
    with open_workspace(ws.root, token=ws.token) as opened:
        yield opened


def _spawn(args: list[str], out: Path) -> subprocess.Popen[bytes]:
    with out.with_suffix(".out").open("wb") as stdout, out.with_suffix(".err").open("wb") as stderr:
        return subprocess.Popen([sys.executable, str(WRITER), *args], stdout=stdout, stderr=stderr)


def _stderr(out: Path) -> str:
    return out.with_suffix(".err").read_text(errors="replace")[-3000:]


def _wait_until(what: str, ready: Callable[[], bool], procs: list[subprocess.Popen[bytes]], timeout: float) -> None:
    """Poll ``ready`` until true; fail (never hang) if a writer exits or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while not ready():
        dead = [p for p in procs if p.poll() is not None]
        if dead:
            pytest.fail(f"a writer exited with {dead[0].returncode} while waiting for {what}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.005)


def _kill_all(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)


# -- what every test checks about the stored log -------------------------------------------------------


@dataclass(frozen=True)
class Stored:
    seqs: list[int]
    leaves: list[bytes]
    resources: list[tuple[str, str, str]]  # (action, resource_type, resource_id) in seq order
    checkpoint_sizes: list[int]


def _check_log(ws: Workspace) -> Stored:
    """Assert the log verifies and is whole: gap-free seqs, every tree node, every checkpoint signed."""
    report = ws.audit.verify()
    assert report.ok, report.problems
    with ws._ctx.db.read() as conn:
        rows = conn.execute(
            select(
                audit_events.c.seq,
                audit_events.c.body,
                audit_events.c.action,
                audit_events.c.resource_type,
                audit_events.c.resource_id,
            ).order_by(audit_events.c.seq)
        ).all()
        nodes = {(lvl, idx): bytes(h) for lvl, idx, h in conn.execute(select(audit_nodes))}
        checkpoints = stored_checkpoints(conn)
    seqs = [int(row.seq) for row in rows]
    assert seqs == list(range(len(seqs))), "seq must run 0..n-1 with no gap or duplicate"
    assert report.size == len(seqs) == max(seqs) + 1
    leaves = [merkle.leaf_hash(bytes(row.body)) for row in rows]
    # Every event has its leaf and every perfect subtree it completed; nothing beyond the last event.
    expected = {(lvl, idx): h for lvl, idx, h in merkle.perfect_nodes(leaves)}
    assert nodes == expected
    verifier = NoteVerifier.from_vkey(ws.checkpoint_vkey)
    assert report.checkpoints == len(checkpoints) > 0
    for cp in checkpoints:
        signed = verify_checkpoint_note(cp.note, verifier, origin=ws.config.origin)
        assert (signed.size, signed.root) == (cp.size, cp.root)
        assert cp.size <= len(leaves)
        assert merkle.root_from_nodes(cp.size, lambda lvl, idx: expected[(lvl, idx)]) == cp.root
    return Stored(
        seqs=seqs,
        leaves=leaves,
        resources=[(row.action, row.resource_type, row.resource_id) for row in rows],
        checkpoint_sizes=[cp.size for cp in checkpoints],
    )


def _assert_policy_checkpoints(sizes: list[int], size: int, every: int, max_batch: int) -> None:
    """Each append crossing a multiple of ``every`` signed a checkpoint in the same transaction."""
    for boundary in range(every, size + 1, every):
        assert any(boundary <= s < boundary + max_batch for s in sizes), f"no checkpoint for size {boundary}"


# -- 1. concurrency ----------------------------------------------------------------------------------------

WRITERS = 8
APPENDS = 500
DOOR_EVERY = 25  # every 25th append of each writer is an audit.checkpoint door call
CONCURRENT_CHECKPOINT_EVERY = 100


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_concurrent_appends_from_eight_processes(tmp_path: Path, db_url: str | None) -> None:
    ws = _init(tmp_path, db_url, CONCURRENT_CHECKPOINT_EVERY)
    with _opened(ws) as opened:
        before = len(_check_log(opened).seqs)
    start = tmp_path / "start"
    ready = [tmp_path / f"ready-{k}" for k in range(WRITERS)]
    outs = [tmp_path / f"writer-{k}" for k in range(WRITERS)]
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for k in range(WRITERS):
            args = ["burst", "--root", str(ws.root), "--token", ws.token, "--name", f"w{k}"]
            args += ["--count", str(APPENDS), "--door-every", str(DOOR_EVERY)]
            procs.append(_spawn([*args, "--ready", str(ready[k]), "--start", str(start)], outs[k]))
        _wait_until("all writers to open the workspace", lambda: all(p.exists() for p in ready), procs, 90)
        start.touch()  # the barrier: every writer is polling for this file
        for proc, out in zip(procs, outs, strict=True):
            assert proc.wait(timeout=180) == 0, _stderr(out)
    finally:
        _kill_all(procs)
    summaries = [json.loads(out.with_suffix(".out").read_text()) for out in outs]

    # The writers really overlapped: each was still appending when the last one began.
    assert max(s["began"] for s in summaries) < min(s["ended"] for s in summaries)
    door_calls = sum(s["door_calls"] for s in summaries)
    assert door_calls == WRITERS * (APPENDS // DOOR_EVERY)

    with _opened(ws) as opened:
        stored = _check_log(opened)
    assert len(stored.seqs) == before + WRITERS * APPENDS
    new = stored.resources[before:]
    direct = Counter(rid for action, rtype, rid in new if (action, rtype) == ("test.append", "test"))
    expected = {f"w{k}-{i}" for k in range(WRITERS) for i in range(APPENDS) if i % DOOR_EVERY != DOOR_EVERY - 1}
    assert set(direct) == expected
    assert set(direct.values()) == {1}, "an append was stored twice"
    assert sum(1 for action, _, _ in new if action == "audit.checkpoint") == door_calls
    # Appends from different writers interleave in the log (it is not eight sequential runs).
    writers = [rid.split("-")[0] for action, _, rid in new if action == "test.append"]
    assert sum(a != b for a, b in zip(writers, writers[1:], strict=False)) > WRITERS - 1
    _assert_policy_checkpoints(stored.checkpoint_sizes, len(stored.seqs), CONCURRENT_CHECKPOINT_EVERY, 1)


# -- 2. crashes --------------------------------------------------------------------------------------------

KILLS = 20
CRASH_CHECKPOINT_EVERY = 7
# "random": SIGKILL after a random delay once the writer has committed; the others: SIGKILL while the
# writer is stopped at that point inside an open write transaction.
KILL_MODES = ("random", "sign", "random", "nodes", "random", "commit", "random", "door-sign")
MAX_RANDOM_DELAY = 0.3


def _lines(progress: Path) -> list[str]:
    """The complete lines written so far (a line being written has no newline yet)."""
    if not progress.exists():
        return []
    return progress.read_text(encoding="utf-8").split("\n")[:-1]


def _has_line(progress: Path, line: str) -> bool:
    return line in _lines(progress)


def _has_committed(progress: Path) -> bool:
    return _last_committed(_lines(progress)) is not None


def _last_committed(lines: list[str]) -> int | None:
    sizes = [int(line.split()[1]) for line in lines if line.startswith("committed ")]
    return sizes[-1] if sizes else None


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_sigkill_mid_append_never_leaves_a_half_written_event(tmp_path: Path, db_url: str | None) -> None:
    ws = _init(tmp_path, db_url, CRASH_CHECKPOINT_EVERY)
    rng = random.Random(20_240)  # noqa: S311 - kill delays that differ between kills, not between runs
    with _opened(ws) as opened:
        size = len(_check_log(opened).seqs)
    sizes_seen = [size]
    for kill in range(KILLS):
        mode = KILL_MODES[kill % len(KILL_MODES)]
        out = tmp_path / f"writer-{kill}"
        progress = out.with_suffix(".progress")
        args = ["loop", "--root", str(ws.root), "--token", ws.token, "--name", f"k{kill}"]
        args += ["--progress", str(progress), "--seed", str(kill)]
        if mode != "random":
            args += ["--pause-at", mode, "--arm-after", "3"]
        proc = _spawn(args, out)
        try:
            if mode == "random":
                _wait_until(f"kill {kill}: a first commit", partial(_has_committed, progress), [proc], 60)
                time.sleep(rng.uniform(0, MAX_RANDOM_DELAY))
            else:
                stopped = partial(_has_line, progress, f"paused {mode}")
                _wait_until(f"kill {kill}: the writer to stop at {mode!r}", stopped, [proc], 60)
            proc.send_signal(signal.SIGKILL)
            assert proc.wait(timeout=30) == -signal.SIGKILL, _stderr(out)
        finally:
            _kill_all([proc])

        committed = _last_committed(_lines(progress))
        assert committed is not None
        with _opened(ws) as opened:
            # Take (and release) the writer lock first: it is granted only once the killed writer's
            # transaction has ended on the server, so a COMMIT still in flight cannot land mid-check.
            with opened._ctx.db.write():
                pass
            stored = _check_log(opened)
        size = len(stored.seqs)
        if mode == "random":
            # Nothing the writer saw committed is lost; at most the transaction it was in also committed.
            assert committed <= size <= committed + MAX_BATCH, (mode, committed, size)
        else:
            # The killed transaction left nothing at all: not its events, nodes nor checkpoint.
            assert size == committed, (mode, committed, size)
        _assert_policy_checkpoints(stored.checkpoint_sizes, size, CRASH_CHECKPOINT_EVERY, MAX_BATCH)
        sizes_seen.append(size)
    assert sizes_seen == sorted(sizes_seen) and sizes_seen[-1] > sizes_seen[0] + KILLS


# -- 3. verify while another connection appends -------------------------------------------------------------


def test_verify_reads_one_snapshot_while_another_connection_appends(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    """An append committed between verify's queries is invisible to it, not half-seen (PostgreSQL needs
    REPEATABLE READ for that; under READ COMMITTED the new event's nodes showed up "beyond the log's end")."""
    with env.open() as ws:
        before = len(_check_log(ws).seqs)
        other = Database(ws._ctx.db.url)
        appended: list[int] = []
        build_levels = RebuiltTree.build_levels

        def append_meanwhile(tree: RebuiltTree) -> None:
            # Verify has read every event and is about to read the tree nodes: commit one more event now.
            if not appended:
                record = AuditRecord(
                    actor=ws.actor.name,
                    auth_method=ws.actor.auth_method,
                    action="test.append",
                    resource=Resource("test", "meanwhile"),
                    outcome=Outcome.OK,
                )
                with other.write() as conn:
                    appended.append(ws._ctx.log.append(conn, record).seq)
            build_levels(tree)

        try:
            with monkeypatch.context() as patch:
                patch.setattr(RebuiltTree, "build_levels", append_meanwhile)
                report = ws.audit.verify()
        finally:
            other.dispose()
        assert appended == [before], "the append did not run while verify was reading"
        assert report.size == before
        assert report.ok, report.problems
        assert len(_check_log(ws).seqs) == before + 1
