"""Helpers of ``data_versioning.py``: running and measuring commands, DVC, the machine, one-core pinning,
and the worker processes it times.

Only the standard library is imported at the top: the workers run as ``python _dvc_compare.py MODE SPEC``
in a fresh interpreter, and what they import is part of what they measure. Run without arguments (as
``make bench`` does with every script here), it does nothing.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DVC_ENV = HERE / ".envs" / "dvc"
GNU_TIME = Path("/usr/bin/time")
MAXRSS_RE = re.compile(r"Maximum resident set size \(kbytes\):\s*(\d+)")
LAUNCHER = """
import json, resource, subprocess, sys, time
t0 = time.perf_counter()
code = subprocess.call(sys.argv[2:])
seconds = time.perf_counter() - t0
with open(sys.argv[1], "w") as f:
    json.dump({"seconds": seconds, "maxrss_kb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}, f)
sys.exit(code)
"""


@dataclass(frozen=True)
class Inputs:
    base: Path  # N rows
    append: Path  # K new rows
    rewritten: Path  # the N + K rows, as a DVC user would rewrite the file
    one_row: Path  # 1 more row (same schema): the smallest append, for a command's fixed cost
    small_base: Path  # K other rows: the first version of a dataset as small as the append
    rows: int
    append_rows: int


@dataclass(frozen=True)
class Step:
    seconds: float
    maxrss_kb: int
    stored: dict[str, int]  # bytes added, by where


@dataclass
class ToolRuns:
    add: list[Step] = field(default_factory=list)
    append: list[Step] = field(default_factory=list)
    fixed: list[Step] = field(default_factory=list)  # mlwarden: add of 1 row; dvc: add of an unchanged file
    startup: list[float] = field(default_factory=list)


# -- running a measured command ------------------------------------------------------------------------


@dataclass(frozen=True)
class Measured:
    seconds: float
    maxrss_kb: int


def run_measured(cmd: list[str], *, env: dict[str, str], cwd: Path, scratch: Path) -> Measured:
    """Run ``cmd``, returning its wall time and peak RSS; raise with its output if it fails."""
    report = scratch / "rusage.out"
    if GNU_TIME.is_file():
        full = [str(GNU_TIME), "-v", "-o", str(report), *cmd]
    else:
        full = [sys.executable, "-c", LAUNCHER, str(report), *cmd]
    t0 = time.perf_counter()
    proc = subprocess.run(full, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    text = report.read_text()
    report.unlink()
    if GNU_TIME.is_file():
        match = MAXRSS_RE.search(text)
        if match is None:
            raise RuntimeError(f"no maximum resident set size in GNU time's report:\n{text}")
        return Measured(seconds, int(match.group(1)))
    measured = json.loads(text)
    return Measured(float(measured["seconds"]), int(measured["maxrss_kb"]))


def run_worker(mode: str, spec: dict[str, Any], *, env: dict[str, str], cwd: Path) -> dict[str, Any]:
    """Run one of this module's workers in a fresh interpreter; its JSON report, with ``wall`` (seconds,
    measured here around the whole process) added."""
    cmd = [sys.executable, str(Path(__file__).resolve()), mode, json.dumps(spec)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"worker {mode} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    report: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return report | {"wall": wall}


def python_env(env: dict[str, str], scratch: Path) -> dict[str, str]:
    """``env`` for a measured Python process: bytecode cached in ``scratch`` (written by the warm-up, read by
    every later run), as an installed package has its ``.pyc`` files. Without this, a sandbox that sets
    PYTHONDONTWRITEBYTECODE would have every command compile an editable install's modules anew."""
    env = {k: v for k, v in env.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return env | {"PYTHONPYCACHEPREFIX": str(scratch / "pycache")}


def dir_bytes(path: Path) -> int:
    """Total size of the regular files under ``path``."""
    total = 0
    for folder, _dirs, files in os.walk(path):
        for name in files:
            entry = Path(folder) / name
            if entry.is_file() and not entry.is_symlink():
                total += entry.stat().st_size
    return total


def file_bytes(*paths: Path) -> int:
    return sum(p.stat().st_size for p in paths if p.is_file())


# -- DVC -------------------------------------------------------------------------------------------------


def ensure_dvc(explicit: Path | None) -> Path:
    """The dvc executable: --dvc, or the benchmark's own virtualenv (created on first use)."""
    if explicit is not None:
        return explicit
    dvc = DVC_ENV / "bin" / "dvc"
    if not dvc.is_file():
        print(f"installing DVC into {DVC_ENV} (once) ...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(DVC_ENV)], check=True)
        pip = [str(DVC_ENV / "bin" / "python"), "-m", "pip", "install", "--quiet"]
        subprocess.run([*pip, "--upgrade", "pip"], check=True)
        subprocess.run([*pip, "dvc"], check=True)
    return dvc


def dvc_env(scratch: Path) -> dict[str, str]:
    """DVC's environment: its own config folders in ``scratch``, no analytics, no update check."""
    global_dir = scratch / "dvc-global"
    global_dir.mkdir(exist_ok=True)
    (global_dir / "config").write_text("[core]\n    analytics = false\n    check_update = false\n")
    env = python_env({k: v for k, v in os.environ.items() if not k.startswith("DVC_")}, scratch)
    env |= {
        "DVC_NO_ANALYTICS": "1",
        "DVC_GLOBAL_CONFIG_DIR": str(global_dir),
        "DVC_SYSTEM_CONFIG_DIR": str(scratch / "dvc-system"),
        "DVC_SITE_CACHE_DIR": str(scratch / "dvc-site"),  # its state (hash) database, fresh per repo
    }
    return env


def bench_dvc(repo: Path, inputs: Inputs, dvc: Path, scratch: Path, runs: ToolRuns) -> None:
    """``dvc add`` of the N-row file, of the rewritten file, then of the same file again (a no-op)."""
    repo.mkdir()
    env = dvc_env(scratch)
    shutil.rmtree(scratch / "dvc-site", ignore_errors=True)
    subprocess.run([str(dvc), "init", "--no-scm", "-q"], cwd=repo, env=env, check=True)
    cache = repo / ".dvc" / "cache"
    target = repo / "data.parquet"
    for path, into in ((inputs.base, runs.add), (inputs.rewritten, runs.append), (None, runs.fixed)):
        if path is not None:
            target.unlink(missing_ok=True)
            shutil.copyfile(path, target)  # not timed: the user's file is already in the repository
        before = dir_bytes(cache)
        measured = run_measured([str(dvc), "add", "-q", target.name], env=env, cwd=repo, scratch=scratch)
        into.append(Step(measured.seconds, measured.maxrss_kb, {"cache": dir_bytes(cache) - before}))
    if runs.fixed[-1].stored["cache"]:
        raise AssertionError("dvc add of an unchanged, tracked file stored something")
    runs.startup.append(run_measured([str(dvc), "--help"], env=env, cwd=repo, scratch=scratch).seconds)
    shutil.rmtree(repo)


def dvc_version(dvc: Path, scratch: Path) -> str:
    out = subprocess.run([str(dvc), "--version"], env=dvc_env(scratch), capture_output=True, text=True, check=True)
    return out.stdout.strip()


# -- the machine --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Quiet:
    reached: bool
    load: float  # 1-minute load average when the timed part began
    waited: float  # seconds spent waiting for it
    limit: float


def wait_until_quiet(limit: float, timeout: float, poll: float = 5.0) -> Quiet:
    """Wait (polling every ``poll`` s, at most ``timeout`` s) until the 1-minute load average is below
    ``limit``: another benchmark may be busy on a core."""
    t0 = time.monotonic()
    while True:
        load, waited = os.getloadavg()[0], time.monotonic() - t0
        if load < limit:
            return Quiet(True, load, waited, limit)
        if waited >= timeout:
            print(f"the machine is not quiet (load {load:.2f}); measuring anyway", file=sys.stderr)
            return Quiet(False, load, waited, limit)
        print(f"waiting for a quiet machine: load {load:.2f} >= {limit} ({waited:.0f} s so far) ...", file=sys.stderr)
        time.sleep(poll)


class CpuMeter:
    """CPU time the rest of the machine used while this process ran the benchmark: every CPU's busy time
    (``/proc/stat``) minus this process's and its waited-for children's (``os.times``). Steal time (the
    hypervisor running other guests) is kept apart."""

    def __init__(self) -> None:
        self._start = self._sample()

    @staticmethod
    def _sample() -> tuple[float, float, float, float] | None:
        try:
            values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
        except (OSError, ValueError):
            return None
        user, nice, system, _idle, _iowait, irq, softirq, steal = values
        hz = os.sysconf("SC_CLK_TCK")
        own = os.times()
        mine = own.user + own.system + own.children_user + own.children_system
        return (user + nice + system + irq + softirq) / hz, steal / hz, mine, time.monotonic()

    def stop(self) -> str:
        end = self._sample()
        if self._start is None or end is None:
            return "unknown (no /proc/stat)"
        busy, steal, mine, wall = (b - a for a, b in zip(self._start, end, strict=True))
        others = max(busy - mine, 0.0)
        return (
            f"{others:.1f} s over {wall:.0f} s ({others / wall:.0%} of one CPU); the benchmark's own:"
            f" {mine:.0f} s; steal: {steal:.1f} s"
        )


def filesystem_of(path: Path) -> str:
    best, kind = "", "unknown"
    try:
        for line in Path("/proc/mounts").read_text().splitlines():
            fields = line.split()
            if len(fields) > 2 and str(path).startswith(fields[1]) and len(fields[1]) > len(best):
                best, kind = fields[1], f"{fields[2]} ({fields[0]})"
    except OSError:
        pass
    return kind


def machine_info(work_dir: Path, versions: dict[str, str], quiet: Quiet, others: str) -> list[tuple[str, str]]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        commit = subprocess.run(
            ["git", "describe", "--always", "--dirty"], capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = "unknown"
    waited = f"waited {quiet.waited:.0f} s for < {quiet.limit}" if quiet.reached else f"NOT below {quiet.limit}"
    return [
        ("date (UTC)", datetime.now(UTC).strftime("%Y-%m-%d %H:%M")),
        ("CPU", f"{cpu}, {os.cpu_count()} logical CPUs"),
        ("OS", platform.platform()),
        ("Python", platform.python_version()),
        ("files on", filesystem_of(work_dir)),
        *((key, value) for key, value in versions.items() if key != "mlwarden"),
        ("peak memory via", "GNU time -v" if GNU_TIME.is_file() else "a Python launcher (RUSAGE_CHILDREN)"),
        (
            "load average (1 min), start / end of the timed part",
            f"{int(quiet.load * 100) / 100:.2f} ({waited}) / {os.getloadavg()[0]:.2f}"
            " (the end includes the benchmark's own load)",
        ),
        ("CPU used by other processes during the timed part", others),
        ("mlwarden", f"{versions.get('mlwarden', '?')} (git {commit})"),
    ]


# -- one core, and timing in this process ---------------------------------------------------------------------


def idlest_cpu(allowed: set[int]) -> int:
    """The allowed CPU that was idle longest over half a second (another process may busy one)."""

    def idle() -> dict[int, int]:
        ticks = {}
        for line in Path("/proc/stat").read_text().splitlines():
            name, *values = line.split()
            if name.startswith("cpu") and name[3:].isdigit():
                ticks[int(name[3:])] = int(values[3]) + int(values[4])  # idle + iowait
        return ticks

    try:
        first = idle()
        time.sleep(0.5)
        second = idle()
    except (OSError, ValueError, IndexError):
        return max(allowed)
    return max(sorted(allowed), key=lambda cpu: second.get(cpu, 0) - first.get(cpu, 0))


@contextmanager
def one_core() -> Iterator[str]:
    """Pin every thread of this process to one CPU (new threads inherit it); restore afterwards."""
    if not hasattr(os, "sched_setaffinity"):
        yield "not pinned (no sched_setaffinity)"
        return
    before = os.sched_getaffinity(0)
    cpu = idlest_cpu(before)

    def pin(mask: set[int]) -> None:
        for tid in os.listdir("/proc/self/task"):
            try:
                os.sched_setaffinity(int(tid), mask)
            except OSError:
                pass  # a thread that just ended

    pin({cpu})
    try:
        yield f"pinned to CPU {cpu}"
    finally:
        pin(before)


@dataclass(frozen=True)
class Timing:
    median: float
    best: float


def timed(fn: Callable[[], object], repeat: int) -> Timing:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return Timing(statistics.median(times), min(times))


# -- reporting ---------------------------------------------------------------------------------------------------


def med(values: list[Any], key: Callable[[Any], float] = float) -> float:
    return statistics.median(key(v) for v in values)


def size(n: float) -> str:
    if abs(n) >= 1e6:
        return f"{n / 1e6:,.1f} MB"
    return f"{n / 1e3:,.0f} kB" if abs(n) >= 1e4 else f"{n:,.0f} B"


def verdict(ok: bool) -> str:
    return "**PASS**" if ok else "**FAIL**"


def ratio(a: float, b: float) -> float:
    return a / b if b > 0 else float("inf")


# -- workers (each in a fresh interpreter) --------------------------------------------------------------------


class Laps:
    """Accumulates the time since the previous lap under each name (``names`` start at zero)."""

    def __init__(self, names: tuple[str, ...] = ()) -> None:
        self.seconds: dict[str, float] = dict.fromkeys(names, 0.0)
        self._last = time.perf_counter()

    def __call__(self, name: str) -> None:
        now = time.perf_counter()
        self.seconds[name] = self.seconds.get(name, 0.0) + now - self._last
        self._last = now


def _timing(into: dict[str, float], name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            into[name] = into.get(name, 0.0) + time.perf_counter() - t0

    return wrapper


def cli_steps(spec: dict[str, Any]) -> dict[str, Any]:
    """What ``mlwarden data add`` does, step by step as the CLI does it, in this fresh process: the CLI's
    imports, opening the workspace (token check), loading the data service, then ``ws.data.add`` with
    ``open_file``, ``stage`` and the wait for the input file's digest timed inside it."""
    laps = Laps()
    from mlwarden.cli.app import app_for

    app_for(["data", "add"])  # the root app with the data commands, as `mlwarden data add` builds it

    laps("cli_imports")
    from mlwarden.service.workspace import open_workspace

    ws = open_workspace(spec["root"], token=spec["token"], client="cli")
    laps("open_workspace")
    data = ws.data  # imports the data path: pyarrow, polars, the readers and the staging
    laps("data_imports")
    import mlwarden.service.datasets as datasets
    from mlwarden.data.readers import BatchSource

    inside: dict[str, float] = {}
    datasets.open_file = _timing(inside, "open_file", datasets.open_file)  # type: ignore[assignment]
    datasets.stage = _timing(inside, "stage", datasets.stage)  # type: ignore[assignment]
    BatchSource.input_digest = _timing(inside, "input_digest", BatchSource.input_digest)  # type: ignore[method-assign]
    change = data.add(spec["dataset"], spec["path"], source=spec["source"], project=spec["project"])
    laps("add")
    ws.close()
    laps("close")
    add = laps.seconds.pop("add")
    report = laps.seconds | inside | {"commit": add - sum(inside.values()), "rows": change.version.rows}
    print(json.dumps(report), flush=True)
    os._exit(0)  # as the CLI leaves: no interpreter teardown


def engine_start(_spec: dict[str, Any]) -> dict[str, Any]:
    """The hash engine's start-up in a fresh process (after pyarrow and numpy are imported)."""
    import mlwarden.data.sha as sha

    t0 = time.perf_counter()
    sha._context()  # load DataFusion's compiled core and make the one-partition session
    return {"engine": time.perf_counter() - t0}


def pipeline(spec: dict[str, Any]) -> dict[str, Any]:
    """A pipeline that ingests regularly: one process, the workspace open, an earlier ingestion done; then
    ``ws.data.add`` of the K-row file into the N-row dataset and into a K-row one, and of one row."""
    import mlwarden

    project, big, small = spec["project"], spec["dataset"], spec["small_dataset"]
    with mlwarden.open_workspace(spec["root"], token=spec["token"], client="sdk") as ws:

        def add(name: str, path: str, source: str) -> float:
            t0 = time.perf_counter()
            ws.data.add(name, path, source=source, project=project)
            return time.perf_counter() - t0

        report = {"first": add(big, spec["base"], spec["base_source"])}  # the earlier ingestions
        report["small_first"] = add(small, spec["small_base"], spec["base_source"])
        # A pipeline that ingests regularly has run the ingestion gate's drift tests before (their modules
        # load on the first append that has a reference): one untimed append into a third dataset.
        add(f"{small}-warm", spec["small_base"], spec["base_source"])
        add(f"{small}-warm", spec["append"], spec["append_source"])
        order = [("into_k", small), ("into_n", big)] if spec["small_first"] else [("into_n", big), ("into_k", small)]
        for key, name in order:
            report[key] = add(name, spec["append"], spec["append_source"])
        report["one_row"] = add(big, spec["one_row"], spec["append_source"])
        rows = {name: [v.rows for v in ws.data.versions(name, project=project)] for name in (big, small)}
    return report | {"rows": rows}


WORKERS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "cli-steps": cli_steps,
    "engine": engine_start,
    "pipeline": pipeline,
}


def main(argv: list[str]) -> int:
    if not argv:
        print("helpers of data_versioning.py: nothing to run on their own")
        return 0
    mode, spec = argv
    print(json.dumps(WORKERS[mode](json.loads(spec))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
