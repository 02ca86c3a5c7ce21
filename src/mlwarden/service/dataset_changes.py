"""Making dataset versions: ingest (append or replace) and revert, directly or through an approval.

The slow part (reading, fingerprinting and storing rows) runs before the write transaction; the
transaction then only checks that the dataset did not move meanwhile (or rebases an append onto the
newer version, which costs the batch, not the dataset), writes the ingestion and the version, and
audits them. A protected dataset gets an approval request instead, bound to the digest of the version
it would create; approving it creates exactly that version, or nothing if the dataset moved on.
"""

from __future__ import annotations

import dataclasses
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from mlwarden.audit.clock import format_ts, utcnow
from mlwarden.data.tree import TreeState
from mlwarden.data.versions import (
    Manifest,
    Piece,
    manifest_digest,
    manifest_from_json,
    manifest_to_json,
    version_digest,
)
from mlwarden.domain.digests import Digest
from mlwarden.domain.events import Actor, DetailValue
from mlwarden.errors import ContractMismatch, UsageError
from mlwarden.service import approvals
from mlwarden.service.dataset_store import (
    CHANGE_KIND,
    Dataset,
    Ingestion,
    Version,
    find_dataset,
    insert_dataset,
    insert_ingestion,
    insert_version,
    latest_version,
    require_dataset,
)
from mlwarden.service.door import Applied, Refusal
from mlwarden.store.blobs import BlobStore

if TYPE_CHECKING:
    from mlwarden.data.ingest import Staged
    from mlwarden.service.gate_store import GateRecord

MAX_NOTE = 4096
MAX_SOURCE = 128


@dataclass(frozen=True)
class Change:
    """What an ingest or revert did: a new version, or an approval request for one."""

    project: str
    dataset: str
    digest: str  # of the version made, or proposed
    version: Version | None
    ingestion: Ingestion | None
    approval_request: str | None
    verdict: str | None = None  # the ingestion gate's: accepted or quarantined (a rejection raises)
    accept_request: str | None = None  # a quarantined batch's request to accept it

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "accept_request": self.accept_request,
            "project": self.project,
            "dataset": self.dataset,
            "digest": self.digest,
            "version": self.version.to_dict() if self.version else None,
            "ingestion": self.ingestion.to_dict() if self.ingestion else None,
            "approval_request": self.approval_request,
            "status": "pending approval" if self.approval_request else "applied",
        }


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(8)}"


def validate_source(source: str) -> str:
    if not source or len(source) > MAX_SOURCE or any(ord(ch) < 32 for ch in source):
        raise UsageError(
            f"invalid source name {source[:MAX_SOURCE]!r}", hint="name where the data came from, e.g. vendor-a"
        )
    return source


def bounded_note(note: str | None) -> str | None:
    return note[:MAX_NOTE] if note else None


@dataclass(frozen=True)
class Ingest:
    """An ingestion staged outside the transaction, and what the caller asked for."""

    project: str
    name: str
    staged: Staged
    ingestion: Ingestion
    replace: bool
    label_column: str | None
    base_number: int  # the version the staging extended (0: none)
    note: str | None
    gate: GateRecord | None = None  # the ingestion gate's verdict on the batch


def apply_ingest(conn: Connection, blobs: BlobStore, actor: Actor, request: Ingest) -> Applied[Change]:
    """Inside the door's transaction: create the dataset if needed, then the version (or a request)."""
    dataset = find_dataset(conn, request.project, request.name)
    if dataset is None:
        dataset = _create_dataset(conn, request, actor.name)
    _check_compatible(dataset, request)
    latest = latest_version(conn, dataset)
    piece = Piece(request.ingestion.id, 0, request.staged.rows)
    if request.replace or latest is None:
        manifest: Manifest = (piece,)
        tree = request.staged.segment_tree
    else:
        manifest = (*latest.manifest, piece)
        tree = request.staged.tree
        if latest.number != request.base_number:  # another ingest landed while this one was staged
            from mlwarden.data.rows import VersionView, grow_tree

            view = VersionView(dataset.schema, (piece,), {piece.ingestion: request.staged.segment})
            tree = grow_tree(blobs, view, base=latest.tree)
    version = Version(
        dataset=dataset.name,
        project=dataset.project,
        number=(latest.number if latest else 0) + 1,
        digest=version_digest(dataset.schema, tree),
        kind="replace" if request.replace and latest is not None else "add",
        rows=tree.size,
        tree=tree,
        manifest=manifest,
        ingestion=request.ingestion.id,
        undid=None,
        approval_request=None,
        actor=actor.name,
        created_at=request.ingestion.created_at,
        note=request.note,
    )
    applied = _make_or_propose(conn, actor, dataset, latest, version, request.ingestion)
    if request.gate is None:
        return applied
    from mlwarden.service.dataset_gate import record_verdict

    details = record_verdict(conn, actor, dataset, request.gate)
    accept = details.get("accept_request")
    change = dataclasses.replace(
        applied.value, verdict=request.gate.verdict, accept_request=str(accept) if accept else None
    )
    return dataclasses.replace(applied, value=change, details={**applied.details, **details})


def _create_dataset(conn: Connection, request: Ingest, actor: str) -> Dataset:
    dataset = Dataset(
        id=new_id("ds"),
        project=request.project,
        name=request.name,
        schema=request.staged.schema,
        label_column=request.label_column,
        protected=False,
        required_approvals=1,
        created_at=request.ingestion.created_at,
        created_by=actor,
    )
    if request.label_column is not None and request.label_column not in dataset.schema.names:
        raise ContractMismatch(
            f"label column {request.label_column!r} is not a column of the data",
            hint="columns: " + ", ".join(dataset.schema.names),
        )
    insert_dataset(conn, dataset)
    return dataset


def _check_compatible(dataset: Dataset, request: Ingest) -> None:
    if request.staged.schema != dataset.schema:
        raise ContractMismatch(
            f"the batch's columns do not match dataset {dataset.name!r}",
            hint="the dataset's schema: " + ", ".join(f"{c['name']}:{c['type']}" for c in dataset.schema.to_json()),
        )
    if request.label_column is not None and request.label_column != dataset.label_column:
        raise UsageError(
            f"dataset {dataset.name!r} has label column {dataset.label_column!r}, not {request.label_column!r}",
            hint="the label column is fixed when the dataset is created",
        )


@dataclass(frozen=True)
class Revert:
    """A revert computed outside the transaction against version ``base_number``."""

    manifest: Manifest
    tree: TreeState
    undid: dict[str, Any]
    base_number: int
    note: str | None


def apply_revert(conn: Connection, project: str, name: str, actor: Actor, request: Revert) -> Applied[Change]:
    dataset = require_dataset(conn, project, name)
    latest = latest_version(conn, dataset)
    if latest is None or latest.number != request.base_number:
        raise UsageError(f"dataset {name!r} changed while the revert was computed", hint="run the revert again")
    version = Version(
        dataset=dataset.name,
        project=dataset.project,
        number=latest.number + 1,
        digest=version_digest(dataset.schema, request.tree),
        kind="revert",
        rows=request.tree.size,
        tree=request.tree,
        manifest=request.manifest,
        ingestion=None,
        undid=request.undid,
        approval_request=None,
        actor=actor.name,
        created_at=format_ts(utcnow()),
        note=request.note,
    )
    return _make_or_propose(conn, actor, dataset, latest, version, None)


def _make_or_propose(
    conn: Connection,
    actor: Actor,
    dataset: Dataset,
    latest: Version | None,
    version: Version,
    ingestion: Ingestion | None,
) -> Applied[Change]:
    before = str(latest.digest) if latest else None
    details = _details(dataset, version, ingestion)
    if dataset.protected:
        request_id = approvals.open_request(
            conn,
            kind=CHANGE_KIND,
            project=dataset.project,
            resource=dataset.resource(),
            digest=str(version.digest),
            author_id=actor.user_id,
            required_count=dataset.required_approvals,
            payload=_payload(dataset, latest, version, ingestion),
        )
        details["approval_request"] = request_id
        change = Change(dataset.project, dataset.name, str(version.digest), None, ingestion, request_id)
        return Applied(change, digest_before=before, details={"proposed": True, **details})
    _insert(conn, dataset, version, ingestion)
    change = Change(dataset.project, dataset.name, str(version.digest), version, ingestion, None)
    return Applied(change, digest_before=before, digest_after=str(version.digest), details=details)


def _insert(conn: Connection, dataset: Dataset, version: Version, ingestion: Ingestion | None) -> None:
    if ingestion is not None:
        insert_ingestion(conn, dataset, ingestion)
    insert_version(conn, dataset, version)


def _details(dataset: Dataset, version: Version, ingestion: Ingestion | None) -> dict[str, DetailValue]:
    """What the event says about the version (and ingestion) it made: `audit verify` replays these."""
    details: dict[str, DetailValue] = {
        "version": version.number,
        "version_kind": version.kind,
        "rows": version.rows,
        "manifest": manifest_digest(version.manifest),
        "schema": "sha256:" + dataset.schema.digest().hex(),
    }
    if ingestion is not None:
        details.update(
            ingestion=ingestion.id,
            source=ingestion.source,
            added_rows=ingestion.rows,
            segment=str(ingestion.segment),
            input_digest=ingestion.input_digest,
        )
    if version.undid is not None:
        details["undid_ingestions"] = ",".join(version.undid.get("ingestions", []))
    return details


# -- approval ----------------------------------------------------------------------------------------


def _payload(dataset: Dataset, latest: Version | None, version: Version, ingestion: Ingestion | None) -> dict[str, Any]:
    return {
        "dataset_id": dataset.id,
        "base_number": latest.number if latest else 0,
        "version": version.to_dict() | {"tree": version.tree.to_json(), "manifest": manifest_to_json(version.manifest)},
        "ingestion": ingestion.to_dict() if ingestion else None,
    }


def _apply_approved(conn: Connection, request: approvals.ApprovalRequest, _ctx: object) -> dict[str, DetailValue]:
    """Create the version an approved request describes, if it is still what was approved."""
    payload = request.payload
    dataset_name = request.resource_id.split("/", 1)[1]
    dataset = require_dataset(conn, request.project, dataset_name)
    latest = latest_version(conn, dataset)
    if (latest.number if latest else 0) != payload["base_number"]:
        raise Refusal(
            f"dataset {dataset.name!r} changed since request {request.id} was opened; submit the change again"
        )
    data = payload["version"]
    tree = TreeState.from_json(int(data["rows"]), data["tree"])
    version = Version(
        dataset=dataset.name,
        project=dataset.project,
        number=int(data["version"]),
        digest=version_digest(dataset.schema, tree),
        kind=data["kind"],
        rows=tree.size,
        tree=tree,
        manifest=manifest_from_json(data["manifest"]),
        ingestion=data["ingestion"],
        undid=data["undid"],
        approval_request=request.id,
        actor=data["actor"],
        created_at=data["created_at"],
        note=data["note"],
    )
    if str(version.digest) != request.digest:
        raise Refusal(f"request {request.id} does not describe the content it was approved for")
    ingestion = _ingestion_from(payload["ingestion"]) if payload["ingestion"] else None
    _insert(conn, dataset, version, ingestion)
    return _details(dataset, version, ingestion)


def _ingestion_from(data: dict[str, Any]) -> Ingestion:
    return Ingestion(**{**data, "segment": Digest.parse(data["segment"])})


approvals.on_approved(CHANGE_KIND, _apply_approved)
