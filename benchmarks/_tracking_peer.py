"""MLflow's side of ``tracking.py``, run as ``python _tracking_peer.py MODE SPEC REPORT`` in a fresh
interpreter of the benchmark's own virtualenv (``benchmarks/.envs/tracking``), never in mlwarden's.

``SPEC`` is a JSON file written by ``tracking.py``: the tracking URI (``sqlite:///PATH`` or the
``http://`` address of an ``mlflow server``), the SQLite file behind it (to read back what was stored), and
how many values to log. ``REPORT`` receives a JSON object: the seconds of each phase (imports and the
tracking store's set-up, ``start_run``, the logging loop, ``end_run``), the process's peak RSS when ready
and at the end of the loop, and what was read back. Modes:

* ``prepare``: create the database (MLflow migrates a new one on first use), the experiment ``bench``
  and one small run; untimed, so that no timed process pays for the migration;
* ``metrics``: ``mlflow.log_metric`` one by one inside ``mlflow.start_run()``;
* ``params``: ``mlflow.log_param`` one by one;
* ``batched``: ``MlflowClient().log_batch(run_id, metrics=[Metric(...)...])`` of ``BATCH`` metrics a call.

The workload (which keys, steps and values each mode logs) is defined here once; ``tracking.py`` imports
it for mlwarden's side. Only the standard library is imported at the top: what a mode imports is part of
what it measures. Run without arguments (as ``make bench`` does with every script here), it does nothing.
"""

from __future__ import annotations

import json
import resource
import sqlite3
import sys
import time
from typing import Any

T0 = time.perf_counter()

BATCH = 1_000  # metrics per batched call (MLflow's log_batch takes at most 1,000)
EXPERIMENT = "bench"


def rss_kb() -> int:
    """This process's peak RSS so far (kB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


# -- the workload: the same for both tools ---------------------------------------------------------------


def metric(mode: str, i: int) -> tuple[str, int, float]:
    """The ``i``-th metric a mode logs: (key, step, value). One by one: one key, step ``i``; batched:
    ``BATCH`` keys per call, the call's number as the step. Values are exact in a double."""
    if mode == "batched":
        return f"m{i % BATCH}", i // BATCH, i / 7
    return "loss", i, i / 7


def param(i: int) -> tuple[str, str]:
    """The ``i``-th param: (key, value as stored)."""
    return f"p{i}", str(i)


def expected(mode: str, n: int) -> dict[str, list[Any]]:
    """What a run of ``mode`` with ``n`` values must hold, sorted: metrics (key, step, value), params."""
    if mode == "params":
        return {"metrics": [], "params": sorted([*param(i)] for i in range(n))}
    return {"metrics": sorted([*metric(mode, i)] for i in range(n)), "params": []}


def chunks(n: int) -> list[range]:
    """The batched mode's calls: consecutive ranges of ``BATCH`` values."""
    return [range(start, min(start + BATCH, n)) for start in range(0, n, BATCH)]


# -- MLflow ------------------------------------------------------------------------------------------------


def stored(db: str, run_id: str) -> dict[str, list[Any]]:
    """A run's metrics and params as rows of MLflow's tables, read with the sqlite3 module."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        metrics = con.execute("SELECT key, step, value FROM metrics WHERE run_uuid = ?", (run_id,)).fetchall()
        params = con.execute("SELECT key, value FROM params WHERE run_uuid = ?", (run_id,)).fetchall()
    finally:
        con.close()
    return {"metrics": sorted([k, int(s), float(v)] for k, s, v in metrics), "params": sorted([*p] for p in params)}


def check(client: Any, db: str, run_id: str, mode: str, n: int) -> dict[str, Any]:
    """Whether the run holds exactly what was logged: its rows, and what the API reads back."""
    want = expected(mode, n)
    rows = stored(db, run_id)
    run = client.get_run(run_id)
    if mode == "params":
        api_ok = run.data.params == dict(param(i) for i in range(n))
    elif mode == "batched":
        last = {key: value for key, _step, value in sorted(want["metrics"], key=lambda m: m[1])}
        api_ok = run.data.metrics == last
    else:
        history = client.get_metric_history(run_id, "loss")
        api_ok = sorted([m.key, m.step, m.value] for m in history) == want["metrics"]
    return {
        "metrics_rows": len(rows["metrics"]),
        "params_rows": len(rows["params"]),
        "rows_exact": rows == want,
        "api_exact": api_ok,
        "status": run.info.status,
    }


def prepare(spec: dict[str, Any]) -> dict[str, Any]:
    """Create (and migrate) the database, the experiment and one small run; untimed."""
    import mlflow
    from mlflow.entities import Metric

    mlflow.set_tracking_uri(spec["uri"])
    mlflow.set_experiment(EXPERIMENT)
    with mlflow.start_run(run_name="warm-up") as run:
        for i in range(10):
            mlflow.log_metric("loss", i / 7, step=i)
            mlflow.log_param(f"p{i}", i)
        mlflow.MlflowClient().log_batch(run.info.run_id, metrics=[Metric("m", 1.0, int(time.time() * 1000), 0)])
    return {"run": run.info.run_id}


def log(spec: dict[str, Any], mode: str) -> dict[str, Any]:
    """One measured run: the set-up untimed, then ``start_run``, the loop and ``end_run``, each timed."""
    import mlflow
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    n = int(spec["n"])
    mlflow.set_tracking_uri(spec["uri"])
    mlflow.set_experiment(EXPERIMENT)  # opens the store (checks the schema): not timed
    client = MlflowClient()
    report: dict[str, Any] = {"ready": time.perf_counter() - T0, "rss_ready_kb": rss_kb()}
    t0 = time.perf_counter()
    run_id = mlflow.start_run(run_name=mode).info.run_id
    t1 = time.perf_counter()
    if mode == "metrics":
        for i in range(n):
            key, step, value = metric(mode, i)
            mlflow.log_metric(key, value, step=step)
    elif mode == "params":
        for i in range(n):
            key, value = param(i)
            mlflow.log_param(key, i)
    elif mode == "batched":
        for part in chunks(n):
            now = int(time.time() * 1000)
            batch = [Metric(key, value, now, step) for key, step, value in (metric(mode, i) for i in part)]
            client.log_batch(run_id, metrics=batch)
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    t2 = time.perf_counter()
    mlflow.end_run()
    t3 = time.perf_counter()
    report |= {"start": t1 - t0, "loop": t2 - t1, "end": t3 - t2, "rss_logged_kb": rss_kb(), "run": run_id}
    report["check"] = check(client, spec["db"], run_id, mode, n)
    return report


def main(argv: list[str]) -> int:
    if not argv:
        print("MLflow's side of tracking.py: nothing to run on its own")
        return 0
    mode, spec_path, report_path = argv
    with open(spec_path) as f:
        spec = json.load(f)
    report = prepare(spec) if mode == "prepare" else log(spec, mode)
    with open(report_path, "w") as f:
        json.dump(report, f)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
