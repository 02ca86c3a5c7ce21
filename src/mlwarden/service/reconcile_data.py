"""Reconciling the dataset tables with the audit log.

Every version, ingestion and protection change is an audit event carrying what it stored (the version's
digest, row count and manifest digest; the ingestion's segment blob, rows and source; the protection
flag). Replaying the log gives the tables as they must be, and `audit verify` names every row that
differs: a version inserted or rewritten in the database, a segment pointer swapped, a dataset whose
protection was lifted without an event, a gate verdict that no event recorded (a quarantined batch
marked accepted in the database). (`data verify` checks the other half: that the stored rows
still give the recorded digests.)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, select

from mlwarden.audit.verify import Problem
from mlwarden.data.versions import manifest_digest, manifest_from_json
from mlwarden.domain.actions import Action
from mlwarden.service.dataset_store import CHANGE_KIND
from mlwarden.service.reconcile import LoggedRow, compare_logged, replay
from mlwarden.store.tables import dataset_gates, dataset_ingestions, dataset_versions, datasets

_REPLAYED = [Action.DATA_ADD, Action.DATA_REVERT, Action.DATA_PROTECT, Action.DATA_UNPROTECT, Action.APPROVAL_APPROVE]


@dataclass
class _Expected:
    versions: dict[str, LoggedRow] = field(default_factory=dict)  # "project/name@N"
    ingestions: dict[str, LoggedRow] = field(default_factory=dict)  # ingestion id
    protection: dict[str, LoggedRow] = field(default_factory=dict)  # "project/name"
    gates: dict[str, LoggedRow] = field(default_factory=dict)  # gate record id


def reconcile_datasets(conn: Connection) -> list[Problem]:
    expected = _replay(conn)
    return (
        _compare("dataset version", _found_versions(conn), expected.versions)
        + _compare("ingestion", _found_ingestions(conn), expected.ingestions)
        + _compare("dataset", _found_protection(conn), expected.protection)
        + _compare("gate record", _found_gates(conn), expected.gates)
    )


def _replay(conn: Connection) -> _Expected:
    expected = _Expected()
    for seq, doc in replay(conn, _REPLAYED):
        try:
            _apply(doc, seq, expected)
        except (TypeError, KeyError, AttributeError, ValueError):
            continue  # an event without the fields it should have: the log verification reports it
    return expected


def _apply(doc: dict[str, Any], seq: int, expected: _Expected) -> None:
    action, details = doc["action"], doc["details"]
    if details.get("gate"):  # an ingestion's verdict, or an approver's acceptance of a quarantined one
        gate = {"verdict": details["verdict"], "ingestion": details["ingestion"]}
        expected.gates[str(details["gate"])] = LoggedRow(seq, gate)
    if action == Action.APPROVAL_APPROVE:
        if details.get("kind") != CHANGE_KIND or not details.get("applied"):
            return
        dataset, digest = str(details["applied"]).removeprefix("dataset:"), doc["digest_after"]
    elif action in (Action.DATA_ADD, Action.DATA_REVERT):
        if details.get("proposed"):
            return
        dataset, digest = doc["resource_id"], doc["digest_after"]
    else:  # protect / unprotect
        expected.protection[doc["resource_id"]] = LoggedRow(
            seq, {"protected": bool(details["protected"]), "required_approvals": int(details["required_approvals"])}
        )
        return
    if "version" not in details:
        return
    expected.protection.setdefault(dataset, LoggedRow(seq, {"protected": False, "required_approvals": 1}))
    version = {"digest": digest, "rows": details["rows"], "manifest": details["manifest"]}
    expected.versions[f"{dataset}@{details['version']}"] = LoggedRow(seq, version)
    if details.get("ingestion"):
        ingestion = {"segment": details["segment"], "rows": details["added_rows"], "source": details["source"]}
        expected.ingestions[str(details["ingestion"])] = LoggedRow(seq, ingestion)


def _found_versions(conn: Connection) -> dict[str, dict[str, object]]:
    query = select(
        datasets.c.project,
        datasets.c.name,
        dataset_versions.c.number,
        dataset_versions.c.digest,
        dataset_versions.c.row_count,
        dataset_versions.c.manifest,
    ).join(datasets, datasets.c.id == dataset_versions.c.dataset_id)
    return {
        f"{project}/{name}@{number}": {
            "digest": digest,
            "rows": int(rows),
            "manifest": manifest_digest(manifest_from_json(manifest)),
        }
        for project, name, number, digest, rows, manifest in conn.execute(query)
    }


def _found_ingestions(conn: Connection) -> dict[str, dict[str, object]]:
    query = select(
        dataset_ingestions.c.id,
        dataset_ingestions.c.segment,
        dataset_ingestions.c.row_count,
        dataset_ingestions.c.source,
    )
    return {i: {"segment": s, "rows": int(r), "source": src} for i, s, r, src in conn.execute(query)}


def _found_gates(conn: Connection) -> dict[str, dict[str, object]]:
    query = select(dataset_gates.c.id, dataset_gates.c.verdict, dataset_gates.c.ingestion_id)
    return {g: {"verdict": v, "ingestion": i} for g, v, i in conn.execute(query)}


def _found_protection(conn: Connection) -> dict[str, dict[str, object]]:
    query = select(datasets.c.project, datasets.c.name, datasets.c.protected, datasets.c.required_approvals)
    return {
        f"{p}/{n}": {"protected": bool(flag), "required_approvals": int(k)} for p, n, flag, k in conn.execute(query)
    }


def _compare(kind: str, found: Mapping[str, Mapping[str, object]], expected: Mapping[str, LoggedRow]) -> list[Problem]:
    return compare_logged(kind, found, expected)
