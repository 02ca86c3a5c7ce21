"""Model-file scanners side by side: mlwarden, picklescan, modelscan, fickling and ModelAudit.

Run ``python benchmarks/scan.py`` (or ``make bench``). Each peer is installed in its own virtualenv
under ``benchmarks/.envs/NAME`` (created on first run with pip; ``--reinstall`` recreates them) and run
as a subprocess, exactly as a user would run it; mlwarden runs from the project's interpreter, also as a
subprocess. In one run, on the same files:

* detection: every file of picklescan's corpus (../shared/corpora/picklescan, with its MANIFEST.tsv) and
  of a generated corpus (one file per bypass class of docs/scanner.md, plus benign scikit-learn,
  joblib, XGBoost, NumPy and PyTorch-style files made here), one process per file. A tool "flags" a
  file when it exits non-zero; malicious files must be flagged, benign ones must not, and encrypted or
  non-model files must not pass (exit 0);
* speed: MB/s over the whole corpus folder in one process, and over a ~500 MB benign state-dict-like
  pickle (NumPy float32 arrays, protocol 4), wall time including start-up, with each process's peak RSS.

Results go to benchmarks/results/scan.md (overwritten) and stdout. Nothing here is ever unpickled.
"""

from __future__ import annotations

import argparse
import io
import os
import pickle
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import venv
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.scan import craft as c  # noqa: E402 - byte-level builders shared with the tests

RESULTS = ROOT / "benchmarks" / "results" / "scan.md"
ENVS = ROOT / "benchmarks" / ".envs"
CORPUS = ROOT.parent / "shared" / "corpora" / "picklescan"
TIME = shutil.which("time") if Path("/usr/bin/time").exists() else None  # GNU time: peak RSS of the command


@dataclass(frozen=True)
class Tool:
    name: str
    package: str  # what pip installs into the tool's own virtualenv ("" for mlwarden), with optional extras
    command: Callable[[Path], list[str]]

    def env_bin(self, script: str) -> str:
        return str(ENVS / self.name / "bin" / script)


TOOLS = [
    Tool("mlwarden", "", lambda p: [sys.executable, "-m", "mlwarden", "scan", str(p)]),
    Tool("picklescan", "picklescan[7z] numpy", lambda p: [TOOLS[1].env_bin("picklescan"), "--path", str(p)]),
    Tool("modelscan", "modelscan[h5py]", lambda p: [TOOLS[2].env_bin("modelscan"), "-p", str(p)]),
    Tool("fickling", "fickling", lambda p: [TOOLS[3].env_bin("fickling"), "--check-safety", str(p)]),
    Tool("modelaudit", "modelaudit", lambda p: [TOOLS[4].env_bin("modelaudit"), "scan", str(p)]),
]


def ensure_env(tool: Tool, reinstall: bool) -> str:
    """The tool's version, installing it into benchmarks/.envs/NAME first when needed."""
    if not tool.package:
        return _version(sys.executable, "mlwarden")
    where = ENVS / tool.name
    if reinstall and where.exists():
        shutil.rmtree(where)
    python = where / "bin" / "python"
    if not python.exists():
        venv.EnvBuilder(with_pip=True).create(where)
        install = [str(python), "-m", "pip", "install", "--quiet", *tool.package.split()]
        subprocess.run(install, check=True, timeout=1800)
    return _version(str(python), tool.package.split("[")[0].split()[0])


def _version(python: str, dist: str) -> str:
    code = f"import importlib.metadata as m; print(m.version({dist!r}))"
    done = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=60)
    return done.stdout.strip() or "?"


@dataclass
class Run:
    code: int
    seconds: float
    max_rss_mb: float


def run(command: list[str], timeout: float) -> Run:
    """Run to completion (or stop at ``timeout``): exit code, wall time, and the command's peak RSS as
    GNU time reports it (the benchmark's own memory is not counted)."""
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as rss:
        wrapped = [TIME, "-f", "%M", "-o", rss.name, *command] if TIME else command
        started = time.perf_counter()
        try:
            done = subprocess.run(
                wrapped,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                cwd=tempfile.gettempdir(),
                timeout=timeout,
            )
            code = done.returncode
        except subprocess.TimeoutExpired:
            code = -9
        seconds = time.perf_counter() - started
        text = Path(rss.name).read_text().strip().splitlines()
    kilobytes = int(text[-1]) if text and text[-1].isdigit() else 0
    return Run(code, seconds, kilobytes / 1024)


# -- the files ----------------------------------------------------------------------------------------------------


def corpus_files() -> list[tuple[Path, str]]:
    manifest = CORPUS / "MANIFEST.tsv"
    if not manifest.is_file():
        raise SystemExit(f"picklescan corpus not found at {CORPUS}")
    rows = [line.split("\t") for line in manifest.read_text().splitlines()[1:] if line.strip()]
    return [(CORPUS / name, expected) for name, expected in rows]


def generated_files(folder: Path) -> list[tuple[Path, str]]:
    """One file per bypass class, and benign models made here (written, never loaded)."""
    evil = c.call("os", "system", c.s("id"))
    memo_fed = b"Vos\np0\n0Vsystem\np1\n0g0\ng1\n\x93(Vid\ntR."
    trampoline = c.PROTO4 + c.sglob("pkgutil", "resolve_name") + c.s("os:system") + c.TUPLE1 + c.REDUCE
    trampoline += c.s("id") + c.TUPLE1 + c.REDUCE + c.STOP
    body = c.sglob("_posixsubprocess", "fork_exec") + c.s("id") + c.TUPLE1 + c.REDUCE + c.STOP
    cases: dict[str, tuple[bytes, str]] = {
        "gap_multiprocessing.pkl": (c.call("multiprocessing.util", "spawnv_passfds", c.s("id")), "malicious"),
        "gap_unknown_pkg.pkl": (c.call("some_package_nobody_lists", "run", c.s("x")), "malicious"),
        "gap_code_interpreter.pkl": (c.call("code", "InteractiveInterpreter.runcode", c.s("x")), "malicious"),
        "trampoline_resolve_name.pkl": (trampoline, "malicious"),
        "getattr_static.pkl": (c.call("inspect", "getattr_static", c.s("x"), c.s("y")), "malicious"),
        "memo_fed_stack_global.pkl": (memo_fed, "malicious"),
        "frame_divergence.pkl": (c.frame(body, 3), "malicious"),
        "zip_flag_0x1.pt": (c.raw_zip("archive/data.pkl", evil, flags=1), "malicious"),
        "zip_bad_crc.pt": (c.raw_zip("archive/data.pkl", evil, crc=1), "malicious"),
        "zip_hidden_entry.pt": (c.raw_zip("archive/data.pkl", evil, in_directory=False), "malicious"),
        "stacked.pkl": (c.PROTO4 + b"]" + c.STOP + evil, "malicious"),
        "routed_by_extension.json": (evil, "malicious"),
        "nested_hex.pkl": (c.PROTO4 + c.s(evil.hex()) + c.STOP, "malicious"),
        "model.7z": (c.sevenzip("data.pkl", evil), "malicious"),
    }
    out = []
    for name, (data, expected) in cases.items():
        (folder / name).write_bytes(data)
        out.append((folder / name, expected))
    return out + benign_models(folder)


def benign_models(folder: Path) -> list[tuple[Path, str]]:
    import joblib
    import numpy as np
    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    X, y = make_classification(200, 8, random_state=0)
    forest = RandomForestClassifier(n_estimators=5, random_state=0).fit(X, y)
    models = {"sklearn_forest.pkl": pickle.dumps(forest, protocol=4)}
    models["sklearn_logreg.pkl"] = pickle.dumps(LogisticRegression().fit(X, y), protocol=2)
    buf = io.BytesIO()
    joblib.dump(forest, buf)
    models["sklearn_forest.joblib"] = buf.getvalue()
    try:
        import xgboost

        models["xgboost.pkl"] = pickle.dumps(xgboost.XGBClassifier(n_estimators=3).fit(X, y), protocol=4)
    except ImportError:
        pass
    for name, array in (
        ("numeric.npy", np.arange(1000.0)),
        ("objects.npy", np.array([{"a": 1}, (2, 3)], dtype=object)),
    ):
        buf = io.BytesIO()
        np.save(buf, array, allow_pickle=True)
        models[name] = buf.getvalue()
    buf = io.BytesIO()
    np.savez_compressed(buf, a=np.ones(10), b=np.array(["x"], dtype=object))
    models["arrays.npz"] = buf.getvalue()
    models["torch_like_state_dict.pt"] = torch_like_state_dict()
    out = []
    for name, data in models.items():
        (folder / name).write_bytes(data)
        out.append((folder / name, "benign"))
    return out


def torch_like_state_dict() -> bytes:
    pid = c.MARK + c.s("storage") + c.glob("torch", "FloatStorage") + c.s("0") + c.s("cpu") + b"K\x04" + c.TUPLE
    tensor = c.glob("torch._utils", "_rebuild_tensor_v2") + c.MARK + pid + b"Q" + b"K\x00" + b"K\x04\x85"
    tensor += b"K\x01\x85" + b"\x89" + c.glob("collections", "OrderedDict") + c.EMPTY_TUPLE + c.REDUCE + c.TUPLE
    data = b"\x80\x02" + c.glob("collections", "OrderedDict") + c.EMPTY_TUPLE + c.REDUCE + c.MARK
    data += c.s("layer.weight") + tensor + c.REDUCE + b"u" + c.STOP
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        for name, member in (("archive/data.pkl", data), ("archive/data/0", bytes(16)), ("archive/version", b"3\n")):
            archive.writestr(name, member)
    return buf.getvalue()


def big_state_dict(path: Path, megabytes: int) -> int:
    """A benign state-dict-like pickle: named float32 arrays (torch is not needed), protocol 4."""
    import numpy as np

    count = 100
    per = megabytes * (1 << 20) // count // 4
    rng = np.random.default_rng(0)
    state = {f"layers.{i}.weight": rng.standard_normal(per, dtype=np.float32) for i in range(count)}
    with path.open("wb") as f:
        pickle.dump(state, f, protocol=4)
    return path.stat().st_size


# -- measuring -----------------------------------------------------------------------------------------------------


@dataclass
class Score:
    caught: int = 0
    malicious: int = 0
    false_positives: int = 0
    benign: int = 0
    passed_nonmodels: int = 0  # unverifiable / not-a-model files that exited 0
    nonmodels: int = 0
    errors: int = 0
    missed: list[str] = field(default_factory=list)
    flagged_benign: list[str] = field(default_factory=list)

    def add(self, path: Path, expected: str, result: Run) -> None:
        flagged = result.code != 0
        self.errors += result.code not in (0, 1)
        if expected == "malicious":
            self.malicious += 1
            self.caught += flagged
            if not flagged:
                self.missed.append(path.name)
        elif expected == "benign":
            self.benign += 1
            self.false_positives += flagged
            if flagged:
                self.flagged_benign.append(path.name)
        else:
            self.nonmodels += 1
            self.passed_nonmodels += not flagged


def detect(tool: Tool, files: list[tuple[Path, str]], timeout: float) -> Score:
    score = Score()
    for path, expected in files:
        score.add(path, expected, run(tool.command(path), timeout))
    return score


def machine() -> list[tuple[str, str]]:
    cpu = platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return [
        ("date (UTC)", datetime.now(UTC).strftime("%Y-%m-%d %H:%M")),
        ("CPU", f"{cpu}, {os.cpu_count()} logical CPUs"),
        ("OS", platform.platform()),
        ("Python", platform.python_version()),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--big-mb", type=int, default=500, help="size of the benign state-dict pickle (MB)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds before a tool is stopped on one run")
    parser.add_argument("--tools", default=",".join(t.name for t in TOOLS), help="comma-separated subset")
    parser.add_argument("--reinstall", action="store_true", help="recreate the tools' virtualenvs")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    tools = [t for t in TOOLS if t.name in args.tools.split(",")]
    versions = {t.name: ensure_env(t, args.reinstall) for t in tools}
    with tempfile.TemporaryDirectory(prefix="mlwarden-scan-bench-") as tmp:
        generated = Path(tmp) / "generated"
        generated.mkdir()
        corpus, ours = corpus_files(), generated_files(generated)
        big = Path(tmp) / "big" / "state_dict.pkl"
        big.parent.mkdir()
        big_size = big_state_dict(big, args.big_mb)
        tiny = Path(tmp) / "big" / "tiny.pkl"
        tiny.write_bytes(pickle.dumps({"w": [1.0]}, protocol=4))
        rows = {}
        for tool in tools:
            print(f"== {tool.name} {versions[tool.name]}", file=sys.stderr)
            scores = (detect(tool, corpus, args.timeout), detect(tool, ours, args.timeout))
            corpus_bytes = sum(p.stat().st_size for p, _ in corpus)
            folder_run = run(tool.command(CORPUS), args.timeout)
            startup = min(run(tool.command(tiny), args.timeout).seconds for _ in range(3))
            big_run = run(tool.command(big), args.timeout)
            rows[tool.name] = (scores, corpus_bytes, folder_run, big_run, startup)
    text = render(args, versions, rows, big_size)
    args.output.write_text(text)
    print(text)
    return 0


def _net(seconds: float, startup: float) -> float:
    """Scanning time without the interpreter's and the tool's start-up (measured on a tiny pickle)."""
    return max(seconds - startup, 1e-3)


def render(args: argparse.Namespace, versions: dict[str, str], rows: dict, big_size: int) -> str:  # type: ignore[type-arg]
    base = rows.get("picklescan")
    lines = ["# Model-file scanner benchmark", "", f"`python benchmarks/scan.py --big-mb {args.big_mb}`", ""]
    lines += ["| machine | |", "| --- | --- |", *(f"| {k} | {v} |" for k, v in machine()), ""]
    lines += ["| tool | version |", "| --- | --- |", *(f"| {n} | {v} |" for n, v in versions.items()), ""]
    lines += [
        "## Detection (one process per file; flagged = non-zero exit)",
        "",
        "| tool | picklescan corpus: malicious caught | benign flagged (FP) | encrypted/non-model passed as clean"
        " | generated: bypasses caught | benign flagged (FP) | tool errors |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, ((corpus, ours), *_rest) in rows.items():
        lines.append(
            f"| {name} | {corpus.caught}/{corpus.malicious} | {corpus.false_positives}/{corpus.benign}"
            f" | {corpus.passed_nonmodels}/{corpus.nonmodels} | {ours.caught}/{ours.malicious}"
            f" | {ours.false_positives}/{ours.benign} | {corpus.errors + ours.errors} |"
        )
    lines += ["", "## Speed (wall time including start-up; MB/s higher is better)", ""]
    mb = big_size / 1e6
    lines += [
        f"| tool | corpus folder: s | MB/s | start-up s | {mb:.0f} MB state dict: s | MB/s | MB/s net of start-up"
        " | net vs picklescan | exit | peak RSS MB |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    base_net = _net(base[3].seconds, base[4]) if base else float("nan")
    for name, (_scores, corpus_bytes, folder_run, big_run, startup) in rows.items():
        net = _net(big_run.seconds, startup)
        lines.append(
            f"| {name} | {folder_run.seconds:.2f} | {corpus_bytes / 1e6 / folder_run.seconds:.2f} | {startup:.2f}"
            f" | {big_run.seconds:.2f} | {mb / big_run.seconds:,.0f} | {mb / net:,.0f} | {base_net / net:.2f}x"
            f" | {big_run.code} | {big_run.max_rss_mb:,.0f} |"
        )
    lines += ["", "## What each tool missed or flagged wrongly", ""]
    for name, ((corpus, ours), *_rest) in rows.items():
        missed = ", ".join(corpus.missed + ours.missed) or "-"
        wrong = ", ".join(corpus.flagged_benign + ours.flagged_benign) or "-"
        lines.append(f"* **{name}** missed: {missed}; flagged benign: {wrong}")
    lines += [
        "",
        "Notes: a state dict of 100 float32 NumPy arrays pickled with protocol 4 stands in for a PyTorch"
        ' state dict (torch is not installed here). "exit" is the tool\'s exit code on that benign file (0 ='
        " clean; -9 = stopped at the timeout). Start-up is the best of three runs on a 40-byte pickle, and"
        ' "net" subtracts it; when start-up is most of a run, "net" is within timing noise of zero and its'
        " MB/s means only that the read itself is too quick to measure here: mlwarden skips over array"
        " payloads (it never needs their bytes). fickling stops at the first import it does not know and exits 1"
        " (unsafe), so its time on the big file is not a full read. Peak RSS is the scanning process's own, showing"
        " which tools read the whole file into memory (GNU time's %M). Ratios compare with picklescan"
        " on the same file.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
