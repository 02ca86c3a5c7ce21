"""The dataset tables as value objects: reading datasets, ingestions and versions, writing new ones."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, RowMapping, func, insert, select

from mlwarden.data.schema import Schema
from mlwarden.data.tree import TreeState
from mlwarden.data.versions import Manifest, Reference, manifest_from_json, manifest_to_json
from mlwarden.domain.digests import Digest
from mlwarden.domain.events import Resource
from mlwarden.errors import NotFound, UsageError
from mlwarden.store.tables import dataset_ingestions, dataset_versions, datasets

CHANGE_KIND = "dataset.change"  # the kind of approval request a change to a protected dataset opens


@dataclass(frozen=True)
class Dataset:
    id: str = field(repr=False)
    project: str
    name: str
    schema: Schema
    label_column: str | None
    protected: bool
    required_approvals: int
    created_at: str
    created_by: str

    def resource(self) -> Resource:
        return dataset_resource(self.project, self.name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "project": self.project,
            "name": self.name,
            "schema": self.schema.to_json(),
            "schema_digest": "sha256:" + self.schema.digest().hex(),
            "label_column": self.label_column,
            "protected": self.protected,
            "required_approvals": self.required_approvals,
            "created_at": self.created_at,
            "created_by": self.created_by,
        }


@dataclass(frozen=True)
class Ingestion:
    id: str
    source: str
    actor: str
    created_at: str
    input_name: str
    input_format: str
    input_digest: str | None
    rows: int
    segment: Digest
    segment_root: str
    note: str | None

    def to_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["segment"] = str(self.segment)
        return data


@dataclass(frozen=True)
class Version:
    dataset: str
    project: str
    number: int
    digest: Digest
    kind: str  # add, replace, revert
    rows: int
    tree: TreeState = field(repr=False)
    manifest: Manifest = field(repr=False)
    ingestion: str | None
    undid: dict[str, Any] | None
    approval_request: str | None
    actor: str
    created_at: str
    note: str | None

    @property
    def ref(self) -> str:
        return f"{self.dataset}@{self.number}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "project": self.project,
            "version": self.number,
            "ref": self.ref,
            "digest": str(self.digest),
            "kind": self.kind,
            "rows": self.rows,
            "ingestion": self.ingestion,
            "undid": self.undid,
            "approval_request": self.approval_request,
            "actor": self.actor,
            "created_at": self.created_at,
            "note": self.note,
        }


def dataset_resource(project: str, name: str) -> Resource:
    return Resource("dataset", f"{project}/{name}", project)


def dataset_target(project: str, name: str) -> Callable[[Connection], Resource]:
    """The door's target for a dataset by name (a missing one is an ordinary NotFound for members)."""
    return lambda conn: require_dataset(conn, project, name).resource()


def ref_target(project: str, ref: Reference) -> Callable[[Connection], Resource]:
    """The dataset a reference names, by name or by version digest."""
    if ref.name is not None:
        return dataset_target(project, ref.name)
    return lambda conn: resolve(conn, project, ref)[0].resource()


def chosen_project(project: str | None, default: str) -> str:
    """The project an argument names, else MLWARDEN_PROJECT, else the workspace's default."""
    import os

    from mlwarden.service.config import ENV_PROJECT

    chosen = project or os.environ.get(ENV_PROJECT) or default
    if not chosen:
        raise UsageError("name a project with --project", hint="or set default_project in .mlwarden/config.toml")
    return chosen


def find_dataset(conn: Connection, project: str, name: str) -> Dataset | None:
    row = (
        conn.execute(select(datasets).where(datasets.c.project == project, datasets.c.name == name)).mappings().first()
    )
    return None if row is None else _dataset(row)


def require_dataset(conn: Connection, project: str, name: str) -> Dataset:
    found = find_dataset(conn, project, name)
    if found is None:
        raise NotFound(f"no dataset {name!r} in project {project!r}", hint="see `mlwarden data list`")
    return found


def list_datasets(conn: Connection, project: str) -> list[Dataset]:
    query = select(datasets).where(datasets.c.project == project).order_by(datasets.c.name)
    return [_dataset(row) for row in conn.execute(query).mappings()]


def _dataset(row: RowMapping) -> Dataset:
    return Dataset(
        id=row["id"],
        project=row["project"],
        name=row["name"],
        schema=Schema.from_json(json.loads(row["schema"])),
        label_column=row["label_column"],
        protected=bool(row["protected"]),
        required_approvals=int(row["required_approvals"]),
        created_at=row["created_at"],
        created_by=row["created_by"],
    )


def insert_dataset(conn: Connection, dataset: Dataset) -> None:
    conn.execute(
        insert(datasets).values(
            id=dataset.id,
            project=dataset.project,
            name=dataset.name,
            schema=json.dumps(dataset.schema.to_json(), ensure_ascii=False),
            schema_digest="sha256:" + dataset.schema.digest().hex(),
            label_column=dataset.label_column,
            protected=dataset.protected,
            required_approvals=dataset.required_approvals,
            created_at=dataset.created_at,
            created_by=dataset.created_by,
        )
    )


def ingestions_of(conn: Connection, dataset: Dataset) -> dict[str, Ingestion]:
    query = (
        select(dataset_ingestions)
        .where(dataset_ingestions.c.dataset_id == dataset.id)
        .order_by(dataset_ingestions.c.created_at, dataset_ingestions.c.id)
    )
    return {row["id"]: _ingestion(row) for row in conn.execute(query).mappings()}


def _ingestion(row: RowMapping) -> Ingestion:
    return Ingestion(
        id=row["id"],
        source=row["source"],
        actor=row["actor"],
        created_at=row["created_at"],
        input_name=row["input_name"],
        input_format=row["input_format"],
        input_digest=row["input_digest"],
        rows=int(row["row_count"]),
        segment=Digest.parse(row["segment"]),
        segment_root=row["segment_root"],
        note=row["note"],
    )


def insert_ingestion(conn: Connection, dataset: Dataset, ingestion: Ingestion) -> None:
    values = ingestion.to_dict()
    values["row_count"] = values.pop("rows")
    conn.execute(insert(dataset_ingestions).values(dataset_id=dataset.id, **values))


def versions_of(conn: Connection, dataset: Dataset) -> list[Version]:
    query = (
        select(dataset_versions).where(dataset_versions.c.dataset_id == dataset.id).order_by(dataset_versions.c.number)
    )
    return [_version(dataset, row) for row in conn.execute(query).mappings()]


def latest_version(conn: Connection, dataset: Dataset) -> Version | None:
    query = (
        select(dataset_versions)
        .where(dataset_versions.c.dataset_id == dataset.id)
        .order_by(dataset_versions.c.number.desc())
        .limit(1)
    )
    row = conn.execute(query).mappings().first()
    return None if row is None else _version(dataset, row)


def resolve(conn: Connection, project: str, ref: Reference) -> tuple[Dataset, Version]:
    """The dataset and version a reference names; a digest names its newest version with that content."""
    dataset = _dataset_of(conn, project, ref)
    query = select(dataset_versions).where(dataset_versions.c.dataset_id == dataset.id)
    if ref.number is not None:
        query = query.where(dataset_versions.c.number == ref.number)
    elif ref.digest is not None:
        query = query.where(dataset_versions.c.digest == str(ref.digest))
    row = conn.execute(query.order_by(dataset_versions.c.number.desc()).limit(1)).mappings().first()
    if row is None:
        raise NotFound(f"no version {ref} in project {project!r}", hint=f"see `mlwarden data versions {dataset.name}`")
    return dataset, _version(dataset, row)


def _dataset_of(conn: Connection, project: str, ref: Reference) -> Dataset:
    if ref.name is not None:
        return require_dataset(conn, project, ref.name)
    owners = conn.execute(
        select(dataset_versions.c.dataset_id)
        .join(datasets, datasets.c.id == dataset_versions.c.dataset_id)
        .where(datasets.c.project == project, dataset_versions.c.digest == str(ref.digest))
        .distinct()
    ).all()
    if not owners:
        raise NotFound(f"no version with digest {ref.digest} in project {project!r}")
    if len(owners) > 1:
        raise UsageError(f"several datasets hold a version with digest {ref.digest}", hint="write NAME@sha256:...")
    row = conn.execute(select(datasets).where(datasets.c.id == owners[0][0])).mappings().one()
    return _dataset(row)


def _version(dataset: Dataset, row: RowMapping) -> Version:
    return Version(
        dataset=dataset.name,
        project=dataset.project,
        number=int(row["number"]),
        digest=Digest.parse(row["digest"]),
        kind=row["kind"],
        rows=int(row["row_count"]),
        tree=TreeState.from_json(int(row["row_count"]), json.loads(row["tree"])),
        manifest=manifest_from_json(row["manifest"]),
        ingestion=row["ingestion_id"],
        undid=json.loads(row["undid"]) if row["undid"] else None,
        approval_request=row["approval_request"],
        actor=row["actor"],
        created_at=row["created_at"],
        note=row["note"],
    )


def insert_version(conn: Connection, dataset: Dataset, version: Version) -> None:
    conn.execute(
        insert(dataset_versions).values(
            dataset_id=dataset.id,
            number=version.number,
            digest=str(version.digest),
            kind=version.kind,
            row_count=version.rows,
            tree=json.dumps(version.tree.to_json()),
            manifest=manifest_to_json(version.manifest),
            ingestion_id=version.ingestion,
            undid=json.dumps(version.undid, sort_keys=True) if version.undid is not None else None,
            approval_request=version.approval_request,
            actor=version.actor,
            created_at=version.created_at,
            note=version.note,
        )
    )


def version_counts(conn: Connection, dataset_ids: list[str]) -> Mapping[str, int]:
    query = (
        select(dataset_versions.c.dataset_id, func.max(dataset_versions.c.number))
        .where(dataset_versions.c.dataset_id.in_(dataset_ids))
        .group_by(dataset_versions.c.dataset_id)
    )
    return {dataset_id: int(count) for dataset_id, count in conn.execute(query)}
