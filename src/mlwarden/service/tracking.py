"""Experiment tracking through the one door: runs, parameters, metrics, tags, input datasets.

A ``Run`` buffers what it logs and commits it in batches (every ``FLUSH_ROWS`` values, every
``FLUSH_SECONDS``, at ``flush()``, at the run's end and at interpreter exit): each batch is one
transaction and one audit event whose digest covers every value in it. A crash loses at most the
unflushed batch, never part of one. Inputs are dataset versions by digest, and a version the ingestion
gate has not accepted is refused.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import math
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from sqlalchemy import Connection, func, insert, select

from mlwarden.audit.clock import format_ts, utcnow
from mlwarden.data.versions import Reference
from mlwarden.domain.actions import Action
from mlwarden.domain.events import DetailValue, Resource
from mlwarden.errors import GateBlocked, MlwardenError, NotFound, UsageError
from mlwarden.service.context import ServiceContext
from mlwarden.service.dataset_changes import new_id
from mlwarden.service.dataset_store import chosen_project, resolve
from mlwarden.service.door import Applied, Refusal, mutation
from mlwarden.service.projects import require_project
from mlwarden.store.tables import next_seq, run_artifacts, run_ends, run_inputs, run_metrics, run_params, run_tags, runs

FLUSH_ROWS = 1_000
FLUSH_SECONDS = 5.0
MAX_KEY = 256
MAX_VALUE = 6_000
STATUSES = ("finished", "failed", "killed")


def run_resource(project: str, run_id: str) -> Resource:
    return Resource("run", run_id, project)


def _key(key: str) -> str:
    if not isinstance(key, str) or not 0 < len(key) <= MAX_KEY or any(ord(c) < 32 for c in key):
        raise UsageError(f"invalid key {str(key)[:40]!r}", hint=f"1 to {MAX_KEY} printable characters")
    return key


class TrackingService:
    def __init__(self, ctx: ServiceContext) -> None:
        self._ctx = ctx

    @mutation
    def start_run(self, project: str | None = None, name: str = "run", *, capture: bool = True) -> Run:
        """Start a run (use it as a context manager: it ends as finished, or failed on an exception)."""
        from mlwarden.tracking.environment import capture as capture_environment

        project = chosen_project(project, self._ctx.config.default_project)
        name = _key(name)
        environment = capture_environment() if capture else {}
        run_id = new_id("run")

        def apply(conn: Connection) -> Applied[str]:
            require_project(conn, project)
            conn.execute(
                insert(runs).values(
                    id=run_id,
                    project=project,
                    name=name,
                    actor=self._ctx.actor.name,
                    started_at=format_ts(utcnow()),
                    environment=json.dumps(environment, sort_keys=True),
                )
            )
            code = environment.get("code", {})
            return Applied(run_id, details={"name": name, "commit": code.get("commit"), "dirty": code.get("dirty")})

        self._ctx.door.run(self._ctx.actor, Action.RUN_START, run_resource(project, run_id), apply)
        return Run(self, run_id)

    @mutation
    def log_batch(
        self,
        run_id: str,
        *,
        params: Mapping[str, str] | None = None,
        metrics: list[tuple[str, float, int, str]] | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> int:
        """Commit one batch: params (immutable once logged), metrics (key, value, step, time), tags."""
        params, metrics, tags = dict(params or {}), list(metrics or []), dict(tags or {})

        def apply(conn: Connection) -> Applied[int]:
            self._open_run(conn, run_id)
            number = _next_batch(conn, run_id)
            stored = _insert_params(conn, run_id, params, number)  # a param logged again with its value: once
            if metrics:
                rows = [
                    {"run_id": run_id, "key": k, "value": v, "step": s, "at": t, "batch": number}
                    for k, v, s, t in metrics
                ]
                conn.execute(insert(run_metrics), rows)
            _insert_tags(conn, run_id, tags, number)
            counts = {"params": len(stored), "metrics": len(metrics), "tags": len(tags), "batch": number}
            return Applied(number, digest_after=batch_digest(stored, metrics, tags), details=dict(counts))

        return self._ctx.door.run(self._ctx.actor, Action.RUN_LOG, self._target(run_id), apply)

    @mutation
    def use_dataset(self, run_id: str, ref: str) -> dict[str, Any]:
        """Record a dataset version as the run's input; only a version the gate accepted may be one (a
        refusal is audited as a denied attempt and raises ``GateBlocked``)."""
        from mlwarden.service.gate_store import version_status

        parsed = Reference.parse(ref)

        def apply(conn: Connection) -> Applied[dict[str, Any]]:
            project = self._open_run(conn, run_id)
            dataset, version = resolve(conn, project, parsed)
            status = version_status(conn, dataset, version)
            if status != "accepted":  # it changed since the check above
                raise Refusal(f"{version.ref} is {status} by the ingestion gate: not a training input")
            conn.execute(
                insert(run_inputs).values(
                    run_id=run_id, dataset_id=dataset.id, version=version.number, digest=str(version.digest)
                )
            )
            value = {"dataset": dataset.name, "version": version.number, "digest": str(version.digest)}
            details: dict[str, DetailValue] = {"dataset": dataset.name, "version": version.number}
            return Applied(value, digest_after=str(version.digest), details=details)

        def status_of(conn: Connection) -> tuple[Resource, str, str]:
            project = self._open_run(conn, run_id)
            dataset, version = resolve(conn, project, parsed)
            return run_resource(project, run_id), version.ref, version_status(conn, dataset, version)

        resource, named, status = self._ctx.door.read(
            self._ctx.actor, Action.RUN_INPUT, self._target(run_id), status_of
        )
        if status != "accepted":
            reason = f"{named} is {status} by the ingestion gate: not a training input"
            self._ctx.door.record_denial(self._ctx.actor, Action.RUN_INPUT, resource, reason)
            raise GateBlocked(reason, hint="an approver accepts the quarantined ingestion, or a revert drops it")
        return self._ctx.door.run(self._ctx.actor, Action.RUN_INPUT, self._target(run_id), apply)

    @mutation
    def log_artifact(self, run_id: str, data: str | Path | bytes, name: str | None = None) -> dict[str, Any]:
        """Store a file the run produced (content-addressed in the blob store) under ``name``."""
        if isinstance(data, bytes):
            if name is None:
                raise UsageError("name the artifact when logging bytes")
            digest = self._ctx.blobs.put_bytes(data)
        else:
            path = Path(data)
            if not path.is_file():
                raise UsageError(f"{path} is not a file", hint="log a file, or bytes with a name")
            name = name or path.name
            with path.open("rb") as stream:
                digest = self._ctx.blobs.put_stream(stream)
        key = _key(name or "")
        size = self._ctx.blobs.size(digest)

        def apply(conn: Connection) -> Applied[dict[str, Any]]:
            self._open_run(conn, run_id)
            taken = select(run_artifacts.c.digest).where(run_artifacts.c.run_id == run_id, run_artifacts.c.name == key)
            if conn.execute(taken).first() is not None:
                raise UsageError(f"run {run_id} already has an artifact named {key!r}", hint="artifacts are immutable")
            conn.execute(insert(run_artifacts).values(run_id=run_id, name=key, digest=str(digest), size=size))
            value = {"name": key, "digest": str(digest), "size": size}
            return Applied(value, digest_after=str(digest), details={"name": key, "size": size})

        return self._ctx.door.run(self._ctx.actor, Action.RUN_ARTIFACT, self._target(run_id), apply)

    @mutation
    def end_run(self, run_id: str, status: str = "finished") -> None:
        if status not in STATUSES:
            raise UsageError(f"status must be one of {', '.join(STATUSES)}")

        def apply(conn: Connection) -> Applied[None]:
            self._open_run(conn, run_id)
            conn.execute(insert(run_ends).values(run_id=run_id, status=status, ended_at=format_ts(utcnow())))
            return Applied(None, details={"status": status})

        self._ctx.door.run(self._ctx.actor, Action.RUN_END, self._target(run_id), apply)

    def _open_run(self, conn: Connection, run_id: str) -> str:
        """The run's project, if it is still running and this actor's (or an admin acts)."""
        row = conn.execute(select(runs.c.project, runs.c.actor).where(runs.c.id == run_id)).first()
        if row is None:
            raise NotFound(f"no run {run_id}")
        if conn.execute(select(run_ends.c.status).where(run_ends.c.run_id == run_id)).first() is not None:
            raise Refusal(f"run {run_id} has ended: nothing more can be logged to it")
        if row.actor != self._ctx.actor.name and not self._ctx.actor.is_admin:
            raise Refusal(f"run {run_id} belongs to {row.actor}")
        return str(row.project)

    def _target(self, run_id: str) -> Any:
        def resolve_run(conn: Connection) -> Resource:
            project = conn.execute(select(runs.c.project).where(runs.c.id == run_id)).scalar()
            if project is None:
                raise NotFound(f"no run {run_id}", hint="see `mlwarden run list`")
            return run_resource(str(project), run_id)

        return resolve_run

    # -- reads ----------------------------------------------------------------------------------------------

    def list_runs(self, *, project: str | None = None) -> list[dict[str, Any]]:
        project = chosen_project(project, self._ctx.config.default_project)

        def fetch(conn: Connection) -> list[dict[str, Any]]:
            require_project(conn, project)
            query = (
                select(runs, run_ends.c.status, run_ends.c.ended_at)
                .outerjoin(run_ends, run_ends.c.run_id == runs.c.id)
                .where(runs.c.project == project)
                .order_by(runs.c.started_at, runs.c.id)
            )
            return [_summary(row) for row in conn.execute(query).mappings()]

        target = Resource("run", f"{project}/*", project)
        return self._ctx.door.read(self._ctx.actor, Action.RUN_READ, target, fetch)

    def show_run(self, run_id: str) -> dict[str, Any]:
        """A run: environment, params, the last value of each metric, tags and inputs."""
        return self._ctx.door.read(
            self._ctx.actor, Action.RUN_READ, self._target(run_id), lambda c: _details(c, run_id)
        )

    def metric_history(self, run_id: str, key: str) -> list[dict[str, Any]]:
        def fetch(conn: Connection) -> list[dict[str, Any]]:
            query = (
                select(run_metrics.c.step, run_metrics.c.value, run_metrics.c.at)
                .where(run_metrics.c.run_id == run_id, run_metrics.c.key == key)
                .order_by(run_metrics.c.step, run_metrics.c.batch)
            )
            return [dict(row) for row in conn.execute(query).mappings()]

        return self._ctx.door.read(self._ctx.actor, Action.RUN_READ, self._target(run_id), fetch)

    def compare_runs(self, a: str, b: str) -> dict[str, Any]:
        """Params that differ and each metric's last value in both runs, with the change."""
        first, second = self.show_run(a), self.show_run(b)
        keys = sorted(first["params"].keys() | second["params"].keys())
        params = {
            k: [first["params"].get(k), second["params"].get(k)]
            for k in keys
            if first["params"].get(k) != second["params"].get(k)
        }
        metrics = {}
        for key in sorted(first["metrics"].keys() | second["metrics"].keys()):
            x, y = first["metrics"].get(key), second["metrics"].get(key)
            metrics[key] = {"a": x, "b": y, "delta": y - x if x is not None and y is not None else None}
        return {"a": first["run"], "b": second["run"], "params": params, "metrics": metrics}


def batch_digest(params: Mapping[str, str], metrics: list[tuple[str, float, int, str]], tags: Mapping[str, str]) -> str:
    """SHA-256 over a batch in canonical form (metrics sorted), as its run.log event records it: the
    rows in the database give it back (``reconcile_runs``)."""
    rows = sorted([k, float(v), int(s), t] for k, v, s, t in metrics)
    canonical = json.dumps({"params": dict(params), "metrics": rows, "tags": dict(tags)}, sort_keys=True)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def _next_batch(conn: Connection, run_id: str) -> int:
    last = max(
        int(conn.execute(select(func.max(table.c.batch)).where(table.c.run_id == run_id)).scalar() or 0)
        for table in (run_metrics, run_params, run_tags)
    )
    return last + 1


def _insert_params(conn: Connection, run_id: str, params: dict[str, str], batch: int) -> dict[str, str]:
    """Insert the params not logged before; return them (one already logged must have the same value)."""
    if not params:
        return {}
    existing = dict(
        conn.execute(select(run_params.c.key, run_params.c.value).where(run_params.c.run_id == run_id)).all()
    )
    changed = [k for k, v in params.items() if k in existing and existing[k] != v]
    if changed:
        raise UsageError(f"params are immutable once logged: {', '.join(changed[:5])}", hint="log a new key instead")
    fresh = {k: v for k, v in params.items() if k not in existing}
    if fresh:
        conn.execute(
            insert(run_params), [{"run_id": run_id, "key": k, "value": v, "batch": batch} for k, v in fresh.items()]
        )
    return fresh


def _insert_tags(conn: Connection, run_id: str, tags: dict[str, str], batch: int) -> None:
    for key, value in tags.items():
        seq = next_seq(conn, run_tags, run_tags.c.run_id == run_id, run_tags.c.key == key)
        conn.execute(insert(run_tags).values(run_id=run_id, key=key, seq=seq, value=value, batch=batch))


def _summary(row: Any) -> dict[str, Any]:
    return {
        "id": row["id"],
        "project": row["project"],
        "name": row["name"],
        "actor": row["actor"],
        "started_at": row["started_at"],
        "status": row["status"] or "running",
        "ended_at": row["ended_at"],
    }


def _details(conn: Connection, run_id: str) -> dict[str, Any]:
    query = select(runs, run_ends.c.status, run_ends.c.ended_at).outerjoin(run_ends, run_ends.c.run_id == runs.c.id)
    row = conn.execute(query.where(runs.c.id == run_id)).mappings().first()
    if row is None:
        raise NotFound(f"no run {run_id}")
    params = dict(conn.execute(select(run_params.c.key, run_params.c.value).where(run_params.c.run_id == run_id)).all())
    steps = select(run_metrics.c.key, run_metrics.c.value).where(run_metrics.c.run_id == run_id)
    ordered = conn.execute(steps.order_by(run_metrics.c.step, run_metrics.c.batch)).all()
    metrics: dict[str, float] = dict(ordered)  # later steps overwrite earlier ones: each key's last value
    tag_rows = select(run_tags.c.key, run_tags.c.value).where(run_tags.c.run_id == run_id).order_by(run_tags.c.seq)
    tags: dict[str, str] = dict(conn.execute(tag_rows).all())
    from mlwarden.store.tables import datasets

    artifacts = [
        {"name": name, "digest": digest, "size": size}
        for name, digest, size in conn.execute(
            select(run_artifacts.c.name, run_artifacts.c.digest, run_artifacts.c.size)
            .where(run_artifacts.c.run_id == run_id)
            .order_by(run_artifacts.c.name)
        ).all()
    ]
    inputs = [
        {"dataset": name, "version": version, "digest": digest}
        for name, version, digest in conn.execute(
            select(datasets.c.name, run_inputs.c.version, run_inputs.c.digest)
            .join(datasets, datasets.c.id == run_inputs.c.dataset_id)
            .where(run_inputs.c.run_id == run_id)
        ).all()
    ]
    return {
        "run": _summary(row),
        "environment": json.loads(row["environment"]),
        "params": params,
        "metrics": metrics,
        "tags": tags,
        "inputs": inputs,
        "artifacts": artifacts,
    }


class Run:
    """A running experiment: log to it, then end it (or use it as a context manager)."""

    def __init__(self, service: TrackingService, run_id: str) -> None:
        self.id = run_id
        self._service = service
        self._params: dict[str, str] = {}
        self._metrics: list[tuple[str, float, int, str]] = []
        self._tags: dict[str, str] = {}
        self._steps: dict[str, int] = {}
        self._last_flush = time.monotonic()
        self._ended = False
        atexit.register(self._flush_at_exit)

    def log_param(self, key: str, value: object) -> None:
        self.log_params({key: value})

    def log_params(self, params: Mapping[str, object]) -> None:
        for key, value in params.items():
            self._params[_key(key)] = str(value)[:MAX_VALUE]
        self._maybe_flush()

    def log_metric(self, key: str, value: float, step: int | None = None) -> None:
        self.log_metrics({key: value}, step)

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        at = format_ts(utcnow())
        for key, value in metrics.items():
            number = float(value)
            if not math.isfinite(number):
                raise UsageError(f"metric {key!r} is {number}: only finite values are recorded")
            chosen = self._steps.get(key, 0) if step is None else int(step)
            self._steps[key] = chosen + 1
            self._metrics.append((_key(key), number, chosen, at))
        self._maybe_flush()

    def set_tag(self, key: str, value: object) -> None:
        self._tags[_key(key)] = str(value)[:MAX_VALUE]
        self._maybe_flush()

    def use_dataset(self, ref: str) -> dict[str, Any]:
        """Record an input dataset version now (refused unless the gate accepted it)."""
        return self._service.use_dataset(self.id, ref)

    def log_artifact(self, data: str | Path | bytes, name: str | None = None) -> dict[str, Any]:
        """Store a file (or bytes, named) the run produced, now."""
        return self._service.log_artifact(self.id, data, name)

    def _maybe_flush(self) -> None:
        pending = len(self._params) + len(self._metrics) + len(self._tags)
        if pending >= FLUSH_ROWS or time.monotonic() - self._last_flush >= FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        """Commit what is buffered as one batch (one transaction, one audit event)."""
        params, metrics, tags = self._params, self._metrics, self._tags
        self._params, self._metrics, self._tags = {}, [], {}  # a refused batch is reported, not retried
        self._last_flush = time.monotonic()
        if params or metrics or tags:
            self._service.log_batch(self.id, params=params, metrics=metrics, tags=tags)

    def end(self, status: str = "finished") -> None:
        if self._ended:
            return
        self.flush()
        self._service.end_run(self.id, status)
        self._ended = True
        atexit.unregister(self._flush_at_exit)

    def _flush_at_exit(self) -> None:
        """At interpreter exit, commit what is buffered; a refusal there has no one to report to."""
        if not self._ended:
            with contextlib.suppress(MlwardenError):
                self.flush()

    def __enter__(self) -> Run:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.end("failed" if kind is not None else "finished")
