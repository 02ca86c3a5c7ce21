"""Experiment tracking: logging metrics and params through mlwarden's SDK against MLflow, both on SQLite.

Run ``python benchmarks/tracking.py [--metrics 10000] [--params 1000] [--repeat 3]`` (or ``make bench``).
In one run, side by side, each measurement a fresh process, it measures:

* **one by one**: ``run.log_metric("loss", v, step=i)`` N times inside ``ws.start_run(...)`` (mlwarden
  buffers them and commits every 1,000 values, every 5 s and at the run's end), against
  ``mlflow.log_metric`` inside ``mlflow.start_run()`` (one transaction a call); the time runs from the
  first call to the run's end, so every value is committed; then ``run.log_param`` / ``mlflow.log_param``
  P times the same way;
* **batched**: the N metrics as calls of 1,000 (1,000 keys, the call's number as the step): mlwarden's
  ``run.log_metrics({...}, step=s)`` + ``run.flush()`` (one commit a call), against MLflow's
  ``MlflowClient().log_batch(run_id, metrics=[Metric(...), ...])``;
* for reference: mlwarden with a commit (and an audit event) per call, ``log_metric`` + ``flush()``, on
  ``--unbuffered`` metrics; MLflow through ``mlflow server`` (its default uvicorn app and workers, the same
  kind of SQLite database) over HTTP, ``--http-metrics`` one-by-one ``mlflow.log_metric`` calls
  (``--http-metrics 0`` skips it);
* **peak memory** of each process (max RSS: GNU ``/usr/bin/time -v``), and its RSS when ready (imports done,
  store open) and at the end of the logging;
* **disk syncs** (``fsync`` + ``fdatasync``, counted with ``strace -f -c`` when it exists, in untimed runs);
* **what a crash loses**: a process that logs 2,500 metrics one by one and is then killed (SIGKILL), and
  one that exits without ending its run; what each left committed is counted.

Each measurement reads back what it logged, once its clock has stopped: the run's rows in the database
(with the sqlite3 module) must be exactly the values logged, and the tool's API must return them. On
mlwarden's side every committed batch must be one ``run.log`` audit event, whose digest is recomputed
from the batch's rows (``tracking.batch_digest``), and after each repetition ``ws.audit.verify()`` of the
whole workspace must pass; the script raises ``AssertionError`` otherwise.

Each repetition uses a fresh mlwarden workspace (made with the SDK before the clock starts: admin, TOTP
enrollment, project, the ml_engineer role granted with a step-up) and a fresh MLflow database, created and
migrated by an untimed run (``_tracking_peer.py prepare``); every measured process has opened its store
before its clock starts (mlwarden: ``open_workspace``; MLflow: ``set_experiment``). The tools alternate
which goes first; tables report medians. Before the timed part the script waits (polling every 5 s, at
most ``--quiet-timeout`` s) for the 1-minute load average to drop below ``--quiet-load``, and it reports
the load and the CPU time other processes used meanwhile.

MLflow is installed in the benchmark's own virtualenv (``benchmarks/.envs/tracking``, created on first use
with ``pip install mlflow==3.17.*``, or the newest 3.x when that pin does not install, said in the results;
``--reinstall`` recreates it). Its side is ``_tracking_peer.py``, which also defines the workload both
tools log. MLflow runs with telemetry off and its working folder in the run's temporary folder. Results go
to benchmarks/results/tracking.md (overwritten) and stdout.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

T0 = time.perf_counter()

from _dvc_compare import (  # noqa: E402 - T0 first: a worker times its own imports
    CpuMeter,
    machine_info,
    python_env,
    ratio,
    run_measured,
    verdict,
    wait_until_quiet,
)
from _tracking_peer import BATCH, chunks, expected, metric, param, rss_kb  # noqa: E402

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "tracking.md"
PEER_ENV = HERE / ".envs" / "tracking"
PEER_SCRIPT = HERE / "_tracking_peer.py"
MLFLOW_PIN = "mlflow==3.17.*"

# Targets from the issue: mlwarden's rate over MLflow's.
TARGET_ONE_BY_ONE = 20.0
TARGET_BATCHED = 5.0
# The reference measurements (MLflow 3.17, a 2-core machine, SQLite backend).
REFERENCE = {"metrics": "about 270/s (43/s under load)", "params": "about 450/s", "batched": "about 12,000/s"}
REFERENCE_RATES = {"metrics": 270.0, "params": 450.0, "batched": 12_000.0}  # the quiet machine's
REFERENCE_HTTP = "about 18/s"

PROJECT = "bench"
ADMIN_PASSWORD = "benchmark-admin-password-not-secret"
MODES = ("metrics", "params", "batched")  # measured on both sides
CRASH_METRICS = 2_500
SYNC_CALLS = {"mlwarden": 2_000, "unbuffered": 200, "mlflow": 200}  # calls of the untimed sync counts

# -- mlwarden's side (workers: `tracking.py --worker MODE SPEC REPORT`) ------------------------------------------


def kind_of(mode: str) -> str:
    """The workload a mode logs (the reference and crash modes log metrics one by one)."""
    return mode if mode in MODES else "metrics"


def log_mlwarden(run: Any, mode: str, n: int) -> None:
    """The timed loop: what ``mode`` logs, as a user of the SDK writes it."""
    if mode == "params":
        for i in range(n):
            key, _ = param(i)
            run.log_param(key, i)
    elif mode == "batched":
        for part in chunks(n):
            values = {key: value for key, _, value in (metric(mode, i) for i in part)}
            run.log_metrics(values, step=part[0] // BATCH)
            run.flush()
    elif mode == "unbuffered":
        for i in range(n):
            key, step, value = metric(mode, i)
            run.log_metric(key, value, step=step)
            run.flush()
    else:
        for i in range(n):
            key, step, value = metric(mode, i)
            run.log_metric(key, value, step=step)


def mlwarden_check(ws: Any, db: str, run_id: str, mode: str, n: int) -> dict[str, Any]:
    """Whether the run holds exactly the first ``n`` values ``mode`` logs (rows and API), and whether each
    committed batch is one ``run.log`` audit event whose digest matches the batch's rows."""
    from mlwarden.service.auditing import AuditQuery

    try:
        from mlwarden.service.tracking import batch_digest
    except ImportError:  # an SDK without it: the digests are reported as not checked
        batch_digest = None
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        metric_rows = con.execute(
            "SELECT key, step, value, at, batch FROM run_metrics WHERE run_id = ?", (run_id,)
        ).fetchall()
        param_rows = con.execute("SELECT key, value, batch FROM run_params WHERE run_id = ?", (run_id,)).fetchall()
        tag_rows = con.execute("SELECT key, value, batch FROM run_tags WHERE run_id = ?", (run_id,)).fetchall()
    finally:
        con.close()
    kind = kind_of(mode)
    rows = {
        "metrics": sorted([k, int(s), float(v)] for k, s, v, _at, _b in metric_rows),
        "params": sorted([k, v] for k, v, _b in param_rows),
    }
    details = ws.runs.show_run(run_id)
    if kind == "params":
        api_ok = details["params"] == dict(param(i) for i in range(n))
    elif kind == "batched":
        want = expected(kind, n)["metrics"]
        api_ok = details["metrics"] == {key: value for key, _step, value in sorted(want, key=lambda m: m[1])}
    else:
        history = ws.runs.metric_history(run_id, "loss")
        api_ok = [[h["step"], h["value"]] for h in history] == [[s, v] for _k, s, v in expected(kind, n)["metrics"]]
    events = ws.audit.log(AuditQuery(action="run.log", resource=f"run:{run_id}", limit=100_000))
    by_batch: dict[int, dict[str, Any]] = {}
    for k, s, v, at, b in metric_rows:
        by_batch.setdefault(b, {"params": {}, "metrics": [], "tags": {}})["metrics"].append((k, v, s, at))
    for k, v, b in param_rows:
        by_batch.setdefault(b, {"params": {}, "metrics": [], "tags": {}})["params"][k] = v
    for k, v, b in tag_rows:
        by_batch.setdefault(b, {"params": {}, "metrics": [], "tags": {}})["tags"][k] = v
    digests = "not checked (no tracking.batch_digest)"
    if batch_digest is not None:
        bad = [
            e.seq
            for e in events
            if e.record.digest_after != batch_digest(**by_batch.get(int(e.record.details["batch"]), {}))
        ]
        digests = "all match" if not bad else f"{len(bad)} differ (events {bad[:5]})"
    sizes = [int(e.record.details["metrics"]) + int(e.record.details["params"]) for e in events]
    return {
        "metrics_rows": len(rows["metrics"]),
        "params_rows": len(rows["params"]),
        "rows_exact": rows == expected(kind, n),
        "api_exact": api_ok,
        "status": details["run"]["status"],
        "batches": len(by_batch),
        "events": len(events),
        "event_batches": sorted(int(e.record.details["batch"]) for e in events) == sorted(by_batch),
        "event_values": sum(sizes),
        "batch_sizes": sizes,
        "digests": digests,
    }


def worker(mode: str, spec: dict[str, Any], report_path: Path) -> dict[str, Any]:
    """One measured process: open the workspace (untimed), then ``start_run``, the loop and the run's end,
    each timed; then read back. The crash modes leave their run unended (see ``CRASH_MODES``)."""
    from mlwarden.service.workspace import open_workspace

    n = int(spec["n"])
    ws = open_workspace(spec["root"], token=spec["token"], client="sdk")
    report: dict[str, Any] = {"ready": time.perf_counter() - T0, "rss_ready_kb": rss_kb()}
    t0 = time.perf_counter()
    run = ws.start_run(PROJECT, mode)
    t1 = time.perf_counter()
    if mode.startswith("crash"):
        report_path.write_text(json.dumps({"run": run.id}))  # before the loop: the process will not return
        log_mlwarden(run, "metrics", n)
        if mode == "crash-kill":
            os.kill(os.getpid(), signal.SIGKILL)
        sys.exit(0)  # without run.end(): the interpreter's exit flushes what is buffered
    log_mlwarden(run, mode, n)
    t2 = time.perf_counter()
    run.end()
    t3 = time.perf_counter()
    report |= {"start": t1 - t0, "loop": t2 - t1, "end": t3 - t2, "rss_logged_kb": rss_kb(), "run": run.id}
    report["check"] = mlwarden_check(ws, spec["db"], run.id, mode, n)
    ws.close()
    return report


# -- the workspaces and MLflow's databases -----------------------------------------------------------------------


def make_workspace(root: Path) -> tuple[str, str]:
    """A workspace whose admin holds ml_engineer in the project; (the admin's token, the SQLite file)."""
    from data_versioning import Authenticator  # the same TOTP helper (imported here: numpy, pyarrow)

    from mlwarden.service.config import WorkspacePaths
    from mlwarden.service.init import init_workspace
    from mlwarden.service.workspace import open_workspace

    initialized = init_workspace(root, admin_password=ADMIN_PASSWORD)
    initialized.workspace.close()
    token = initialized.token.plaintext
    with open_workspace(root, token=token, client="bench") as ws:
        app = Authenticator(ws.mfa.enroll().secret)
        ws.mfa.verify(app.code())
        ws.projects.create(PROJECT)
        ws.roles.grant("admin", "ml_engineer", PROJECT, totp=app.code())
    return token, str(WorkspacePaths(root).meta / "metadata.db")


@dataclass(frozen=True)
class Workspace:
    root: Path
    token: str
    db: str


def verify_workspace(ws_info: Workspace) -> dict[str, Any]:
    """``ws.audit.verify()`` of the whole workspace: its outcome, problems, size and time."""
    from mlwarden.service.workspace import open_workspace

    with open_workspace(ws_info.root, token=ws_info.token, client="bench") as ws:
        t0 = time.perf_counter()
        report = ws.audit.verify()
        seconds = time.perf_counter() - t0
    return {"ok": report.ok, "events": report.size, "seconds": seconds, "problems": [str(p) for p in report.problems]}


def ensure_mlflow(reinstall: bool) -> tuple[str, str]:
    """The peer virtualenv's python (created when missing) and a note when the pin would not install and
    the newest release of the same major version was used instead."""
    from validation import loosen  # the same fallback as validation.py's peers

    python, stamp = PEER_ENV / "bin" / "python", PEER_ENV / ".installed"
    wanted = MLFLOW_PIN + "\n"
    if reinstall or not stamp.is_file() or stamp.read_text().split("# fallback")[0] != wanted:
        shutil.rmtree(PEER_ENV, ignore_errors=True)
        print(f"installing {MLFLOW_PIN} into {PEER_ENV} (once) ...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(PEER_ENV)], check=True)
        pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        subprocess.run([*pip, "--upgrade", "pip"], check=True, timeout=1800)
        note = ""
        if subprocess.run([*pip, MLFLOW_PIN], check=False, timeout=1800).returncode != 0:
            note = f"# fallback: {MLFLOW_PIN} did not install; installed {loosen(MLFLOW_PIN)}\n"
            print(note.strip(), file=sys.stderr)
            subprocess.run([*pip, loosen(MLFLOW_PIN)], check=True, timeout=1800)
        stamp.write_text(wanted + note)
    return str(python), stamp.read_text().partition("# fallback: ")[2].strip()


def peer_env(scratch: Path) -> dict[str, str]:
    """MLflow's environment: no MLflow settings from outside, telemetry off, .pyc files as pip compiled them."""
    drop = ("PYTHONPYCACHEPREFIX", "PYTHONDONTWRITEBYTECODE")
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("MLFLOW_")}
    return env | {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true", "HOME": str(scratch / "home")}


def mlwarden_env(scratch: Path) -> dict[str, str]:
    env = python_env({k: v for k, v in os.environ.items() if not k.startswith("MLWARDEN_")}, scratch)
    return env | {"MLWARDEN_CONFIG_HOME": str(scratch / "mlwarden-config")}


# -- running the measurements ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tools:
    peer_python: str
    scratch: Path
    mine: dict[str, str] = field(repr=False)
    peer: dict[str, str] = field(repr=False)


@dataclass(frozen=True)
class Measurement:
    wall: float  # the whole process
    maxrss_kb: int
    report: dict[str, Any]

    @property
    def logging(self) -> float:
        """The timed part: from the first call to the run's end (every value committed)."""
        return float(self.report["loop"] + self.report["end"])

    def rate(self, n: int) -> float:
        return n / self.logging if self.logging > 0 else float("inf")


def command(tools: Tools, tool: str, mode: str, spec_path: Path, out: Path) -> tuple[list[str], dict[str, str]]:
    if tool == "mlflow":
        return [tools.peer_python, str(PEER_SCRIPT), mode, str(spec_path), str(out)], tools.peer
    return [sys.executable, str(Path(__file__).resolve()), "--worker", mode, str(spec_path), str(out)], tools.mine


def measure(tools: Tools, tool: str, mode: str, spec: dict[str, Any]) -> Measurement:
    spec_path, out = tools.scratch / f"{tool}-{mode}.spec.json", tools.scratch / f"{tool}-{mode}.json"
    spec_path.write_text(json.dumps(spec))
    cmd, env = command(tools, tool, mode, spec_path, out)
    measured = run_measured(cmd, env=env, cwd=tools.scratch, scratch=tools.scratch)
    report: dict[str, Any] = json.loads(out.read_text())
    out.unlink()
    return Measurement(measured.seconds, measured.maxrss_kb, report)


def prepare_mlflow(tools: Tools, uri: str) -> None:
    """Create and migrate an MLflow database, with its experiment and one small run (untimed)."""
    measure(tools, "mlflow", "prepare", {"uri": uri})


def problems_of(tool: str, mode: str, n: int, m: Measurement) -> list[str]:
    """What is wrong with what a measured run stored."""
    c = m.report["check"]
    kind = kind_of(mode)
    want_status = "FINISHED" if tool == "mlflow" else "finished"
    problems = []
    if not c["rows_exact"]:
        problems.append(
            f"{tool} {mode}: its rows differ from what was logged ({c['metrics_rows']} metrics,"
            f" {c['params_rows']} params for {n} values)"
        )
    if not c["api_exact"]:
        problems.append(f"{tool} {mode}: its API does not read back what was logged")
    if c["status"] != want_status:
        problems.append(f"{tool} {mode}: the run is {c['status']}")
    if tool == "mlwarden":
        if c["events"] != c["batches"] or not c["event_batches"]:
            problems.append(f"{tool} {mode}: {c['events']} run.log events for {c['batches']} committed batches")
        if c["event_values"] != n:
            problems.append(f"{tool} {mode}: its run.log events count {c['event_values']} values, not {n}")
        if not c["digests"].startswith(("all match", "not checked")):
            problems.append(f"{tool} {mode}: batch digests: {c['digests']}")
        least = n if mode == "unbuffered" else math.ceil(n / (BATCH if kind == "batched" else flush_rows()))
        if c["batches"] < least:
            problems.append(f"{tool} {mode}: {c['batches']} batches, expected at least {least}")
    return problems


def flush_rows() -> int:
    from mlwarden.service.tracking import FLUSH_ROWS

    return FLUSH_ROWS


@dataclass
class Results:
    runs: dict[tuple[str, str], list[Measurement]] = field(default_factory=dict)  # (tool, mode) -> runs
    verified: list[dict[str, Any]] = field(default_factory=list)  # ws.audit.verify() per repetition
    crash: dict[str, dict[str, Any]] = field(default_factory=dict)
    syncs: dict[str, dict[str, Any]] = field(default_factory=dict)
    http_note: str = ""

    def add(self, tool: str, mode: str, m: Measurement) -> None:
        self.runs.setdefault((tool, mode), []).append(m)


def repetition(tools: Tools, r: int, counts: dict[str, int], unbuffered: int, results: Results) -> None:
    """A fresh workspace and MLflow database; each mode on both sides (alternating who goes first)."""
    root = tools.scratch / f"mlw-{r}"
    token, db = make_workspace(root)
    ws_info = Workspace(root, token, db)
    mlflow_db = tools.scratch / f"mlflow-{r}.db"
    uri = f"sqlite:///{mlflow_db}"
    prepare_mlflow(tools, uri)
    order = ("mlwarden", "mlflow") if r % 2 == 0 else ("mlflow", "mlwarden")
    mine = {"root": str(root), "token": token, "db": db}
    label = f"repetition {r + 1}" if r >= 0 else "warm-up"
    problems = []
    for mode in MODES:
        n = counts[mode]
        for tool in order:
            print(f"{label}: {tool} {mode} ({n:,}) ...", file=sys.stderr)
            spec = {"n": n, "uri": uri, "db": str(mlflow_db)} if tool == "mlflow" else {"n": n, **mine}
            m = measure(tools, tool, mode, spec)
            problems += problems_of(tool, mode, n, m)
            results.add(tool, mode, m)
    if unbuffered:
        print(f"{label}: mlwarden, a commit per call ({unbuffered:,}) ...", file=sys.stderr)
        m = measure(tools, "mlwarden", "unbuffered", {"n": unbuffered, **mine})
        problems += problems_of("mlwarden", "unbuffered", unbuffered, m)
        results.add("mlwarden", "unbuffered", m)
    verified = verify_workspace(ws_info)
    if not verified["ok"]:
        problems.append(f"ws.audit.verify() failed: {verified['problems'][:5]}")
    results.verified.append(verified)
    if problems:
        raise AssertionError("what was stored is not what was logged:\n" + "\n".join(problems))
    shutil.rmtree(root)
    mlflow_db.unlink()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bench_http(tools: Tools, n: int, repeat: int, results: Results) -> None:
    """``mlflow server`` on a prepared database (on this machine's loopback only), then ``repeat``
    processes each logging ``n`` metrics one by one over HTTP; the server is stopped afterwards."""
    db = tools.scratch / "mlflow-server.db"
    uri = f"sqlite:///{db}"
    prepare_mlflow(tools, uri)
    port = free_port()
    mlflow = str(Path(tools.peer_python).with_name("mlflow"))
    cmd = [mlflow, "server", "--backend-store-uri", uri, "--default-artifact-root", str(tools.scratch / "artifacts")]
    cmd += ["--host", "127.0.0.1", "--port", str(port)]
    log = (tools.scratch / "mlflow-server.log").open("w")
    server = subprocess.Popen(
        cmd, env=tools.peer, cwd=tools.scratch, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    address = f"http://127.0.0.1:{port}"
    try:
        t0 = time.monotonic()
        while True:
            try:
                with urllib.request.urlopen(f"{address}/health", timeout=5) as response:  # noqa: S310 - loopback
                    if response.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() - t0 > 300:
                raise RuntimeError(f"mlflow server did not start:\n{(tools.scratch / 'mlflow-server.log').read_text()}")
            time.sleep(0.5)
        up = time.monotonic() - t0
        workers = server_workers(server.pid)
        results.http_note = f"up {up:.0f} s after its start; {workers}"
        for r in range(repeat):
            print(f"MLflow over HTTP {r + 1}/{repeat}: {n:,} metrics ...", file=sys.stderr)
            m = measure(tools, "mlflow", "metrics", {"n": n, "uri": address, "db": str(db)})
            problems = problems_of("mlflow", "metrics", n, m)
            if problems:
                raise AssertionError("\n".join(problems))
            results.add("mlflow", "http", m)
    finally:
        os.killpg(server.pid, signal.SIGTERM)  # its own session: the server, its workers and job runner
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()


def server_workers(pid: int) -> str:
    """How the server runs, from its process group: the ASGI server and its worker count."""
    try:
        out = subprocess.run(["ps", "-o", "args=", "-g", str(pid)], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return "its processes unknown"
    for line in out.stdout.splitlines():
        match = re.search(r"-m (uvicorn|gunicorn|waitress)\b.*?--workers (\d+)", line)
        if match:
            return f"{match.group(1)} with {match.group(2)} worker processes"
    return "its processes: " + "; ".join(line[:80] for line in out.stdout.splitlines()[:3])


def bench_crash(tools: Tools, results: Results) -> None:
    """Log CRASH_METRICS metrics one by one, then die by SIGKILL, or exit without ending the run: what
    was committed, and does the log still verify."""
    from mlwarden.service.workspace import open_workspace

    root = tools.scratch / "crash"
    token, db = make_workspace(root)
    for mode in ("crash-kill", "crash-exit"):
        spec_path, out = tools.scratch / f"{mode}.spec.json", tools.scratch / f"{mode}.json"
        spec_path.write_text(json.dumps({"n": CRASH_METRICS, "root": str(root), "token": token, "db": db}))
        cmd, env = command(tools, "mlwarden", mode, spec_path, out)
        proc = subprocess.run(cmd, env=env, cwd=tools.scratch, capture_output=True, text=True, check=False)
        run_id = json.loads(out.read_text())["run"]
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            committed = con.execute("SELECT count(*) FROM run_metrics WHERE run_id = ?", (run_id,)).fetchone()[0]
        finally:
            con.close()
        with open_workspace(root, token=token, client="bench") as ws:
            check = mlwarden_check(ws, db, run_id, "metrics", committed)
        results.crash[mode] = {"returncode": proc.returncode, "committed": committed, "check": check}
    results.crash["verify"] = verify_workspace(Workspace(root, token, db))
    shutil.rmtree(root)


SYNC_RE = re.compile(r"^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(fsync|fdatasync)\s*$")


def count_syncs(tools: Tools, tool: str, mode: str, spec: dict[str, Any]) -> int:
    """fsync + fdatasync calls of one (untimed) process and its threads, by ``strace -f -c``."""
    spec_path, out, trace = (tools.scratch / f"sync-{tool}.{suffix}" for suffix in ("spec.json", "json", "strace"))
    spec_path.write_text(json.dumps(spec))
    cmd, env = command(tools, tool, mode, spec_path, out)
    strace = ["strace", "-f", "-c", "-o", str(trace), "-e", "trace=fsync,fdatasync", *cmd]
    subprocess.run(strace, env=env, cwd=tools.scratch, capture_output=True, check=True)
    report = json.loads(out.read_text())
    problems = problems_of(tool, mode, int(spec["n"]), Measurement(0.0, 0, report))
    if problems:
        raise AssertionError("\n".join(problems))
    return sum(int(m.group(1)) for line in trace.read_text().splitlines() if (m := SYNC_RE.match(line)))


def bench_syncs(tools: Tools, results: Results) -> None:
    """Disk syncs per call: each tool's one-by-one logging of a few hundred values against the same
    process logging nothing (start, end and read-back alike), in fresh stores."""
    if shutil.which("strace") is None:
        return
    root = tools.scratch / "syncs"
    token, db = make_workspace(root)
    mlflow_db = tools.scratch / "mlflow-syncs.db"
    uri = f"sqlite:///{mlflow_db}"
    prepare_mlflow(tools, uri)
    mine = {"root": str(root), "token": token, "db": db}
    cases = {
        "mlwarden": ("mlwarden", "metrics", mine),
        "unbuffered": ("mlwarden", "unbuffered", mine),
        "mlflow": ("mlflow", "metrics", {"uri": uri, "db": str(mlflow_db)}),
    }
    for name, (tool, mode, spec) in cases.items():
        try:
            base = count_syncs(tools, tool, mode, spec | {"n": 0})
            calls = SYNC_CALLS[name]
            syncs = count_syncs(tools, tool, mode, spec | {"n": calls})
        except (OSError, subprocess.CalledProcessError) as exc:  # ptrace not permitted, say
            print(f"no sync counts: {exc}", file=sys.stderr)
            results.syncs.clear()
            break
        results.syncs[name] = {"calls": calls, "base": base, "syncs": syncs}
    shutil.rmtree(root)
    mlflow_db.unlink()


# -- reporting ---------------------------------------------------------------------------------------------------


def mib(kb: float) -> str:
    return f"{kb / 1024:,.0f} MiB"


def render(args: argparse.Namespace, results: Results, ctx: dict[str, Any]) -> str:
    counts = {"metrics": args.metrics, "params": args.params, "batched": args.metrics}
    counts |= {"unbuffered": args.unbuffered, "http": args.http_metrics}

    def runs(tool: str, mode: str) -> list[Measurement]:
        return results.runs.get((tool, mode), [])

    def rate(tool: str, mode: str) -> float:
        return statistics.median(m.rate(counts[mode]) for m in runs(tool, mode))

    def med(tool: str, mode: str, fn: Callable[[Measurement], float]) -> float:
        return statistics.median(fn(m) for m in runs(tool, mode))

    def rates_text(tool: str, mode: str) -> str:
        return ", ".join(f"{m.rate(counts[mode]):,.0f}" for m in runs(tool, mode))

    ratios = {mode: ratio(rate("mlwarden", mode), rate("mlflow", mode)) for mode in MODES}
    labels = {
        "metrics": f"`log_metric` one by one ({args.metrics:,}), metrics/s",
        "params": f"`log_param` one by one ({args.params:,}), params/s",
        "batched": f"batched: {args.metrics:,} metrics as {math.ceil(args.metrics / BATCH)} calls of {BATCH:,}"
        " (mlwarden `log_metrics` + `flush()`; MLflow `log_batch`), metrics/s",
    }

    def target_row(mode: str, wanted: float) -> str:
        measured = f"{ratios[mode]:,.1f}x ({rate('mlwarden', mode):,.0f}/s vs {rate('mlflow', mode):,.0f}/s)"
        return f"| {labels[mode]} | >= {wanted:.0f}x MLflow's rate | {measured} | {verdict(ratios[mode] >= wanted)} |"

    rate_rows = [
        f"| {labels[mode]} | {rate('mlwarden', mode):,.0f} | {rate('mlflow', mode):,.0f} | {ratios[mode]:,.1f}x"
        f" | {REFERENCE[mode]} | {rates_text('mlwarden', mode)}; {rates_text('mlflow', mode)} |"
        for mode in MODES
    ]
    if runs("mlwarden", "unbuffered"):
        r = rate("mlwarden", "unbuffered")
        rate_rows.append(
            f"| for reference: mlwarden with a commit and an audit event per call (`log_metric` + `flush()`,"
            f" {args.unbuffered:,}), against MLflow's one by one | {r:,.0f} | {rate('mlflow', 'metrics'):,.0f}"
            f" | {ratio(r, rate('mlflow', 'metrics')):,.1f}x | | {rates_text('mlwarden', 'unbuffered')} (mlwarden) |"
        )
    if runs("mlflow", "http"):
        h = rate("mlflow", "http")
        rate_rows.append(
            f"| for reference: MLflow through `mlflow server` over HTTP, `log_metric` one by one"
            f" ({args.http_metrics:,}), against mlwarden's one by one | {rate('mlwarden', 'metrics'):,.0f} | {h:,.1f}"
            f" | {ratio(rate('mlwarden', 'metrics'), h):,.0f}x | {REFERENCE_HTTP}"
            f" | {rates_text('mlflow', 'http')} (MLflow) |"
        )

    def phase_rows() -> list[str]:
        out = []
        for tool, mode in sorted(results.runs, key=lambda k: (list(counts).index(k[1]), k[0] != "mlwarden")):
            label = "MLflow" if tool == "mlflow" else "mlwarden"
            what = {"unbuffered": "metrics, a commit per call", "http": "metrics over HTTP"}.get(mode, mode)
            out.append(
                f"| {label} | {what} ({counts[mode]:,}) | {med(tool, mode, lambda m: m.report['ready']):.2f} s"
                f" | {med(tool, mode, lambda m: m.report['start']) * 1e3:.0f} ms"
                f" | {med(tool, mode, lambda m: m.report['loop']):.3f} s"
                f" | {med(tool, mode, lambda m: m.report['end']) * 1e3:.1f} ms"
                f" | {med(tool, mode, lambda m: m.logging):.3f} s | {med(tool, mode, lambda m: m.wall):.2f} s"
                f" | {mib(med(tool, mode, lambda m: m.report['rss_ready_kb']))}"
                f" | {mib(med(tool, mode, lambda m: m.report['rss_logged_kb']))}"
                f" | {mib(med(tool, mode, lambda m: m.maxrss_kb))} |"
            )
        return out

    def stored_rows() -> list[str]:
        out = []
        for (tool, mode), ms in sorted(results.runs.items(), key=lambda kv: (kv[0][0] != "mlwarden", kv[0][1])):
            c = ms[-1].report["check"]
            rows = f"{c['metrics_rows']:,} metrics, {c['params_rows']:,} params"
            if tool == "mlwarden":
                sizes = sorted(set(c["batch_sizes"]))
                audit = (
                    f"`run.log` events / committed batches: {c['events']:,} / {c['batches']:,}, of"
                    f" {' or '.join(f'{s:,}' for s in sizes)} values each; digests: {c['digests']}"
                )
            else:
                audit = "(no audit log)"
            exact, api = ("yes" if c[key] else "NO" for key in ("rows_exact", "api_exact"))
            out.append(f"| {'MLflow' if tool == 'mlflow' else tool} | {mode} | {rows} | {exact} | {api} | {audit} |")
        return out

    verify = results.verified
    verify_text = ", ".join(
        f"{v['events']:,} events, {'ok' if v['ok'] else 'FAILED'} in {v['seconds']:.2f} s" for v in verify
    )
    crash_lines = []
    if results.crash:
        kill, leave = results.crash["crash-kill"], results.crash["crash-exit"]
        crash_lines = [
            "| process | exit | committed of the "
            f"{CRASH_METRICS:,} logged | lost | batches (`run.log` events) | read back exactly | run status |",
            "| --- | --- | ---: | ---: | --- | --- | --- |",
            *(
                f"| {label} | {c['returncode']} | {c['committed']:,} | {CRASH_METRICS - c['committed']:,}"
                f" | {c['check']['batches']} ({c['check']['events']}; digests: {c['check']['digests']})"
                f" | {'yes' if c['check']['rows_exact'] and c['check']['api_exact'] else 'NO'}"
                f" | {c['check']['status']} |"
                for label, c in (
                    ("killed (SIGKILL) after its last `log_metric`", kill),
                    ("exits (`sys.exit(0)`) without `run.end()`", leave),
                )
            ),
            "",
            f"`ws.audit.verify()` of that workspace afterwards: {'ok' if results.crash['verify']['ok'] else 'FAILED'}"
            f" ({results.crash['verify']['events']:,} events).",
        ]
    sync_lines = []
    if results.syncs:
        sync_lines = [
            "| process | calls | syncs, process logging nothing | syncs, with the calls | syncs per call |",
            "| --- | ---: | ---: | ---: | ---: |",
            *(
                f"| {label} | {s['calls']:,} | {s['base']} | {s['syncs']} | {(s['syncs'] - s['base']) / s['calls']:.2f}"
                " |"
                for name, label in (
                    ("mlwarden", "mlwarden, `log_metric` one by one (buffered)"),
                    ("unbuffered", "mlwarden, `log_metric` + `flush()` (a commit per call)"),
                    ("mlflow", "MLflow, `mlflow.log_metric` one by one"),
                )
                if (s := results.syncs.get(name))
            ),
        ]
    else:
        sync_lines = ["Not counted (no `strace`, or ptrace not permitted)."]
    command_line = (
        f"python benchmarks/tracking.py --metrics {args.metrics} --params {args.params} --repeat {args.repeat}"
        f" --unbuffered {args.unbuffered} --http-metrics {args.http_metrics}"
    )
    lines = [
        "# Experiment tracking benchmark",
        "",
        f"`{command_line}` (wall time {ctx['wall']:.0f} s). mlwarden's SDK (`ws.start_run`, `run.log_metric`,"
        f" `run.log_param`, `run.log_metrics`) on a SQLite workspace against MLflow {ctx['mlflow']} with a local"
        f' SQLite backend (`mlflow.set_tracking_uri("sqlite:///...")`). Each number is one fresh process per'
        f" run, medians of {args.repeat}; a rate is the values logged over the time from the first call to the"
        " run's end (every value committed; `start_run` is shown apart).",
        "",
        "| machine | |",
        "| --- | --- |",
        *(f"| {key} | {value} |" for key, value in ctx["machine"]),
        "",
        "## Targets (from the issue)",
        "",
        "| target | wanted | measured | result |",
        "| --- | --- | --- | --- |",
        target_row("metrics", TARGET_ONE_BY_ONE),
        target_row("params", TARGET_ONE_BY_ONE),
        target_row("batched", TARGET_BATCHED),
        "",
        "The ratios divide by MLflow's rate measured in the same run. Against the issue's reference rates for"
        " MLflow instead (measured on another quiet 2-core machine: "
        + ", ".join(f"{REFERENCE_RATES[mode]:,.0f}/s" for mode in MODES)
        + "), mlwarden's rates here would be "
        + ", ".join(
            f"{ratio(rate('mlwarden', mode), REFERENCE_RATES[mode]):,.1f}x"
            f" ({'PASS' if ratio(rate('mlwarden', mode), REFERENCE_RATES[mode]) >= wanted else 'FAIL'})"
            for mode, wanted in zip(MODES, (TARGET_ONE_BY_ONE, TARGET_ONE_BY_ONE, TARGET_BATCHED), strict=True)
        )
        + " (one-by-one metrics, params, batched).",
        "",
        "## Rates (values per second, median; higher is better)",
        "",
        "| measure | mlwarden | MLflow | mlwarden / MLflow | the issue's MLflow reference"
        " | runs, /s (mlwarden; MLflow) |",
        "| --- | ---: | ---: | ---: | --- | --- |",
        *rate_rows,
        "",
        "## Where the time goes, and memory (medians)",
        "",
        '"ready": the process\'s imports and opening the store (mlwarden: `open_workspace` with the token;'
        ' MLflow: `set_tracking_uri` + `set_experiment`), untimed. "logging": the loop plus the run\'s end, what'
        ' the rates count. RSS: "ready" and "after logging" as the process reports its `ru_maxrss`; "peak" is'
        " the whole process's (GNU time), read-back included.",
        "",
        "| tool | what (values) | ready | `start_run` | loop | run's end | logging | process wall | RSS ready"
        " | RSS after logging | peak RSS |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        *phase_rows(),
        "",
        "## What was stored (read back after each run; the last run shown, every run checked)",
        "",
        "| tool | mode | rows of the run | exactly what was logged | the API reads it back | audit |",
        "| --- | --- | --- | --- | --- | --- |",
        *stored_rows(),
        "",
        f"`ws.audit.verify()` of each repetition's workspace (every run of all modes in it): {verify_text}.",
        "",
        "## Disk syncs (untimed runs under `strace -f -c`, fsync + fdatasync)",
        "",
        *sync_lines,
        "",
        "## What a crash can lose",
        "",
        "mlwarden buffers what a run logs in the process and commits it in batches: when 1,000 values are"
        " waiting, when 5 s have passed since the last commit, on `run.flush()`, at the run's end and at"
        " interpreter exit (an `atexit` hook). Each batch is one transaction and one `run.log` audit event whose"
        " digest covers its values, so a crash loses the values logged since the last commit (at most 1,000,"
        " or 5 s of logging), never part of a batch; a `kill -9` also skips the exit flush. See"
        ' [docs/tracking.md](../../docs/tracking.md) ("What a crash can lose"). MLflow commits every'
        " `log_metric` call before it returns (it loses nothing already logged, at one transaction a call)."
        f" Checked here: a process logs {CRASH_METRICS:,} metrics one by one, then dies or leaves:",
        "",
        *crash_lines,
        "",
        "## What is compared",
        "",
        "* **mlwarden**: `open_workspace(root, token=...)` (the workspace admin, ml_engineer in the project),"
        ' `ws.start_run("bench", name)` (which records the git state of the working folder, the command line,'
        " the platform and the installed packages), then the calls above, then `run.end()`, which commits what is"
        " buffered and records the end. Each commit is one SQLite transaction through the one door: authorize,"
        " check the run is open and this actor's, insert the rows, append the `run.log` audit event (Merkle"
        " leaf, and a signed checkpoint every 1,000 events). The workspace's SQLite runs in WAL mode with"
        " `synchronous=NORMAL`: a committed transaction survives a process crash, and only a power cut can drop"
        " the last commits (see docs/audit.md).",
        '* **MLflow**: `mlflow.set_tracking_uri("sqlite:///PATH")`, `mlflow.set_experiment("bench")`'
        " (untimed), `mlflow.start_run()`, the calls, `mlflow.end_run()`. Every `log_metric` / `log_param` is"
        " its own transaction on SQLite's default rollback journal with `synchronous=FULL` (the disk syncs above)."
        " Batched: `MlflowClient().log_batch(run_id, metrics=[Metric(key, value, timestamp, step), ...])`, 1,000"
        " metrics a call (its limit). Its database is created and migrated by an untimed process first.",
        "* Both log the same values (`_tracking_peer.py` defines them): one by one, key `loss`, step i, value"
        f" i/7; params `p<i>` = i; batched, {BATCH:,} keys `m<j>` per call with the call's number as the step."
        " Building each call's arguments (mlwarden's dict, MLflow's `Metric` objects) is inside the timed loop.",
        f"* MLflow over HTTP (reference): `mlflow server --backend-store-uri sqlite:///PATH --host 127.0.0.1` on"
        f" this machine, {results.http_note or 'not run'}; the client logs through the REST API; one process per"
        " run as above.",
        *ctx["notes"],
        "* The machine: the timed part starts once the 1-minute load average is below"
        f" {args.quiet_load} (or after {args.quiet_timeout:.0f} s of waiting); the CPU time other processes used"
        " meanwhile is in the machine table. MLflow's one-by-one rate follows the disk's sync latency, and so"
        " varies with what else the machine (and its host) is doing.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:
        _, mode, spec_path, report_path = argv
        report = worker(mode, json.loads(Path(spec_path).read_text()), Path(report_path))
        Path(report_path).write_text(json.dumps(report))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--metrics", type=int, default=10_000, help="metrics logged (default 10000)")
    parser.add_argument("--params", type=int, default=1_000, help="params logged (default 1000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each measurement; medians (default 3)")
    parser.add_argument("--unbuffered", type=int, default=1_000, help="mlwarden, a commit per call (0: skip)")
    parser.add_argument("--http-metrics", type=int, default=500, help="MLflow over HTTP (default 500; 0: skip)")
    parser.add_argument("--dir", type=Path, default=None, help="where to put the databases (default: a tmpdir)")
    parser.add_argument("--reinstall", action="store_true", help="recreate MLflow's virtualenv")
    parser.add_argument("--output", type=Path, default=RESULTS, help="Markdown results file (overwritten)")
    parser.add_argument("--quiet-load", type=float, default=0.6, help="start when the 1-min load is below this")
    parser.add_argument("--quiet-timeout", type=float, default=600, help="wait at most this long for it (s)")
    args = parser.parse_args(argv)
    if args.metrics < 1 or args.params < 1 or args.repeat < 1 or args.unbuffered < 0 or args.http_metrics < 0:
        parser.error("--metrics, --params and --repeat must be positive")

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # `kill PID`: remove the temporary folder too
    wall0 = time.perf_counter()
    peer_python, fallback = ensure_mlflow(args.reinstall)
    from validation import dist_versions

    v_peer = dist_versions(peer_python, ("mlflow", "sqlalchemy"))
    v_mine = dist_versions(sys.executable, ("mlwarden", "sqlalchemy"))
    sqlite_peer = subprocess.run(
        [peer_python, "-c", "import sqlite3; print(sqlite3.sqlite_version)"], capture_output=True, text=True, check=True
    ).stdout.strip()
    counts = {"metrics": args.metrics, "params": args.params, "batched": args.metrics}
    results = Results()
    with tempfile.TemporaryDirectory(prefix="mlwarden-bench-tracking-", dir=args.dir) as tmp:
        work = Path(tmp)
        (work / "home").mkdir()
        tools = Tools(peer_python, work, mlwarden_env(work), peer_env(work))
        # Warm-up, not measured: bytecode (mlwarden's into work/pycache), the page cache, a first check.
        print("warm-up: every measurement once, small ...", file=sys.stderr)
        repetition(
            tools, -1, {mode: min(n, 2 * BATCH) for mode, n in counts.items()}, min(args.unbuffered, 50), Results()
        )
        quiet = wait_until_quiet(args.quiet_load, args.quiet_timeout)
        meter = CpuMeter()
        for r in range(args.repeat):
            repetition(tools, r, counts, args.unbuffered, results)
        others = meter.stop()
        if args.http_metrics:
            bench_http(tools, args.http_metrics, args.repeat, results)
        print("what a crash loses; disk syncs ...", file=sys.stderr)
        bench_crash(tools, results)
        bench_syncs(tools, results)
        versions = {
            "SQLite (mlwarden's side / MLflow's side)": f"{sqlite3.sqlite_version} / {sqlite_peer}",
            "SQLAlchemy (mlwarden's side / MLflow's side)": f"{v_mine['sqlalchemy']} / {v_peer['sqlalchemy']}",
            "MLflow": f"{v_peer['mlflow']} (pin `{MLFLOW_PIN}`, env `benchmarks/.envs/tracking`)",
            "mlwarden": v_mine["mlwarden"],
        }
        notes = []
        if fallback:
            notes.append(f"* The pin `{MLFLOW_PIN}` did not install: {fallback}.")
        ctx = {
            "mlflow": v_peer["mlflow"],
            "machine": machine_info(work, versions, quiet, others + " (HTTP, crash and sync runs come after)"),
            "notes": notes,
            "wall": time.perf_counter() - wall0,
        }
        text = render(args, results, ctx)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
