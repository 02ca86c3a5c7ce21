"""Reconciling the run tables with the audit log.

Every run's start, each batch of what it logged, each input and its end are audit events; a batch's
event carries a digest over the batch's params, metrics and tags in canonical form
(``tracking.batch_digest``). Rebuilding each batch from the tables and comparing digests names any
metric, param or tag inserted, changed or deleted in the database, and any run, input or end that no
event recorded.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import Connection, select

from mlwarden.audit.verify import Problem
from mlwarden.domain.actions import Action
from mlwarden.service.reconcile import LoggedRow, compare_logged, replay
from mlwarden.service.tracking import batch_digest
from mlwarden.store.tables import run_artifacts, run_ends, run_inputs, run_metrics, run_params, run_tags, runs

_REPLAYED = [Action.RUN_START, Action.RUN_LOG, Action.RUN_INPUT, Action.RUN_ARTIFACT, Action.RUN_END]


def reconcile_runs(conn: Connection) -> list[Problem]:
    expected: dict[str, dict[str, LoggedRow]] = {
        "run": {},
        "run batch": {},
        "run input": {},
        "run artifact": {},
        "run end": {},
    }
    for seq, doc in replay(conn, _REPLAYED):
        try:
            _apply(doc, seq, expected)
        except (TypeError, KeyError, ValueError):
            continue  # an event without its fields: the log verification reports it
    found = {
        "run": {r: {"name": n} for r, n in conn.execute(select(runs.c.id, runs.c.name))},
        "run batch": _batches(conn),
        "run input": {
            f"{r}:{v}": {"digest": d}
            for r, v, d in conn.execute(select(run_inputs.c.run_id, run_inputs.c.version, run_inputs.c.digest))
        },
        "run artifact": {
            f"{r}/{n}": {"digest": d}
            for r, n, d in conn.execute(select(run_artifacts.c.run_id, run_artifacts.c.name, run_artifacts.c.digest))
        },
        "run end": {r: {"status": s} for r, s in conn.execute(select(run_ends.c.run_id, run_ends.c.status))},
    }
    problems: list[Problem] = []
    for kind, rows in found.items():
        problems += compare_logged(kind, rows, expected[kind])
    return problems


def _apply(doc: dict[str, Any], seq: int, expected: dict[str, dict[str, LoggedRow]]) -> None:
    action, run_id, details = doc["action"], doc["resource_id"], doc["details"]
    if action == Action.RUN_START:
        expected["run"][run_id] = LoggedRow(seq, {"name": details["name"]})
    elif action == Action.RUN_LOG:
        expected["run batch"][f"{run_id}#{int(details['batch'])}"] = LoggedRow(seq, {"digest": doc["digest_after"]})
    elif action == Action.RUN_INPUT:
        expected["run input"][f"{run_id}:{int(details['version'])}"] = LoggedRow(seq, {"digest": doc["digest_after"]})
    elif action == Action.RUN_ARTIFACT:
        expected["run artifact"][f"{run_id}/{details['name']}"] = LoggedRow(seq, {"digest": doc["digest_after"]})
    elif action == Action.RUN_END:
        expected["run end"][run_id] = LoggedRow(seq, {"status": details["status"]})


def _batches(conn: Connection) -> dict[str, dict[str, object]]:
    params: dict[str, dict[str, str]] = defaultdict(dict)
    metrics: dict[str, list[tuple[str, float, int, str]]] = defaultdict(list)
    tags: dict[str, dict[str, str]] = defaultdict(dict)
    for run_id, key, value, batch in conn.execute(
        select(run_params.c.run_id, run_params.c.key, run_params.c.value, run_params.c.batch)
    ):
        params[f"{run_id}#{batch}"][key] = value
    query = select(
        run_metrics.c.run_id,
        run_metrics.c.key,
        run_metrics.c.value,
        run_metrics.c.step,
        run_metrics.c.at,
        run_metrics.c.batch,
    )
    for run_id, key, value, step, at, batch in conn.execute(query):
        metrics[f"{run_id}#{batch}"].append((key, value, step, at))
    for run_id, key, value, batch in conn.execute(
        select(run_tags.c.run_id, run_tags.c.key, run_tags.c.value, run_tags.c.batch)
    ):
        tags[f"{run_id}#{batch}"][key] = value
    keys = params.keys() | metrics.keys() | tags.keys()
    return {k: {"digest": batch_digest(params.get(k, {}), metrics.get(k, []), tags.get(k, {}))} for k in keys}
