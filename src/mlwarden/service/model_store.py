"""The registry's rows: models, versions, stage and alias histories (read and appended in the caller's
transaction). A version's stage is the newest row of its model's stage history that names it."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, func, insert, select

from mlwarden.audit.clock import format_ts, utcnow
from mlwarden.domain.events import Resource
from mlwarden.errors import NotFound
from mlwarden.registry.refs import ModelRef, Stage
from mlwarden.store.tables import model_aliases, model_stages, model_versions, models, next_seq


@dataclass(frozen=True)
class ModelVersion:
    model_id: str
    project: str
    name: str
    version: int
    digest: str
    format: str
    layout: str  # "file": one model file; "directory": a folder of files
    files: list[dict[str, Any]]  # [{"path", "sha256", "size"}], sorted by path
    run_id: str | None
    source: str | None
    inputs: list[dict[str, Any]]  # the run's dataset versions at registration
    metrics: dict[str, float]  # the run's metrics at registration
    scan: dict[str, Any]
    signature: str
    author_id: str
    actor: str
    created_at: str

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def external(self) -> bool:
        """Registered without a run: trained elsewhere, no lineage on record."""
        return self.run_id is None

    def resource(self, stage: Stage | None = None) -> Resource:
        attributes = [("digest", self.digest), ("author", self.author_id)]
        if stage is not None:
            attributes.append(("stage", stage.value))
        return Resource("model_version", f"{self.project}/{self.ref}", self.project, attributes=tuple(attributes))


def unaccepted_inputs(conn: Connection, project: str, inputs: list[dict[str, Any]]) -> list[str]:
    """Which of a run's input dataset versions the ingestion gate no longer accepts, or whose content is
    not the digest the run recorded (none, for a model trained on accepted data)."""
    from mlwarden.data.versions import Reference
    from mlwarden.service.dataset_store import resolve
    from mlwarden.service.gate_store import version_status

    found = []
    for used in inputs:
        dataset, version = resolve(conn, project, Reference.parse(f"{used['dataset']}@{used['version']}"))
        status = version_status(conn, dataset, version)
        if str(version.digest) != used["digest"]:
            found.append(f"{version.ref} is not the content the run used ({used['digest']})")
        elif status != "accepted":
            found.append(f"{version.ref} is {status} by the ingestion gate")
    return found


def metrics_digest(metrics: dict[str, float]) -> str:
    """What an evaluation's audit event commits to: SHA-256 over its metrics as canonical JSON."""
    canonical = json.dumps(metrics, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def model_resource(project: str, name: str) -> Resource:
    return Resource("model", f"{project}/{name}", project)


def model_id_of(conn: Connection, project: str, name: str) -> str | None:
    query = select(models.c.id).where(models.c.project == project, models.c.name == name)
    found = conn.execute(query).scalar()
    return None if found is None else str(found)


def require_model(conn: Connection, project: str, name: str) -> str:
    found = model_id_of(conn, project, name)
    if found is None:
        raise NotFound(f"no model {name!r} in project {project}", hint="see `mlwarden model list`")
    return found


def version_row(conn: Connection, project: str, name: str, version: int) -> ModelVersion:
    query = (
        select(model_versions, models.c.project, models.c.name)
        .join(models, models.c.id == model_versions.c.model_id)
        .where(models.c.project == project, models.c.name == name, model_versions.c.version == version)
    )
    row = conn.execute(query).mappings().first()
    if row is None:
        raise NotFound(f"model {name} has no version {version} in project {project}", hint="see `mlwarden model show`")
    return _version(row)


def resolve_version(conn: Connection, project: str, ref: ModelRef) -> ModelVersion:
    """The version a reference names (the newest one, for a bare name)."""
    model_id = require_model(conn, project, ref.name)
    if ref.version is not None:
        number: int | None = ref.version
    elif ref.stage is not None:
        holders = [v for v, stage in current_stages(conn, model_id).items() if stage is ref.stage]
        if not holders:
            raise NotFound(f"no version of {ref.name} is in {ref.stage}", hint=f"see `mlwarden model show {ref.name}`")
        number = max(holders)
    elif ref.alias is not None:
        number = current_aliases(conn, model_id).get(ref.alias)
        if number is None:
            raise NotFound(f"model {ref.name} has no alias {ref.alias!r}", hint=f"see `mlwarden model show {ref.name}`")
    else:
        number = conn.execute(
            select(func.max(model_versions.c.version)).where(model_versions.c.model_id == model_id)
        ).scalar()
        if number is None:
            raise NotFound(f"model {ref.name} has no versions yet")
    assert number is not None  # noqa: S101 - every branch above set it or raised
    return version_row(conn, project, ref.name, number)


def versions_of(conn: Connection, model_id: str) -> list[ModelVersion]:
    query = (
        select(model_versions, models.c.project, models.c.name)
        .join(models, models.c.id == model_versions.c.model_id)
        .where(model_versions.c.model_id == model_id)
        .order_by(model_versions.c.version)
    )
    return [_version(row) for row in conn.execute(query).mappings()]


def next_version(conn: Connection, model_id: str) -> int:
    top = conn.execute(select(func.max(model_versions.c.version)).where(model_versions.c.model_id == model_id)).scalar()
    return 1 if top is None else int(top) + 1


def stage_history(conn: Connection, model_id: str) -> list[dict[str, Any]]:
    query = select(model_stages).where(model_stages.c.model_id == model_id).order_by(model_stages.c.seq)
    return [dict(row) for row in conn.execute(query).mappings()]


def current_stages(conn: Connection, model_id: str) -> dict[int, Stage]:
    """Each version's stage: the newest stage row naming it."""
    return {int(row["version"]): Stage(row["stage"]) for row in stage_history(conn, model_id)}


def production_versions(conn: Connection, model_id: str) -> list[int]:
    """The versions that entered production, in the order they did (a version may appear twice)."""
    return [int(r["version"]) for r in stage_history(conn, model_id) if r["stage"] == Stage.PRODUCTION]


def insert_stage(
    conn: Connection,
    model_id: str,
    version: int,
    stage: Stage,
    actor: str,
    *,
    request_id: str | None = None,
    reason: str | None = None,
) -> None:
    conn.execute(
        insert(model_stages).values(
            model_id=model_id,
            seq=next_seq(conn, model_stages, model_stages.c.model_id == model_id),
            version=version,
            stage=stage.value,
            actor=actor,
            request_id=request_id,
            reason=reason,
            at=format_ts(utcnow()),
        )
    )


def current_aliases(conn: Connection, model_id: str) -> dict[str, int]:
    query = select(model_aliases.c.alias, model_aliases.c.version).where(model_aliases.c.model_id == model_id)
    latest: dict[str, int | None] = {row[0]: row[1] for row in conn.execute(query.order_by(model_aliases.c.seq))}
    return {alias: int(version) for alias, version in latest.items() if version is not None}


def insert_alias(conn: Connection, model_id: str, alias: str, version: int | None, actor: str) -> None:
    conn.execute(
        insert(model_aliases).values(
            model_id=model_id,
            seq=next_seq(conn, model_aliases, model_aliases.c.model_id == model_id),
            alias=alias,
            version=version,
            actor=actor,
            at=format_ts(utcnow()),
        )
    )


def _version(row: Any) -> ModelVersion:
    return ModelVersion(
        model_id=row["model_id"],
        project=row["project"],
        name=row["name"],
        version=int(row["version"]),
        digest=row["digest"],
        format=row["format"],
        layout=row["layout"],
        files=json.loads(row["files"]),
        run_id=row["run_id"],
        source=row["source"],
        inputs=json.loads(row["inputs"]),
        metrics=json.loads(row["metrics"]),
        scan=json.loads(row["scan"]),
        signature=row["signature"],
        author_id=row["author_id"],
        actor=row["actor"],
        created_at=row["created_at"],
    )
