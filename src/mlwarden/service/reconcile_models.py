"""Reconciling the registry tables with the audit log.

Each version's registration, each stage change (made at once, or by the approving vote), each alias,
evaluation and promotion policy is an audit event. Replaying them gives what the tables must hold: a
version row with its digest, each version's current stage, each alias, each evaluation with its metrics
digest, each project's current policy digest. A version or an evaluation inserted, a stage moved (say,
straight into production) or an alias repointed in the database is named here.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Connection, select

from mlwarden.audit.verify import Problem
from mlwarden.domain.actions import Action
from mlwarden.registry.refs import Stage
from mlwarden.service.model_store import current_aliases, current_stages, metrics_digest
from mlwarden.service.promotion import PROMOTE_KIND
from mlwarden.service.reconcile import LoggedRow, compare_logged, replay
from mlwarden.store.tables import model_evaluations, model_policies, model_versions, models

_REPLAYED = [
    Action.MODEL_REGISTER,
    Action.MODEL_PROMOTE,
    Action.APPROVAL_APPROVE,
    Action.MODEL_ALIAS,
    Action.MODEL_EVALUATE,
    Action.MODEL_POLICY,
]
_KINDS = ("model version", "model stage", "model alias", "model evaluation", "promotion policy")


def reconcile_models(conn: Connection) -> list[Problem]:
    expected: dict[str, dict[str, LoggedRow]] = {kind: {} for kind in _KINDS}
    for seq, doc in replay(conn, _REPLAYED):
        try:
            _apply(doc, seq, expected)
        except (TypeError, KeyError, ValueError, AttributeError):
            continue  # an event without its fields: the log verification reports it
    expected["model alias"] = {k: r for k, r in expected["model alias"].items() if r.values["version"] is not None}
    problems: list[Problem] = []
    for kind, rows in _found(conn).items():
        problems += compare_logged(kind, rows, expected[kind])
    return problems


def _apply(doc: dict[str, Any], seq: int, expected: dict[str, dict[str, LoggedRow]]) -> None:
    action, rid, details = doc["action"], doc["resource_id"], doc["details"]
    stages = expected["model stage"]
    if action == Action.MODEL_REGISTER:
        expected["model version"][rid] = LoggedRow(seq, {"digest": doc["digest_after"]})
        stages[rid] = LoggedRow(seq, {"stage": Stage.DEVELOPMENT.value})
    elif action == Action.MODEL_PROMOTE and details.get("status") == "moved":
        _moved(rid, details, seq, stages)
    elif (
        action == Action.APPROVAL_APPROVE
        and details.get("kind") == PROMOTE_KIND
        and details.get("status") == "approved"
    ):
        _moved(str(details["applied"]).removeprefix("model_version:"), details, seq, stages)
    elif action == Action.MODEL_ALIAS:
        version = None if details.get("removed") else int(details["version"])
        expected["model alias"][f"{rid}@{details['alias']}"] = LoggedRow(seq, {"version": version})
    elif action == Action.MODEL_EVALUATE:
        key = str(details["evaluation"])
        expected["model evaluation"][key] = LoggedRow(
            seq, {"version": f"{rid}@{int(details['version'])}", "metrics": details["metrics"]}
        )
    elif action == Action.MODEL_POLICY:
        expected["promotion policy"][rid] = LoggedRow(seq, {"digest": doc["digest_after"]})


def _moved(version_key: str, details: dict[str, Any], seq: int, stages: dict[str, LoggedRow]) -> None:
    stages[version_key] = LoggedRow(seq, {"stage": str(details["stage"])})
    model = version_key.rsplit("@", 1)[0]
    for replaced in filter(None, str(details.get("replaced") or "").split(",")):
        stages[f"{model}@{int(replaced)}"] = LoggedRow(seq, {"stage": Stage.ARCHIVED.value})


def _found(conn: Connection) -> dict[str, dict[str, dict[str, object]]]:
    names = {m: f"{p}/{n}" for m, p, n in conn.execute(select(models.c.id, models.c.project, models.c.name))}
    versions = conn.execute(select(model_versions.c.model_id, model_versions.c.version, model_versions.c.digest))
    found: dict[str, dict[str, dict[str, object]]] = {kind: {} for kind in _KINDS}
    found["model version"] = {f"{names[m]}@{v}": {"digest": d} for m, v, d in versions}
    for model_id, name in names.items():
        found["model stage"].update(
            {f"{name}@{v}": {"stage": s.value} for v, s in current_stages(conn, model_id).items()}
        )
        found["model alias"].update({f"{name}@{a}": {"version": v} for a, v in current_aliases(conn, model_id).items()})
    rows = conn.execute(
        select(
            model_evaluations.c.id,
            model_evaluations.c.model_id,
            model_evaluations.c.version,
            model_evaluations.c.metrics,
        )
    )
    found["model evaluation"] = {
        e: {"version": f"{names[m]}@{v}", "metrics": metrics_digest(json.loads(metrics))} for e, m, v, metrics in rows
    }
    query = select(model_policies.c.project, model_policies.c.digest).order_by(model_policies.c.seq)
    found["promotion policy"] = {project: {"digest": digest} for project, digest in conn.execute(query)}
    return found
