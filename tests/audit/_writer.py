"""A separate OS process that appends audit events to a workspace, for tests/audit/test_concurrency.py.

Run as ``python _writer.py MODE ...``; it imports only ``mlwarden``. Two modes:

* ``burst``: open the workspace, report ready, wait for the start file, then append ``--count`` events
  (most straight through ``Database.write()`` + ``AuditLog.append``, every ``--door-every``-th through the
  service door as an ``audit.checkpoint`` mutation) and print one JSON summary line.
* ``loop``: append forever (batches of 1-3 events, and now and then a door checkpoint), logging every
  commit to the ``--progress`` file, until the test kills it. With ``--pause-at`` it stops, inside an open
  write transaction, at a named point (``nodes``: after an append inserted its events and nodes;
  ``sign``: while an append signs its policy checkpoint; ``door-sign``: while ``audit checkpoint`` signs;
  ``commit``: just before COMMIT), says so in the progress file and waits to be killed.

Progress lines are written with one ``write()`` each (line buffering), so they survive SIGKILL.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from sqlalchemy import event

from mlwarden.audit.checkpoint import NoteSignature, NoteSigner
from mlwarden.domain.events import AuditRecord, Outcome, Resource
from mlwarden.service.context import ServiceContext
from mlwarden.service.workspace import Workspace, open_workspace

PAUSE_POINTS = ("nodes", "sign", "door-sign", "commit")
PAUSE_SECONDS = 120.0  # far longer than any test waits: a paused writer is always killed, never resumed
BARRIER_TIMEOUT = 60.0


def record(ws: Workspace, writer: str, i: int) -> AuditRecord:
    return AuditRecord(
        actor=ws.actor.name,
        auth_method=ws.actor.auth_method,
        action="test.append",
        resource=Resource("test", f"{writer}-{i}"),
        outcome=Outcome.OK,
        client="test-writer",
        details={"writer": writer, "i": i},
    )


def append(ctx: ServiceContext, records: list[AuditRecord]) -> int:
    """Append in one write transaction (the path the door uses); return the log size after it."""
    with ctx.db.write() as conn:
        events = ctx.log.append_many(conn, records)
    return events[-1].seq + 1


def wait_for(path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} did not appear within {timeout} s")
        time.sleep(0.001)


def burst(args: argparse.Namespace) -> None:
    with open_workspace(args.root, token=args.token, client="test-writer") as ws:
        ctx: ServiceContext = ws._ctx
        Path(args.ready).write_text("ready")
        wait_for(Path(args.start), BARRIER_TIMEOUT)
        began = time.time()
        door_calls = 0
        for i in range(args.count):
            if args.door_every and i % args.door_every == args.door_every - 1:
                ws.audit.checkpoint()
                door_calls += 1
            else:
                append(ctx, [record(ws, args.name, i)])
        ended = time.time()
    print(json.dumps({"name": args.name, "began": began, "ended": ended, "door_calls": door_calls}), flush=True)


class _PausingSigner(NoteSigner):
    """A signer that, once armed, stops in the middle of signing a checkpoint."""

    def __init__(self, inner: NoteSigner, pause: Callable[[], None]) -> None:
        self.key_id, self.name, self._inner, self._pause = inner.key_id, inner.name, inner, pause
        self.armed = False

    def verifier(self) -> Any:
        return self._inner.verifier()

    def sign(self, text: bytes) -> NoteSignature:
        if self.armed:
            self._pause()
        return self._inner.sign(text)


def loop(args: argparse.Namespace) -> None:
    progress: TextIO = Path(args.progress).open("a", buffering=1, encoding="utf-8")
    rng = random.Random(args.seed)  # noqa: S311 - batch sizes, not secrets

    def pause() -> None:
        progress.write(f"paused {args.pause_at}\n")
        time.sleep(PAUSE_SECONDS)
        sys.exit(f"writer paused at {args.pause_at} was not killed")

    with open_workspace(args.root, token=args.token, client="test-writer") as ws:
        ctx: ServiceContext = ws._ctx
        armed = False
        signer = _PausingSigner(ctx.log.signer, pause)
        ctx.log.signer = signer  # the door's AuditLog is this same object

        @event.listens_for(ctx.db.engine, "after_cursor_execute")
        def _after_execute(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
            if armed and args.pause_at == "nodes" and statement.lstrip().upper().startswith("INSERT INTO AUDIT_NODES"):
                pause()

        @event.listens_for(ctx.db.engine, "commit")
        def _before_commit(_conn: Any) -> None:
            if armed and args.pause_at == "commit":
                pause()

        progress.write("started\n")
        for i in range(1_000_000):
            if i == args.arm_after and args.pause_at:
                armed = True
                signer.armed = args.pause_at in ("sign", "door-sign")
            # Armed for "sign", only plain appends run, so the pause hits the policy checkpoint that an
            # append signs after inserting its events and nodes; armed for "door-sign", only door calls
            # run, so it hits `audit checkpoint` signing before it appends its event.
            door = args.pause_at == "door-sign" if armed else i % 5 == 4
            if door:
                size = ws.audit.checkpoint().size + 1
            else:
                size = append(ctx, [record(ws, args.name, i * 10 + k) for k in range(rng.randint(1, 3))])
            progress.write(f"committed {size}\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="mode", required=True)
    b = sub.add_parser("burst")
    b.add_argument("--root", required=True)
    b.add_argument("--token", required=True)
    b.add_argument("--name", required=True)
    b.add_argument("--count", type=int, required=True)
    b.add_argument("--door-every", type=int, default=0)
    b.add_argument("--ready", required=True)
    b.add_argument("--start", required=True)
    lp = sub.add_parser("loop")
    lp.add_argument("--root", required=True)
    lp.add_argument("--token", required=True)
    lp.add_argument("--name", required=True)
    lp.add_argument("--progress", required=True)
    lp.add_argument("--seed", type=int, default=0)
    lp.add_argument("--pause-at", choices=PAUSE_POINTS, default=None)
    lp.add_argument("--arm-after", type=int, default=3)
    args = parser.parse_args(argv)
    (burst if args.mode == "burst" else loop)(args)


if __name__ == "__main__":
    main()
