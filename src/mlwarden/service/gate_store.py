"""The gate's tables: contracts and policies per dataset, and the verdict records of ingestions."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, insert, select

from mlwarden.defense.policy import DEFAULT_POLICY, Policy, Verdict, policy_from_json
from mlwarden.domain.digests import Digest
from mlwarden.quality.contract import Contract, contract_from_json
from mlwarden.service.dataset_store import Dataset, Version
from mlwarden.store.tables import dataset_documents, dataset_gates

ACCEPT_KIND = "dataset.accept"  # the approval request a quarantined ingestion opens
CONTRACT, POLICY = "contract", "policy"


@dataclass(frozen=True)
class GateRecord:
    id: str
    ingestion: str
    verdict: str
    report: dict[str, Any]
    sample: Digest | None
    approval_request: str | None
    actor: str
    created_at: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "ingestion": self.ingestion,
            "verdict": self.verdict,
            "report": self.report,
            "sample": str(self.sample) if self.sample else None,
            "approval_request": self.approval_request,
            "actor": self.actor,
            "created_at": self.created_at,
        }


def insert_gate(conn: Connection, dataset: Dataset, record: GateRecord) -> None:
    conn.execute(
        insert(dataset_gates).values(
            id=record.id,
            dataset_id=dataset.id,
            ingestion_id=record.ingestion,
            verdict=record.verdict,
            report=json.dumps(record.report, sort_keys=True, separators=(",", ":")),
            sample=str(record.sample) if record.sample else None,
            approval_request=record.approval_request,
            actor=record.actor,
            created_at=record.created_at,
        )
    )


def gate_records(conn: Connection, dataset: Dataset, ingestions: Iterable[str] | None = None) -> list[GateRecord]:
    """Every record of the dataset (or of these ingestions), oldest first."""
    query = select(dataset_gates).where(dataset_gates.c.dataset_id == dataset.id)
    if ingestions is not None:
        query = query.where(dataset_gates.c.ingestion_id.in_(list(ingestions)))
    rows = conn.execute(query.order_by(dataset_gates.c.created_at, dataset_gates.c.id)).mappings()
    return [
        GateRecord(
            id=r["id"],
            ingestion=r["ingestion_id"],
            verdict=r["verdict"],
            report=json.loads(r["report"]),
            sample=Digest.parse(r["sample"]) if r["sample"] else None,
            approval_request=r["approval_request"],
            actor=r["actor"],
            created_at=r["created_at"],
        )
        for r in rows
    ]


def latest_records(conn: Connection, dataset: Dataset, ingestions: Iterable[str]) -> dict[str, GateRecord]:
    """Each ingestion's current record (the latest one); the first record keeps the batch's evidence."""
    latest: dict[str, GateRecord] = {}
    for record in gate_records(conn, dataset, ingestions):
        latest[record.ingestion] = record
    return latest


def first_records(conn: Connection, dataset: Dataset, ingestions: Iterable[str]) -> dict[str, GateRecord]:
    first: dict[str, GateRecord] = {}
    for record in gate_records(conn, dataset, ingestions):
        first.setdefault(record.ingestion, record)
    return first


def version_status(conn: Connection, dataset: Dataset, version: Version) -> str:
    """Accepted when every ingestion whose rows it holds is accepted; else quarantined.

    Ingestions made before the gate existed (no record) count as accepted: they were admitted under the
    rules of their time, and the log says so.
    """
    ingestions = {piece.ingestion for piece in version.manifest}
    latest = latest_records(conn, dataset, ingestions)
    if any(r.verdict != Verdict.ACCEPTED for r in latest.values()):
        return Verdict.QUARANTINED
    return Verdict.ACCEPTED


# -- contracts and policies ------------------------------------------------------------------------------


def insert_document(
    conn: Connection, dataset: Dataset, kind: str, document: dict[str, Any] | None, *, id: str, actor: str, at: str
) -> str | None:
    """Put a contract or policy in force (None clears it); returns its digest."""
    text = json.dumps(document, sort_keys=True, separators=(",", ":")) if document is not None else None
    digest = "sha256:" + hashlib.sha256(text.encode()).hexdigest() if text is not None else None
    conn.execute(
        insert(dataset_documents).values(
            id=id, dataset_id=dataset.id, kind=kind, document=text, digest=digest, actor=actor, created_at=at
        )
    )
    return digest


def current_document(conn: Connection, dataset: Dataset, kind: str) -> dict[str, Any] | None:
    row = conn.execute(
        select(dataset_documents.c.document)
        .where(dataset_documents.c.dataset_id == dataset.id, dataset_documents.c.kind == kind)
        .order_by(dataset_documents.c.created_at.desc(), dataset_documents.c.id.desc())
        .limit(1)
    ).first()
    return json.loads(row[0]) if row is not None and row[0] is not None else None


def contract_of(conn: Connection, dataset: Dataset) -> Contract:
    document = current_document(conn, dataset, CONTRACT)
    return contract_from_json(document) if document is not None else Contract()


def policy_of(conn: Connection, dataset: Dataset) -> Policy:
    document = current_document(conn, dataset, POLICY)
    return policy_from_json(document) if document is not None else DEFAULT_POLICY
