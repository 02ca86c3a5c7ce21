"""Audit log throughput: mlwarden's RFC 6962 log against a naive SHA-256 hash chain, both on SQLite.

Run ``python benchmarks/audit.py [--events N]`` (or ``make bench``). It measures, in one run:

* append, unbatched: one write transaction per event, the path the service door uses
  (``with ctx.db.write() as conn: ctx.log.append(conn, record)``);
* append, batched: ``ctx.log.append_many`` with ``--batch`` events per write transaction;
* full verification: ``mlwarden.audit.verify.verify_log`` (every leaf from its canonical body, the query
  columns, every stored tree node, every checkpoint signature);

and the same three for a naive hash chain written here (``hash = sha256(prev_hash || canonical bytes)``,
raw ``sqlite3``, the same PRAGMAs: WAL, synchronous=NORMAL, BEGIN IMMEDIATE), fed the same events. The
unbatched append runs on the first ``--unbatched`` events; the rest of the N events are appended in
batches, then the whole log is verified. Results go to benchmarks/results/audit.md (overwritten) and
stdout. ``--profile`` also prints the top cProfile entries of each mlwarden phase to stderr.
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import io
import os
import platform
import pstats
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy

import mlwarden
from mlwarden.audit import encoding
from mlwarden.audit.clock import format_ts, utcnow
from mlwarden.audit.verify import verify_log
from mlwarden.domain.events import AuditEvent, AuditRecord, AuthMethod, DetailValue, Outcome, Resource
from mlwarden.service.context import ServiceContext
from mlwarden.service.init import init_workspace

RESULTS = Path(__file__).resolve().parent / "results" / "audit.md"

# Targets from the issue, in events per second on SQLite.
TARGET_VERIFY = 100_000
TARGET_UNBATCHED_APPEND = 2_000

# -- realistic events --------------------------------------------------------------------------------

_ACTORS = ("alice", "bob", "carol", "dmitri", "ci-pipeline", "labeler-sync")
_CLIENTS = ("cli", "sdk", "server")
_PROJECTS = ("fraud-detection", "churn", "credit-risk", None)
_ACTIONS = (
    ("dataset.ingest", "dataset"),
    ("dataset.gate", "dataset"),
    ("run.log_metrics", "run"),
    ("model.register", "model"),
    ("model.promote", "model"),
    ("audit.read", "audit_log"),
    ("token.create", "token"),
)
_SOURCES = ("vendor-acme", "labeler-scale", "scraper-eu", "warehouse")


def make_record(i: int) -> AuditRecord:
    """Event ``i`` of the benchmark: deterministic, varied, about 450 bytes once encoded."""
    h = hashlib.sha256(i.to_bytes(8, "big")).digest()
    action, rtype = _ACTIONS[h[0] % len(_ACTIONS)]
    denied = h[1] < 5  # about 2% of calls are refused
    changes = not denied and action != "audit.read"
    updates = changes and h[2] % 4 == 0
    details: dict[str, DetailValue] = {
        "source": _SOURCES[h[3] % len(_SOURCES)],
        "rows": int.from_bytes(h[4:8], "big") % 5_000_000,
        "bytes": int.from_bytes(h[8:12], "big"),
        "gate": "accepted" if h[12] % 10 else "quarantined",
    }
    return AuditRecord(
        actor=_ACTORS[h[13] % len(_ACTORS)],
        auth_method=AuthMethod.TOKEN,
        action=action,
        resource=Resource(type=rtype, id=f"{rtype[:2]}_{h[14:22].hex()}", project=_PROJECTS[h[22] % len(_PROJECTS)]),
        outcome=Outcome.DENIED if denied else Outcome.OK,
        reason="role viewer lacks permission" if denied else None,
        digest_before=f"sha256:{hashlib.sha256(h).hexdigest()}" if updates else None,
        digest_after=f"sha256:{h.hex()}" if changes else None,
        request_id=h[23:31].hex(),
        client=_CLIENTS[h[31] % len(_CLIENTS)],
        details=details,
    )


def records(start: int, count: int) -> list[AuditRecord]:
    return [make_record(i) for i in range(start, start + count)]


# -- the naive baseline --------------------------------------------------------------------------------


def baseline_bytes(seq: int, ts: str, rec: AuditRecord) -> bytes:
    """The same canonical bytes mlwarden hashes, so both logs store and hash identical payloads."""
    return encoding.encode(AuditEvent(seq=seq, ts=ts, record=rec))


class HashChain:
    """A naive tamper-evident log: each row stores sha256(previous hash || canonical event bytes)."""

    GENESIS = b"\x00" * 32

    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None)
        self.conn.execute("PRAGMA busy_timeout = 60000")
        self.conn.execute("PRAGMA journal_mode = WAL")
        self.conn.execute("PRAGMA synchronous = NORMAL")
        self.conn.execute("CREATE TABLE chain (seq INTEGER PRIMARY KEY, body BLOB NOT NULL, hash BLOB NOT NULL)")

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def append_many(self, conn: sqlite3.Connection, recs: list[AuditRecord]) -> None:
        # Read the tail inside the write transaction, as mlwarden does, so concurrent writers cannot fork.
        row = conn.execute("SELECT seq, hash FROM chain ORDER BY seq DESC LIMIT 1").fetchone()
        seq, prev = (0, self.GENESIS) if row is None else (row[0] + 1, row[1])
        ts = format_ts(utcnow())
        rows = []
        for rec in recs:
            body = baseline_bytes(seq, ts, rec)
            prev = hashlib.sha256(prev + body).digest()
            rows.append((seq, body, prev))
            seq += 1
        conn.executemany("INSERT INTO chain (seq, body, hash) VALUES (?, ?, ?)", rows)

    def verify(self) -> int:
        prev, expected = self.GENESIS, 0
        self.conn.execute("BEGIN")
        try:
            for seq, body, stored in self.conn.execute("SELECT seq, body, hash FROM chain ORDER BY seq"):
                prev = hashlib.sha256(prev + body).digest()
                if seq != expected or prev != stored:
                    raise AssertionError(f"baseline chain broken at {seq}")
                expected += 1
        finally:
            self.conn.execute("COMMIT")
        return expected

    def close(self) -> None:
        self.conn.close()


# -- measuring -----------------------------------------------------------------------------------------


@dataclass
class Measure:
    events: int = 0
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


class Profiler:
    """cProfile around the timed mlwarden sections when --profile is given (off otherwise)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.profiles: dict[str, cProfile.Profile] = {}

    @contextmanager
    def section(self, name: str) -> Iterator[None]:
        if not self.enabled:
            yield
            return
        prof = self.profiles.setdefault(name, cProfile.Profile())
        prof.enable()
        try:
            yield
        finally:
            prof.disable()

    def report(self, top: int = 25) -> None:
        for name, prof in self.profiles.items():
            for key in ("tottime", "cumulative"):
                out = io.StringIO()
                pstats.Stats(prof, stream=out).strip_dirs().sort_stats(key).print_stats(top)
                print(f"\n===== profile: {name} (by {key}) =====\n{out.getvalue()}", file=sys.stderr)


def timed_batches(total: int, batch: int, start: int, run: Callable[[list[AuditRecord]], None]) -> Measure:
    """Append ``total`` events in batches, timing only the transactions (not building the records)."""
    measure = Measure()
    done = 0
    while done < total:
        chunk = records(start + done, min(batch, total - done))
        t0 = time.perf_counter()
        run(chunk)
        measure.seconds += time.perf_counter() - t0
        done += len(chunk)
    measure.events = done
    return measure


@dataclass
class Results:
    unbatched: Measure
    batched: Measure
    verify: Measure


def bench_mlwarden(ctx: ServiceContext, n: int, unbatched: int, batch: int, prof: Profiler) -> Results:
    db, log = ctx.db, ctx.log

    def one_per_transaction(chunk: list[AuditRecord]) -> None:
        with prof.section("mlwarden append, unbatched"):
            for rec in chunk:
                with db.write() as conn:
                    log.append(conn, rec)

    def one_transaction(chunk: list[AuditRecord]) -> None:
        with prof.section("mlwarden append, batched"), db.write() as conn:
            log.append_many(conn, chunk)

    m_unbatched = timed_batches(unbatched, 1000, 0, one_per_transaction)
    m_batched = timed_batches(n - unbatched, batch, unbatched, one_transaction)
    with db.read() as conn:
        size = log.size(conn)
    with prof.section("mlwarden verify"), db.read() as conn:
        t0 = time.perf_counter()
        report = verify_log(conn, ctx.verifier, ctx.config.origin)
        seconds = time.perf_counter() - t0
    if not report.ok or report.size != size:
        raise AssertionError(f"mlwarden verify failed: {report.problems[:3]}")
    return Results(m_unbatched, m_batched, Measure(report.size, seconds))


def bench_baseline(path: Path, n: int, unbatched: int, batch: int) -> Results:
    chain = HashChain(path)
    try:

        def one_per_transaction(chunk: list[AuditRecord]) -> None:
            for rec in chunk:
                with chain.write() as conn:
                    chain.append_many(conn, [rec])

        def one_transaction(chunk: list[AuditRecord]) -> None:
            with chain.write() as conn:
                chain.append_many(conn, chunk)

        m_unbatched = timed_batches(unbatched, 1000, 0, one_per_transaction)
        m_batched = timed_batches(n - unbatched, batch, unbatched, one_transaction)
        t0 = time.perf_counter()
        size = chain.verify()
        return Results(m_unbatched, m_batched, Measure(size, time.perf_counter() - t0))
    finally:
        chain.close()


# -- reporting -----------------------------------------------------------------------------------------


def filesystem_of(path: Path) -> str:
    """The file system type holding ``path`` (commit and WAL costs depend on it)."""
    best, kind = "", "unknown"
    try:
        for line in Path("/proc/mounts").read_text().splitlines():
            fields = line.split()
            if len(fields) > 2 and str(path).startswith(fields[1]) and len(fields[1]) > len(best):
                best, kind = fields[1], f"{fields[2]} ({fields[0]})"
    except OSError:
        pass
    return kind


def machine_info(db_dir: Path) -> list[tuple[str, str]]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        commit = subprocess.run(
            ["git", "describe", "--always", "--dirty"], capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = "unknown"
    return [
        ("date (UTC)", datetime.now(UTC).strftime("%Y-%m-%d %H:%M")),
        ("CPU", f"{cpu}, {os.cpu_count()} logical CPUs"),
        ("OS", platform.platform()),
        ("Python", platform.python_version()),
        ("SQLite", sqlite3.sqlite_version),
        ("databases on", filesystem_of(db_dir)),
        ("SQLAlchemy", sqlalchemy.__version__),
        ("mlwarden", f"{getattr(mlwarden, '__version__', '?')} (git {commit})"),
    ]


def render(
    args: argparse.Namespace,
    mlw: Results,
    base: Results,
    event_bytes: float,
    wall: float,
) -> str:
    def row(label: str, a: Measure, b: Measure) -> str:
        ratio = a.rate / b.rate if b.rate else float("nan")
        return (
            f"| {label} | {a.events:,} | {a.rate:,.0f} | {b.events:,} | {b.rate:,.0f} | {ratio:.2f}x |"
            f" {a.seconds:.2f} s / {b.seconds:.2f} s |"
        )

    def target(label: str, got: float, want: int) -> str:
        verdict = "PASS" if got >= want else "FAIL"
        return f"| {label} | >= {want:,} events/s | {got:,.0f} events/s | **{verdict}** |"

    lines = [
        "# Audit log benchmark",
        "",
        f"`python benchmarks/audit.py --events {args.events} --unbatched {args.unbatched} --batch {args.batch}`"
        f" (wall time {wall:.0f} s). Events are realistic `AuditRecord`s (actor, action, resource, digests,"
        f" 4 detail fields), {event_bytes:.0f} bytes each once canonically encoded on average.",
        "",
        "| machine | |",
        "| --- | --- |",
        *(f"| {k} | {v} |" for k, v in machine_info((args.dir or Path(tempfile.gettempdir())).resolve())),
        "",
        "## Throughput (events/s, higher is better)",
        "",
        "| measure | mlwarden events | mlwarden events/s | baseline events | baseline events/s"
        " | mlwarden / baseline | time (mlwarden / baseline) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        row("append, unbatched (1 event per write transaction)", mlw.unbatched, base.unbatched),
        row(f"append, batched ({args.batch} events per write transaction)", mlw.batched, base.batched),
        row("full verification", mlw.verify, base.verify),
        "",
        "## Targets (from the issue, SQLite)",
        "",
        "| target | wanted | measured | result |",
        "| --- | --- | --- | --- |",
        target("full verification", mlw.verify.rate, TARGET_VERIFY),
        target("append, unbatched", mlw.unbatched.rate, TARGET_UNBATCHED_APPEND),
        "",
        "## What is compared",
        "",
        "* **mlwarden**: the workspace database made by `init_workspace` (SQLAlchemy Core, SQLite WAL,"
        " synchronous=NORMAL, `BEGIN IMMEDIATE` per write transaction). Each append encodes the event"
        " canonically, hashes its RFC 6962 leaf, reads the tail and the O(log n) nodes of the tree's"
        " compact range (two queries),"
        " inserts the event row (7 indexed query columns + body + leaf) and the perfect nodes it completes,"
        " and signs an Ed25519 checkpoint every 1000 events. Verification (`verify_log`) parses every"
        " body, checks its canonical form, recomputes every leaf, cross-checks the query columns and timestamps,"
        " rebuilds every tree level and compares every stored node, and checks every checkpoint signature"
        " and root.",
        "* **baseline**: a naive hash chain in this script, on raw `sqlite3` with the same PRAGMAs and"
        " `BEGIN IMMEDIATE`: one table `(seq, body, hash)`, `hash = sha256(prev_hash || canonical JSON)`,"
        " the tail read inside each write transaction. Verification re-walks the chain. It has no query"
        " columns or indexes, no tree, no signed checkpoints, no proofs of inclusion or consistency.",
        f"* The first {args.unbatched:,} events are appended one per transaction (the unbatched rows);"
        " the rest in batches; verification covers the whole log (mlwarden's also holds the few events"
        " written by `init_workspace`). Only the transactions are timed, not building the records.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000, help="events in the log (default 100000)")
    parser.add_argument("--unbatched", type=int, default=10_000, help="of which appended one per transaction")
    parser.add_argument("--batch", type=int, default=1000, help="events per batched write transaction")
    parser.add_argument("--dir", type=Path, default=None, help="where to create the databases (default: a tmpdir)")
    parser.add_argument("--profile", action="store_true", help="print cProfile top functions to stderr")
    parser.add_argument("--output", type=Path, default=RESULTS, help="Markdown results file (overwritten)")
    args = parser.parse_args(argv)
    args.unbatched = min(args.unbatched, args.events)
    if args.events < 1 or args.batch < 1 or args.unbatched < 0:
        parser.error("--events and --batch must be positive, --unbatched not negative")

    wall0 = time.perf_counter()
    prof = Profiler(args.profile)
    event_bytes = sum(len(encoding.encode(_as_event(i))) for i in range(1000)) / 1000
    with tempfile.TemporaryDirectory(prefix="mlwarden-bench-", dir=args.dir) as tmp:
        initialized = init_workspace(Path(tmp) / "ws", checkpoint_every=1000)
        ws = initialized.workspace
        try:
            print(f"mlwarden: {args.events:,} events ...", file=sys.stderr)
            mlw = bench_mlwarden(ws._ctx, args.events, args.unbatched, args.batch, prof)
        finally:
            ws.close()
        print(f"baseline: {args.events:,} events ...", file=sys.stderr)
        base = bench_baseline(Path(tmp) / "chain.db", args.events, args.unbatched, args.batch)
    table = render(args, mlw, base, event_bytes, time.perf_counter() - wall0)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(table)
    print(table)
    prof.report()
    return 0


def _as_event(i: int) -> AuditEvent:
    return AuditEvent(seq=i, ts=format_ts(utcnow()), record=make_record(i))


if __name__ == "__main__":
    sys.exit(main())
