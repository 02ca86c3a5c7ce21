"""Full verification of the stored audit log: every leaf, every stored node, every checkpoint.

What this proves and what it cannot is in docs/audit.md: it catches any edit that leaves the stored
events, tree and checkpoints mutually inconsistent, and any checkpoint not signed by the pinned key. A
writer who can rewrite events, tree *and* re-sign checkpoints is caught only by `audit witness` against
checkpoints exported before the rewrite.
"""

from __future__ import annotations

import json
from bisect import bisect_left, insort
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from operator import itemgetter
from typing import Any

import orjson
from sqlalchemy import Connection, Select, func, select

from mlwarden.audit import encoding, merkle
from mlwarden.audit.checkpoint import Checkpoint, NoteVerifier, verify_checkpoint_note
from mlwarden.audit.clock import format_ts, utcnow
from mlwarden.audit.log import column_value, stored_checkpoints
from mlwarden.errors import IntegrityError
from mlwarden.store.tables import audit_events, audit_nodes

_BATCH = 10_000
_TS_LENGTH = len("2026-01-01T00:00:00.000000Z")
CLOCK_SKEW = timedelta(minutes=5)  # how far ahead of this machine's clock an event may be dated


@dataclass(frozen=True)
class Problem:
    """One inconsistency; ``seq`` is the first event it implicates (None when unknown)."""

    kind: str
    message: str
    seq: int | None = None


@dataclass
class RebuiltTree:
    """The tree recomputed from the event bodies alone: levels[0] are the leaves."""

    levels: list[list[bytes]] = field(default_factory=lambda: [[]])

    @property
    def size(self) -> int:
        return len(self.levels[0])

    def node(self, level: int, idx: int) -> bytes:
        return self.levels[level][idx]

    def root(self, size: int | None = None) -> bytes:
        return merkle.root_from_nodes(self.size if size is None else size, self.node)

    def build_levels(self) -> None:
        level = self.levels[0]
        while len(level) > 1:
            level = [merkle.node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
            self.levels.append(level)


@dataclass(frozen=True)
class VerifyReport:
    size: int
    root: bytes
    checkpoints: int
    problems: list[Problem]
    tree: RebuiltTree

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first_bad_seq(self) -> int | None:
        seqs = [p.seq for p in self.problems if p.seq is not None and p.kind != "state"]  # state: tables
        return min(seqs) if seqs else None


def verify_log(conn: Connection, verifier: NoteVerifier, origin: str) -> VerifyReport:
    problems: list[Problem] = []
    tree = RebuiltTree()
    problems.extend(_check_events(conn, tree))
    tree.build_levels()
    problems.extend(_check_nodes(conn, tree, [p.seq for p in problems if p.seq is not None]))
    checked, cp_problems = _check_checkpoints(conn, tree, verifier, origin)
    problems.extend(cp_problems)
    return VerifyReport(size=tree.size, root=tree.root(), checkpoints=checked, problems=problems, tree=tree)


# The query columns, in the order of the body's keys that they copy.
_COPIED_KEYS = ("ts", "actor", "action", "resource_type", "resource_id", "project", "outcome")
_EVENT_QUERY = select(
    audit_events.c.seq,
    *(audit_events.c[key] for key in _COPIED_KEYS),
    audit_events.c.body,
    audit_events.c.leaf,
).order_by(audit_events.c.seq)


def _check_events(conn: Connection, tree: RebuiltTree) -> list[Problem]:
    """One pass over the events: contiguous seqs, leaf hashes, bodies against their query columns.

    This is the hot loop of `audit verify` (about 10 µs an event): it parses each body once and compares
    plain values, rather than building event objects.
    """
    problems: list[Problem] = []
    leaves = tree.levels[0]
    last_ts = ""
    future = format_ts(utcnow() + CLOCK_SKEW)
    for row in _rows(conn, _EVENT_QUERY):
        fast = _sound_event(row, len(leaves), last_ts, future)
        if fast is not None:
            leaves.append(fast[0])
            last_ts = fast[1]
            continue
        seq, columns, stored_body, stored_leaf = row[0], row[1:-2], row[-2], row[-1]
        if seq != len(leaves):
            problems.append(Problem("event", f"events {len(leaves)}..{seq - 1} are missing (deleted?)", len(leaves)))
        body = _as_bytes(stored_body)
        if body is None:
            problems.append(Problem("event", f"event {seq}: body is not stored as bytes", seq))
            body = str(stored_body).encode("utf-8", "surrogateescape")
        leaf = merkle.leaf_hash(body)
        if leaf != stored_leaf:
            problems.append(Problem("event", f"event {seq}: body does not match its stored leaf hash", seq))
        last_ts = _check_body(problems, seq, body, columns, last_ts, future)
        leaves.append(leaf)
    return problems


_copied = itemgetter(*_COPIED_KEYS)


def _sound_event(row: Sequence[Any], seq: int, last_ts: str, future: str) -> tuple[bytes, str] | None:
    """All of an event's checks in one expression, for the common case where all pass. Whenever this
    returns None, the thorough path runs and says exactly what is wrong."""
    body = row[-2]
    if row[0] != seq or type(body) is not bytes:
        return None
    leaf = merkle.leaf_hash(body)
    try:
        doc = orjson.loads(body)
        sound = (
            leaf == row[-1]
            and type(doc) is dict
            and doc.keys() == encoding.FIELDS
            and doc["v"] == encoding.FORMAT_VERSION
            and doc["seq"] == seq
            and _copied(doc) == tuple(row[1:-2])
            and type(ts := doc["ts"]) is str
            and len(ts) == _TS_LENGTH
            and ts[-1] == "Z"
            and last_ts <= ts <= future
            and orjson.dumps(doc, option=orjson.OPT_SORT_KEYS) == body
        )
    except (orjson.JSONDecodeError, TypeError):
        return None
    return (leaf, ts) if sound else None


def _rows(conn: Connection, query: Select[*tuple[Any, ...]]) -> Iterator[Sequence[Any]]:
    for batch in _batches(conn, query):
        yield from batch


def _batches(conn: Connection, query: Select[*tuple[Any, ...]]) -> Iterator[Sequence[Sequence[Any]]]:
    """Stream a big result in batches (a server-side cursor on PostgreSQL), with little per-row cost.

    On SQLite the rows come straight from the driver's cursor: verification reads every event and node,
    and SQLAlchemy's per-row processing alone would cost a fifth of the time.
    """
    if conn.dialect.name == "sqlite":
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            compiled = query.compile(dialect=conn.dialect)
            cursor.execute(str(compiled), [compiled.params[name] for name in compiled.positiontup or ()])
            while batch := cursor.fetchmany(_BATCH):
                yield batch
        finally:
            cursor.close()
        return
    yield from conn.execute(query.execution_options(yield_per=_BATCH)).partitions()


def _as_bytes(value: object) -> bytes | None:
    """Stored hashes and bodies as bytes; anything else (an attacker can store any type) is None."""
    if type(value) is bytes:
        return value
    return bytes(value) if isinstance(value, bytearray | memoryview) else None


def _parse(body: bytes) -> object:
    """orjson for speed; the standard library where orjson refuses valid JSON (integers over 64 bits)."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return json.loads(body.decode("utf-8"))


def _is_canonical(doc: dict[str, Any], body: bytes) -> bool:
    """orjson writes our canonical form byte for byte in the common case (fast); on any difference the
    standard library, which defines the form, decides."""
    try:
        if orjson.dumps(doc, option=orjson.OPT_SORT_KEYS) == body:
            return True
    except TypeError:
        pass
    try:  # orjson reads integers over 64 bits as floats: parse again exactly
        return encoding.canonical_json(json.loads(body)) == body
    except (TypeError, ValueError):  # UnicodeDecodeError and UnicodeEncodeError are ValueErrors
        return False


def _check_body(
    problems: list[Problem], seq: int, body: bytes, columns: Sequence[object], last_ts: str, future: str
) -> str:
    """Check one body against its row; return the newest timestamp seen so far."""
    try:
        doc = _parse(body)
    except ValueError:  # UnicodeDecodeError is one too
        problems.append(Problem("event", f"event {seq}: body is not valid UTF-8 JSON", seq))
        return last_ts
    if not isinstance(doc, dict) or doc.get("v") != encoding.FORMAT_VERSION:
        problems.append(Problem("event", f"event {seq}: body is not a v{encoding.FORMAT_VERSION} event", seq))
        return last_ts
    if doc.get("seq") != seq:
        problems.append(Problem("event", f"event stored at seq {seq} says it is event {doc.get('seq')} (moved?)", seq))
    if doc.keys() != encoding.FIELDS or not _is_canonical(doc, body):
        problems.append(Problem("event", f"event {seq}: body is not a canonical v1 event", seq))
    values = tuple(map(doc.get, _COPIED_KEYS))
    if values != tuple(columns):  # equal unless a long value was cut to its column's length, or tampering
        _compare_columns(problems, seq, values, columns)
    ts = values[0]
    if not isinstance(ts, str) or len(ts) != _TS_LENGTH or ts[-1] != "Z":
        problems.append(Problem("event", f"event {seq}: malformed timestamp {ts!r}", seq))
        return last_ts
    if ts > future:
        problems.append(Problem("event", f"event {seq}: timestamp {ts} is in the future (forged?)", seq))
    if ts < last_ts:
        problems.append(Problem("event", f"event {seq}: timestamp {ts} is earlier than {last_ts} (back-dated?)", seq))
        return last_ts
    return ts


def _compare_columns(problems: list[Problem], seq: int, values: Sequence[object], columns: Sequence[object]) -> None:
    for key, value, stored in zip(_COPIED_KEYS, values, columns, strict=True):
        if stored != (column_value(value) if isinstance(value, str) else value):
            problems.append(Problem("event", f"event {seq}: column {key!r} differs from the hashed body", seq))


def _check_nodes(conn: Connection, tree: RebuiltTree, bad_seqs: list[int]) -> Iterator[Problem]:
    """Compare stored nodes with the rebuilt ones, reporting only the lowest node each bad spot spoils."""
    if not bad_seqs and _nodes_match(conn, tree):
        return
    bad = sorted(bad_seqs)
    query = select(audit_nodes.c.level, audit_nodes.c.idx, audit_nodes.c.hash).order_by(
        audit_nodes.c.level, audit_nodes.c.idx
    )
    seen = [0] * len(tree.levels)
    for level, idx, digest in _rows(conn, query):
        first, end = idx << level, (idx + 1) << level
        if level >= len(tree.levels) or idx >= len(tree.levels[level]):
            yield Problem("tree", f"stored node ({level}, {idx}) lies beyond the log's end", min(first, tree.size))
            continue
        seen[level] += 1
        if _as_bytes(digest) != tree.levels[level][idx] and not _any_in(bad, first, end):
            yield Problem("tree", f"stored node ({level}, {idx}) does not match events {first}..{end - 1}", first)
            insort(bad, first)
    for level, count in enumerate(seen):
        if count != len(tree.levels[level]):
            yield Problem("tree", f"{len(tree.levels[level]) - count} stored nodes missing at level {level}", None)


def _nodes_match(conn: Connection, tree: RebuiltTree) -> bool:
    """The fast path: each stored level, in index order, equals the rebuilt level (compared as lists)."""
    beyond = select(func.count()).select_from(audit_nodes).where(audit_nodes.c.level >= len(tree.levels))
    if conn.execute(beyond).scalar_one():
        return False
    for level, expected in enumerate(tree.levels):
        query = select(audit_nodes.c.idx, audit_nodes.c.hash).where(audit_nodes.c.level == level)
        rows = list(_rows(conn, query.order_by(audit_nodes.c.idx)))
        if len(rows) != len(expected) or (rows and (rows[0][0], rows[-1][0]) != (0, len(rows) - 1)):
            return False  # unique indexes in order: first 0 and last n-1 means exactly 0..n-1
        if [digest for _, digest in rows] != expected:
            return False
    return True


def _any_in(sorted_values: list[int], lo: int, hi: int) -> bool:
    i = bisect_left(sorted_values, lo)
    return i < len(sorted_values) and sorted_values[i] < hi


def _check_checkpoints(
    conn: Connection, tree: RebuiltTree, verifier: NoteVerifier, origin: str
) -> tuple[int, list[Problem]]:
    problems: list[Problem] = []
    stored = stored_checkpoints(conn)
    for cp in stored:
        checkpoint, found = check_checkpoint_note(cp.note, tree, verifier, origin, where="stored")
        problems.extend(found)
        if checkpoint is not None and (checkpoint.size, checkpoint.root) != (cp.size, cp.root):
            problems.append(Problem("checkpoint", f"stored checkpoint {cp.size}: its columns differ from its note"))
    return len(stored), problems


def check_checkpoint_note(
    note: str, tree: RebuiltTree, verifier: NoteVerifier, origin: str, *, where: str
) -> tuple[Checkpoint | None, list[Problem]]:
    """Check one signed checkpoint against the rebuilt tree: signature, origin, size and root."""
    try:
        checkpoint = verify_checkpoint_note(note, verifier)
    except IntegrityError as exc:
        return None, [Problem("checkpoint", f"{where} checkpoint: {exc}")]
    label = f"{where} checkpoint at size {checkpoint.size}"
    if checkpoint.origin != origin:
        return checkpoint, [Problem("checkpoint", f"{label} is for log {checkpoint.origin!r}, not {origin!r}")]
    if checkpoint.size > tree.size:
        message = f"{label} is beyond the log's end ({tree.size} events): the log was truncated"
        return checkpoint, [Problem("checkpoint", message, tree.size)]
    if tree.root(checkpoint.size) != checkpoint.root:
        return checkpoint, [Problem("checkpoint", f"{label} does not match the events: the log was rewritten")]
    return checkpoint, []
