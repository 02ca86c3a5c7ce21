"""Validation and profiling: mlwarden's contract checks and column profile against Great Expectations,
pandera and whylogs, on the same Parquet file and the same contract.

Run ``python benchmarks/validation.py [--rows 5000000] [--repeat 3]`` (or ``make bench``). The table has
20 columns: 7 int64 and 7 float64 (2 of the ints and 6 of the floats with nulls, 0.1% to 30%) and 6
low-cardinality strings (5 to 50 values, one with nulls); it is generated with a fixed seed and written
once as one Parquet file (pyarrow's defaults). The contract, written once as mlwarden's contract document
and translated into each tool's terms, has 41 checks: the type of each of the 20 columns, not-null for the
11 columns declared without nulls, and 10 range or allowed-set checks. A few failing values are planted
in two columns (ages above the range; country codes outside the set, and nulls in that not-null column),
so 3 checks fail; every tool must report exactly the same checks failing, with the same failing-row
counts where the tool counts rows, or the script raises ``AssertionError``.

Each measurement is one fresh process (its peak RSS is its own): it reads the Parquet file into the
tool's in-memory form (timed apart: the read is excluded from every tool's work time, and shown), builds
the suite / schema / checks (timed apart), then does the work:

* **mlwarden** (the project's interpreter): ``pyarrow.parquet.ParquetFile(...).iter_batches(1 << 17)``,
  ``columns.infer_schema`` and ``columns.conform`` of each record batch (the read); then either the
  checks (``contract_from_json``, ``compile_checks``, ``CheckRunner.add`` of every batch, ``findings``)
  or the profile (``Profiler.add`` of every batch, ``result``). For reference, a third process streams
  from the file as the ingest gate does: read, conform, checks and profile per record batch, in one pass;
* **Great Expectations 1.x**: an ``ExpectationSuite`` of ``expect_column_values_to_be_of_type``,
  ``..._to_not_be_null``, ``..._to_be_between`` and ``..._to_be_in_set``, run through an ephemeral
  context, a pandas datasource and a whole-dataframe batch definition (``batch.validate(suite)``);
* **pandera**: a ``DataFrameSchema`` of ``Column(dtype, nullable=..., checks=[Check.in_range / isin])``,
  ``schema.validate(frame, lazy=True)``;
* **whylogs**: ``why.log(pandas=frame).view()``, its full default profile (run ``--whylogs-repeat``
  times, once by default: it takes over a minute at 5M rows);
* for reference, hand-written polars in mlwarden's interpreter: the 41 checks as one ``select``, and an
  exact profile (counts, nulls, min, max, mean, std, exact quantiles, distinct counts, top values).

The peers read with ``pd.read_parquet`` and make the integer columns that may hold nulls pandas'
nullable ``Int64`` (``read_parquet`` makes them float64). They run in the benchmark's own virtualenvs
(created on first use, ``--reinstall`` recreates them): ``benchmarks/.envs/validation`` (Great
Expectations, pandera, pandas 3, NumPy 2) and ``benchmarks/.envs/validation-whylogs`` (whylogs 1.6 calls
``np.unicode_``, removed in NumPy 2, and pandas 3 and pyarrow 26 need NumPy 2: so NumPy 1.26, pandas 2 and
pyarrow 25). Their side
is ``_validation_peers.py``; the measuring and machine helpers are ``_dvc_compare.py``'s.

Before the timed part the script runs every tool once on a small file (unmeasured: bytecode, page cache,
and a first agreement check), then waits (polling every 5 s, at most ``--quiet-timeout`` s) for the
1-minute load average to drop below ``--quiet-load``; repetitions rotate the tools' order, tables report
medians. Results go to benchmarks/results/validation.md (overwritten) and stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

T0 = time.perf_counter()

from _dvc_compare import (  # noqa: E402 - T0 first: a worker times its own imports
    CpuMeter,
    machine_info,
    python_env,
    run_measured,
    size,
    verdict,
    wait_until_quiet,
)
from _validation_peers import GX_TYPES, check_ids, rss_kb  # noqa: E402

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "validation.md"
ENVS = HERE / ".envs"
PEERS_SCRIPT = HERE / "_validation_peers.py"

# The peers' virtualenvs: what pip installs into each (a pin that does not install falls back to the
# nearest version that does, reported in the results).
PEER_ENVS = {
    "validation": ("great_expectations==1.24.*", "pandera==0.35.*", "pandas", "pyarrow"),
    "validation-whylogs": ("whylogs==1.6.*", "numpy<2", "pandas<3", "pyarrow<26"),
}
# whylogs 1.6 (the last release) calls np.unicode_, gone in NumPy 2; pandas 3 needs NumPy 2, and pyarrow 26
# refuses NumPy 1 when imported (its metadata does not say so): hence whylogs' own virtualenv.
PEER_DISTS = {
    "validation": ("great_expectations", "pandera", "pandas", "numpy", "pyarrow"),
    "validation-whylogs": ("whylogs", "pandas", "numpy", "pyarrow"),
}

# Targets from the issue.
TARGET_GX = 20.0  # contract checks at least 20x faster than Great Expectations
TARGET_PANDERA = 5.0  # ... and 5x faster than pandera
TARGET_WHYLOGS = 5.0  # the full profile at least 5x faster than whylogs
TARGET_MEMORY = 1.5  # peak memory at most 1.5x the data's Arrow size

BATCH_ROWS = 1 << 17
WARM_ROWS = 20_000
SEED = 20_261_126

# -- the data and the contract -------------------------------------------------------------------------------

COUNTRIES = ("US", "DE", "FR", "GB", "IN", "BR", "JP", "CN", "CA", "AU", "ES", "IT", "MX", "NL", "SE", "PL", "KR")
COUNTRIES += ("ZA", "NG", "AR")
DEVICES = ("mobile", "desktop", "tablet", "tv", "console")
CATEGORIES = tuple(f"category_{i:02d}" for i in range(50))
CHANNELS = ("web", "app", "email", "search", "social", "referral", "direct", "partner")
PLANS = ("free", "basic", "plus", "pro", "team", "enterprise")
SEGMENTS = tuple(f"segment_{c}" for c in "abcdefghijkl")


@dataclass(frozen=True)
class Spec:
    name: str
    type: str  # int, float or string: the contract's type names
    nulls: float  # share of nulls generated (the contract declares the column nullable iff > 0)
    rule: dict[str, Any]  # min/max or allowed


COLUMNS = (
    Spec("user_id", "int", 0.0, {}),
    Spec("age", "int", 0.0, {"min": 18, "max": 90}),
    Spec("quantity", "int", 0.0, {"min": 1, "max": 20}),
    Spec("day_of_year", "int", 0.0, {"min": 1, "max": 366}),
    Spec("session_seconds", "int", 0.0, {}),
    Spec("store_id", "int", 0.01, {}),
    Spec("clicks", "int", 0.05, {}),
    Spec("price", "float", 0.005, {}),
    Spec("discount", "float", 0.10, {"min": 0.0, "max": 0.5}),
    Spec("score", "float", 0.02, {}),
    Spec("latitude", "float", 0.0, {"min": -90.0, "max": 90.0}),
    Spec("longitude", "float", 0.001, {"min": -180.0, "max": 180.0}),
    Spec("rating", "float", 0.30, {"min": 1.0, "max": 5.0}),
    Spec("income", "float", 0.15, {}),
    Spec("country", "string", 0.0, {"allowed": list(COUNTRIES)}),
    Spec("device", "string", 0.0, {"allowed": list(DEVICES)}),
    Spec("category", "string", 0.0, {}),
    Spec("channel", "string", 0.0, {"allowed": list(CHANNELS)}),
    Spec("plan", "string", 0.0, {}),
    Spec("segment", "string", 0.08, {}),
)
# Planted failures: rows per failing check (the data's only violations of the contract).
PLANTED = {"age.range": 7, "country.set": 5, "country.not_null": 3}
PLANTED_AGE, PLANTED_COUNTRY = 150, "XX"


def contract_document() -> dict[str, Any]:
    """The contract as mlwarden's document (what ``contract_from_json`` reads); the peers translate it."""
    columns = {c.name: {"type": c.type, "nullable": c.nulls > 0, **c.rule} for c in COLUMNS}
    return {"version": 1, "columns": columns}


def make_table(rows: int, seed: int) -> Any:
    """``rows`` rows of the 20 columns, with the planted failures; a ``pyarrow.Table``."""
    import numpy as np
    import pyarrow as pa

    rng = np.random.default_rng(seed)

    def mask(share: float) -> Any:
        return rng.random(rows) < share if share > 0 else None

    def pick(values: tuple[str, ...], skew: float = 0.0) -> Any:
        weights = 1.0 / np.arange(1, len(values) + 1) ** skew
        return rng.choice(len(values), rows, p=weights / weights.sum())

    def strings(values: tuple[str, ...], index: Any, nulls: Any = None) -> Any:
        return pa.array(values).take(pa.array(index.astype(np.int32), mask=nulls))

    age = rng.integers(18, 91, rows, dtype=np.int64)
    age[rng.choice(rows, PLANTED["age.range"], replace=False)] = PLANTED_AGE
    country = pick(COUNTRIES, 1.1)
    planted = rng.choice(rows, PLANTED["country.set"] + PLANTED["country.not_null"], replace=False)
    country[planted[: PLANTED["country.set"]]] = len(COUNTRIES)  # the extra value below: outside the set
    country_nulls = np.zeros(rows, dtype=bool)
    country_nulls[planted[PLANTED["country.set"] :]] = True
    nulls = {c.name: mask(c.nulls) for c in COLUMNS}
    numbers = {
        "user_id": rng.integers(1, 50_000_000, rows, dtype=np.int64),
        "age": age,
        "quantity": rng.integers(1, 21, rows, dtype=np.int64),
        "day_of_year": rng.integers(1, 367, rows, dtype=np.int64),
        "session_seconds": rng.geometric(1 / 300, rows).astype(np.int64),
        "store_id": rng.integers(1, 5_001, rows, dtype=np.int64),
        "clicks": rng.poisson(3.0, rows).astype(np.int64),
        "price": np.round(rng.lognormal(3.0, 1.0, rows), 2),
        "discount": np.round(rng.uniform(0.0, 0.5, rows), 3),
        "score": rng.normal(0.0, 1.0, rows),
        "latitude": rng.uniform(-60.0, 70.0, rows),
        "longitude": rng.uniform(-180.0, 180.0, rows),
        "rating": np.round(rng.uniform(1.0, 5.0, rows), 1),
        "income": np.round(rng.lognormal(10.5, 0.6, rows), 0),
    }
    arrays = {name: pa.array(values, mask=nulls[name]) for name, values in numbers.items()}
    arrays["country"] = strings((*COUNTRIES, PLANTED_COUNTRY), country, country_nulls)
    arrays["device"] = strings(DEVICES, pick(DEVICES, 0.8))
    arrays["category"] = strings(CATEGORIES, pick(CATEGORIES, 0.5))
    arrays["channel"] = strings(CHANNELS, pick(CHANNELS, 0.7))
    arrays["plan"] = strings(PLANS, pick(PLANS, 1.2))
    arrays["segment"] = strings(SEGMENTS, pick(SEGMENTS), nulls["segment"])
    return pa.table({c.name: arrays[c.name] for c in COLUMNS})


@dataclass(frozen=True)
class Data:
    path: Path
    rows: int
    arrow_bytes: int  # table.nbytes of the generated table (Arrow's in-memory size)
    file_bytes: int
    nulls: dict[str, int]


def write_data(path: Path, rows: int, seed: int) -> Data:
    import pyarrow.parquet as pq

    table = make_table(rows, seed)
    pq.write_table(table, path)
    nulls = {name: table.column(name).null_count for name in table.column_names}
    return Data(path, rows, table.nbytes, path.stat().st_size, nulls)


def expected_outcomes(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every check passes but the planted ones, which fail on exactly the planted rows."""
    return {
        check: {
            "passed": check not in PLANTED,
            "failed_rows": None if check.endswith(".type") else PLANTED.get(check, 0),
        }
        for check in check_ids(doc)
    }


# -- the peers' virtualenvs ----------------------------------------------------------------------------------


def ensure_env(name: str, reinstall: bool) -> tuple[str, str]:
    """The peer virtualenv's python (created when missing, or when its package list changed) and a note
    when a pinned version would not install and the nearest one that did was used instead."""
    where = ENVS / name
    python, stamp = where / "bin" / "python", where / ".installed"
    packages = PEER_ENVS[name]
    wanted = "\n".join(packages) + "\n"
    if reinstall or not stamp.is_file() or stamp.read_text().split("# fallback")[0] != wanted:
        shutil.rmtree(where, ignore_errors=True)
        print(f"installing {' '.join(packages)} into {where} (once) ...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(where)], check=True)
        pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        subprocess.run([*pip, "--upgrade", "pip"], check=True, timeout=1800)
        note = ""
        if subprocess.run([*pip, *packages], check=False, timeout=1800).returncode != 0:
            loose = [loosen(p) for p in packages]
            note = f"# fallback: the pins did not install; installed {' '.join(loose)}\n"
            print(note.strip(), file=sys.stderr)
            subprocess.run([*pip, *loose], check=True, timeout=1800)
        stamp.write_text(wanted + note)
    fallback = stamp.read_text().partition("# fallback: ")[2].strip()
    return str(python), fallback


def loosen(requirement: str) -> str:
    """``great_expectations==1.24.*`` -> ``great_expectations<2``: the newest of the same major version."""
    name, sep, version = requirement.partition("==")
    return f"{name}<{int(version.split('.')[0]) + 1}" if sep else requirement


def dist_versions(python: str, dists: tuple[str, ...]) -> dict[str, str]:
    code = "import importlib.metadata as m, json, sys; print(json.dumps({d: m.version(d) for d in sys.argv[1:]}))"
    done = subprocess.run([python, "-c", code, *dists], capture_output=True, text=True, check=True, timeout=120)
    versions: dict[str, str] = json.loads(done.stdout)
    return versions


# -- mlwarden's side and the polars references (workers: `validation.py --worker MODE SPEC REPORT`) -------------


KINDS = {"type": "type", "present": "type", "not_null": "not_null", "min": "range", "max": "range", "allowed": "set"}


def mlwarden_outcomes(findings: list[Any], doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """mlwarden's findings by the benchmark's check names: a range is mlwarden's ``min`` and ``max``
    checks together (their failing rows added: a value fails one or the other); a type check passes
    when ``compile_checks`` reports no ``.type`` (or ``.present``) finding for the column."""
    from mlwarden.quality.interface import Outcome

    failed: dict[str, int] = {}
    for f in findings:
        if f.outcome is Outcome.ERROR:
            raise RuntimeError(f"mlwarden could not check {f.name}: {f.message}")
        column, _, kind = f.name.rpartition(".")
        if kind not in KINDS:
            raise RuntimeError(f"an unexpected finding: {f.name}: {f.message}")
        if f.outcome is Outcome.FAILED:
            key = f"{column}.{KINDS[kind]}"
            failed[key] = failed.get(key, 0) + f.failed_rows
    outcomes = {}
    for check in check_ids(doc):
        rows = None if check.endswith(".type") else failed.get(check, 0)
        outcomes[check] = {"passed": check not in failed, "failed_rows": rows}
    return outcomes


def read_batches(source: Any, schema: Any) -> list[Any]:
    """A ``ParquetFile`` as record batches conformed to ``schema``, all in memory."""
    from mlwarden.data.columns import conform

    return [conform(batch, schema) for batch in source.iter_batches(batch_size=BATCH_ROWS)]


def conformed_bytes(path: Path) -> int:
    """Arrow bytes of the file as mlwarden holds it: record batches conformed to the inferred schema."""
    import pyarrow.parquet as pq

    from mlwarden.data.columns import infer_schema

    source = pq.ParquetFile(path)
    return sum(b.nbytes for b in read_batches(source, infer_schema(source.schema_arrow)))


def profile_counts(profile: Any) -> dict[str, dict[str, int]]:
    return {c.name: {"count": c.count, "nulls": c.nulls} for c in profile.columns}


def worker(mode: str, spec: dict[str, Any]) -> dict[str, Any]:
    """One measured process: imports, read, setup and work, each timed; what the tool found. Each mode
    imports only what it uses (imports are part of its memory)."""
    if mode.startswith("polars"):
        return polars_worker(mode, spec)
    if mode not in ("mlwarden-checks", "mlwarden-profile", "mlwarden-stream"):
        raise SystemExit(f"unknown mode {mode!r}")
    doc = spec["contract"]
    import pyarrow.parquet as pq

    from mlwarden.data.columns import conform, infer_schema

    checking, profiling = mode != "mlwarden-profile", mode != "mlwarden-checks"
    if checking:
        from mlwarden.quality.checks import CheckRunner, compile_checks
        from mlwarden.quality.contract import contract_from_json
    if profiling:
        from mlwarden.quality.profile import Profiler

    report: dict[str, Any] = {"import": time.perf_counter() - T0, "rss_import_kb": rss_kb()}
    t0 = time.perf_counter()
    source = pq.ParquetFile(spec["path"])
    schema = infer_schema(source.schema_arrow)
    batches = None if mode == "mlwarden-stream" else read_batches(source, schema)
    report |= {"read": time.perf_counter() - t0, "rss_read_kb": rss_kb()}
    t0 = time.perf_counter()
    if checking:
        contract = contract_from_json(doc)
        checks, findings = compile_checks(contract, schema)
        runner = CheckRunner(checks, contract)
    if profiling:
        profiler = Profiler(schema)
    report["setup"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    if batches is None:  # one pass from the file
        batches = (conform(batch, schema) for batch in source.iter_batches(batch_size=BATCH_ROWS))
    for batch in batches:
        if checking:
            runner.add(batch)
        if profiling:
            profiler.add(batch)
    if checking:
        findings += runner.findings()
        report |= {"outcomes": mlwarden_outcomes(findings, doc), "rows": runner.rows}
    if profiling:
        profile = profiler.result()
        report |= {"profile": profile_counts(profile), "rows": profile.rows}
    report["work"] = time.perf_counter() - t0
    return report


POLARS_TYPES = {"int": "Int64", "float": "Float64", "string": "String"}
QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)


def polars_worker(mode: str, spec: dict[str, Any]) -> dict[str, Any]:
    """Hand-written polars, for reference: the checks as one ``select`` of failure counts, or an exact
    profile (every aggregate computed exactly, quantiles from a full sort)."""
    import polars as pl

    doc = spec["contract"]
    report: dict[str, Any] = {"import": time.perf_counter() - T0, "rss_import_kb": rss_kb()}
    t0 = time.perf_counter()
    frame = pl.read_parquet(spec["path"])
    report |= {"read": time.perf_counter() - t0, "rss_read_kb": rss_kb(), "setup": 0.0, "rows": frame.height}
    t0 = time.perf_counter()
    if mode == "polars-checks":
        exprs = []
        for name, rule in doc["columns"].items():
            column = pl.col(name)
            if not rule["nullable"]:
                exprs.append(column.is_null().sum().alias(f"{name}.not_null"))
            if "min" in rule or "max" in rule:
                exprs.append(((column < rule["min"]) | (column > rule["max"])).sum().alias(f"{name}.range"))
            if "allowed" in rule:
                outside = column.is_not_null() & ~column.is_in(rule["allowed"])
                exprs.append(outside.sum().alias(f"{name}.set"))
        counts = frame.select(exprs).row(0, named=True)
        outcomes = {}
        for check in check_ids(doc):
            name, _, kind = check.rpartition(".")
            if kind == "type":
                ok = str(frame.schema[name]) == POLARS_TYPES[doc["columns"][name]["type"]]
                outcomes[check] = {"passed": ok, "failed_rows": None}
            else:
                outcomes[check] = {"passed": counts[check] == 0, "failed_rows": int(counts[check])}
        report["outcomes"] = outcomes
    elif mode == "polars-profile":
        aggs = []
        for name, rule in doc["columns"].items():
            column = pl.col(name)
            aggs += [column.null_count().alias(f"{name}|nulls"), column.n_unique().alias(f"{name}|distinct")]
            aggs += [column.min().alias(f"{name}|min"), column.max().alias(f"{name}|max")]
            if rule["type"] == "string":
                length = column.str.len_bytes()
                aggs += [length.min().alias(f"{name}|len_min"), length.max().alias(f"{name}|len_max")]
                aggs += [length.sum().alias(f"{name}|len_sum")]
            else:
                aggs += [column.mean().alias(f"{name}|mean"), column.std().alias(f"{name}|std")]
                aggs += [column.quantile(q, "nearest").alias(f"{name}|q{q}") for q in QUANTILES]
        stats = frame.select(aggs).row(0, named=True)
        top = {name: frame.get_column(name).value_counts(sort=True).head(10) for name in frame.columns}
        profile = {n: {"count": frame.height, "nulls": int(stats[f"{n}|nulls"])} for n in frame.columns}
        report |= {"profile": profile, "aggregates": len(stats) + sum(t.height for t in top.values())}
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    report["work"] = time.perf_counter() - t0
    return report


# -- running the tools ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tool:
    key: str  # the worker's mode
    label: str
    task: str  # checks, profile or both
    python: str
    script: Path
    env: dict[str, str]
    repeat: int


@dataclass(frozen=True)
class Run:
    wall: float  # the whole process, measured around it
    maxrss_kb: int
    report: dict[str, Any]


def run_tool(tool: Tool, spec: Path, scratch: Path) -> Run:
    out = scratch / f"{tool.key}.json"
    worker_flag = ["--worker"] if tool.script == Path(__file__).resolve() else []
    cmd = [tool.python, str(tool.script), *worker_flag, tool.key, str(spec), str(out)]
    measured = run_measured(cmd, env=tool.env, cwd=scratch, scratch=scratch)
    report: dict[str, Any] = json.loads(out.read_text())
    out.unlink()
    return Run(measured.seconds, measured.maxrss_kb, report)


def make_tools(python_gx: str, python_why: str, scratch: Path, repeat: int, whylogs_repeat: int) -> list[Tool]:
    mine = python_env(dict(os.environ), scratch)  # bytecode of the editable install cached in scratch
    # The peers read the .pyc files pip compiled into their site-packages: no PYTHONPYCACHEPREFIX.
    peers = {k: v for k, v in os.environ.items() if k not in ("PYTHONPYCACHEPREFIX", "PYTHONDONTWRITEBYTECODE")}
    peers |= {"GX_ANALYTICS_ENABLED": "false", "WHYLOGS_NO_ANALYTICS": "True", "TQDM_DISABLE": "1"}
    this = Path(__file__).resolve()
    return [
        Tool("mlwarden-checks", "mlwarden (`CheckRunner`)", "checks", sys.executable, this, mine, repeat),
        Tool("gx", "Great Expectations", "checks", python_gx, PEERS_SCRIPT, peers, repeat),
        Tool("pandera", "pandera", "checks", python_gx, PEERS_SCRIPT, peers, repeat),
        Tool("polars-checks", "for reference: hand-written polars", "checks", sys.executable, this, mine, repeat),
        Tool("mlwarden-profile", "mlwarden (`Profiler`)", "profile", sys.executable, this, mine, repeat),
        Tool("whylogs", "whylogs", "profile", python_why, PEERS_SCRIPT, peers, whylogs_repeat),
        Tool("polars-profile", "for reference: exact polars aggregates", "profile", sys.executable, this, mine, repeat),
        Tool("mlwarden-stream", "mlwarden, one pass from the file", "both", sys.executable, this, mine, repeat),
    ]


def agreement(runs: dict[str, list[Run]], expected: dict[str, dict[str, Any]], data: Data) -> list[str]:
    """What disagrees with the planted truth: every tool's checks, and the profiles' null counts."""
    problems = []
    truth_nulls = {name: {"count": data.rows, "nulls": n} for name, n in data.nulls.items()}
    for key, tool_runs in runs.items():
        for i, run in enumerate(tool_runs):
            found = run.report.get("outcomes")
            if found is not None:
                if set(found) != set(expected):
                    problems.append(f"{key} run {i + 1}: checks {sorted(set(found) ^ set(expected))} differ")
                for check, want in expected.items():
                    got = found.get(check)
                    if got is None or got["passed"] != want["passed"]:
                        problems.append(f"{key} run {i + 1}: {check} {got} but expected {want}")
                    elif got["failed_rows"] is not None and got["failed_rows"] != want["failed_rows"]:
                        problems.append(f"{key} run {i + 1}: {check} {got} but expected {want}")
            profile = run.report.get("profile")
            if profile is not None and key != "whylogs":  # whylogs: compared in the notes (its own semantics)
                counted = {name: {"count": p["count"], "nulls": p["nulls"]} for name, p in profile.items()}
                if counted != truth_nulls:
                    problems.append(f"{key} run {i + 1}: profile counts {counted} != {truth_nulls}")
    return problems


def whylogs_counts(runs: list[Run], data: Data) -> str:
    if not runs:
        return "not run"
    profile = runs[0].report["profile"]
    wrong = [
        f"{name}: {p['count']:,} values / {p['nulls']:,} nulls"
        for name, p in profile.items()
        if p["count"] != data.rows or p["nulls"] != data.nulls.get(name)
    ]
    metrics = sum(p["metrics"] for p in profile.values())
    if wrong:
        return f"differ from the data in {len(wrong)} column(s): " + "; ".join(wrong) + f" ({metrics} metrics)"
    return f"match the data's in all {len(profile)} columns ({metrics} summary metrics in its profile view)"


# -- reporting -------------------------------------------------------------------------------------------------


def med(runs: list[Run], key: str) -> float:
    if key == "wall":
        return statistics.median(r.wall for r in runs)
    if key == "maxrss":
        return statistics.median(r.maxrss_kb * 1024 for r in runs)
    if key == "read+work":
        return statistics.median(r.report["read"] + r.report["work"] for r in runs)
    return statistics.median(float(r.report[key]) for r in runs)


def mib(n: float) -> str:
    return f"{n / 2**20:,.0f} MiB"


def render(
    args: argparse.Namespace, data: Data, tools: list[Tool], runs: dict[str, list[Run]], ctx: dict[str, Any]
) -> str:
    doc = ctx["doc"]
    ids = check_ids(doc)
    n_types = sum(c.endswith(".type") for c in ids)
    n_nulls = sum(c.endswith(".not_null") for c in ids)
    n_ranges = sum(c.endswith(".range") for c in ids)
    n_sets = sum(c.endswith(".set") for c in ids)
    by_key = {t.key: t for t in tools}
    arrow = data.arrow_bytes

    def work(key: str) -> float:
        return med(runs[key], "work")

    def both(key: str) -> float:
        return med(runs[key], "read+work")

    def runs_text(key: str, what: str = "work") -> str:
        return ", ".join(f"{r.report[what]:.2f}" for r in runs[key])

    def row(key: str, base: str) -> str:
        r = runs[key]
        w, b = work(key), both(key)
        ratio_w = "1.00x" if key == base else f"{w / work(base):.1f}x"
        ratio_b = "1.00x" if key == base else f"{b / both(base):.1f}x"
        return (
            f"| {by_key[key].label} | {w:.3f} s | {ratio_w} | {med(r, 'setup'):.3f} s | {med(r, 'read'):.2f} s"
            f" | {b:.2f} s | {ratio_b} | {med(r, 'wall'):.2f} s | {mib(med(r, 'maxrss'))}"
            f" | {med(r, 'maxrss') / arrow:.2f}x | {runs_text(key)}; {runs_text(key, 'read')} |"
        )

    header = (
        "| tool | work (median) | tool / mlwarden | setup | read | read + work | tool / mlwarden | process wall"
        " | peak RSS | RSS / Arrow size | runs, s (work; read) |\n"
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
    )
    gx_ratio, pandera_ratio = work("gx") / work("mlwarden-checks"), work("pandera") / work("mlwarden-checks")
    gx_both, pandera_both = both("gx") / both("mlwarden-checks"), both("pandera") / both("mlwarden-checks")
    have_why = bool(runs.get("whylogs"))
    why_ratio = work("whylogs") / work("mlwarden-profile") if have_why else float("nan")
    why_both = both("whylogs") / both("mlwarden-profile") if have_why else float("nan")
    rss_checks, rss_profile = med(runs["mlwarden-checks"], "maxrss"), med(runs["mlwarden-profile"], "maxrss")
    rss_mine = max(rss_checks, rss_profile)
    rss_stream = med(runs["mlwarden-stream"], "maxrss")

    def target(label: str, wanted: str, measured: str, ok: bool) -> str:
        return f"| {label} | {wanted} | {measured} | {verdict(ok)} |"

    def times(a: str, b: str, f: Callable[[str], float]) -> str:
        return f"({f(a):.3f} s vs {f(b):.3f} s)"

    command = f"python benchmarks/validation.py --rows {data.rows} --repeat {args.repeat}"
    if args.whylogs_repeat != 1:
        command += f" --whylogs-repeat {args.whylogs_repeat}"
    contract_lines = []
    for c in COLUMNS:
        rule = doc["columns"][c.name]
        parts = [c.type, "nullable" if rule["nullable"] else "not null"]
        if "min" in rule:
            parts.append(f"in [{rule['min']}, {rule['max']}]")
        if "allowed" in rule:
            parts.append(f"in a set of {len(rule['allowed'])}")
        nulls = data.nulls[c.name]
        null_share = f"{nulls / data.rows:.1%} nulls" if nulls >= data.rows / 1000 else f"{nulls} nulls"
        null_share = null_share if nulls else "no nulls"
        contract_lines.append(f"`{c.name}` ({', '.join(parts)}; data: {null_share})")
    one_pass = runs["mlwarden-stream"]
    lines = [
        "# Validation and profiling benchmark",
        "",
        f"`{command}` (wall time {ctx['wall']:.0f} s). The data: {data.rows:,} rows x {len(COLUMNS)} columns"
        f" (7 int64, 7 float64, 6 strings of 5 to 50 values), generated with a fixed seed, one Parquet file"
        f" of {size(data.file_bytes)} (pyarrow defaults); its Arrow size (`table.nbytes`) is"
        f" **{size(arrow)}** ({mib(arrow)}). Each number is one fresh process per run: mlwarden and the polars"
        f" references in the project's interpreter, the peers in their own virtualenvs. Medians of {args.repeat}"
        f" run(s) (whylogs: {args.whylogs_repeat}).",
        "",
        "| machine | |",
        "| --- | --- |",
        *(f"| {key} | {value} |" for key, value in ctx["machine"]),
        "",
        f"## The contract: {len(ids)} checks",
        "",
        f"{n_types} type checks (one per column), {n_nulls} not-null checks (the columns declared without"
        f" nulls), {n_ranges} range checks (min and max) and {n_sets} allowed-set checks, written once as"
        " mlwarden's contract document and translated into a Great Expectations suite"
        f" ({len(ids)} expectations) and a pandera schema ({len(COLUMNS)} columns: dtype, `nullable`,"
        f" {n_ranges + n_sets} checks). Columns: " + "; ".join(contract_lines) + ".",
        "",
        "Planted in the data so that checks fail: "
        + ", ".join(f"`{check}` ({rows} rows)" for check, rows in PLANTED.items())
        + f" (ages of {PLANTED_AGE}; the code `{PLANTED_COUNTRY}`; nulls in `country`). Every tool reported"
        " exactly these 3 checks failing, on exactly these rows where it counts rows (Great Expectations'"
        " type check and pandera's dtype check count none), in every run: checked by the script, which"
        " raises `AssertionError` otherwise. The profiles' per-column value and null counts were checked"
        " against the data too (mlwarden's and the polars reference's exactly; whylogs': "
        + ctx["whylogs_counts"]
        + ").",
        "",
        "## Targets (from the issue)",
        "",
        '"Work" is what each tool does once the data is in memory in its own form (reading the Parquet file'
        " is excluded for every tool, and so is building the suite / schema / checks, shown apart as"
        ' "setup"); the rows "read included" add each tool\'s own read of the file (mlwarden: Arrow record'
        " batches, conformed; the peers: `pd.read_parquet`). Peak memory: the max RSS of mlwarden's"
        " checks process and of its profile process (each holds the whole file as Arrow batches).",
        "",
        "| target | wanted | measured | result |",
        "| --- | --- | --- | --- |",
        target(
            f"contract checks ({len(ids)}) vs Great Expectations",
            f">= {TARGET_GX:.0f}x faster",
            f"{gx_ratio:.1f}x {times('gx', 'mlwarden-checks', work)}",
            gx_ratio >= TARGET_GX,
        ),
        target(
            f"contract checks ({len(ids)}) vs pandera",
            f">= {TARGET_PANDERA:.0f}x faster",
            f"{pandera_ratio:.1f}x {times('pandera', 'mlwarden-checks', work)}",
            pandera_ratio >= TARGET_PANDERA,
        ),
        target(
            "full profile vs whylogs",
            f">= {TARGET_WHYLOGS:.0f}x faster",
            f"{why_ratio:.1f}x {times('whylogs', 'mlwarden-profile', work)}" if have_why else "not run",
            have_why and why_ratio >= TARGET_WHYLOGS,
        ),
        target(
            "peak memory (mlwarden's checks and profile processes, the larger)",
            f"<= {TARGET_MEMORY:.1f}x the Arrow size ({mib(arrow * TARGET_MEMORY)})",
            f"{rss_mine / arrow:.2f}x ({mib(rss_mine)}; checks {mib(rss_checks)}, profile {mib(rss_profile)})",
            rss_mine <= TARGET_MEMORY * arrow,
        ),
        target(
            "contract checks vs Great Expectations, read included",
            f">= {TARGET_GX:.0f}x faster",
            f"{gx_both:.1f}x {times('gx', 'mlwarden-checks', both)}",
            gx_both >= TARGET_GX,
        ),
        target(
            "contract checks vs pandera, read included",
            f">= {TARGET_PANDERA:.0f}x faster",
            f"{pandera_both:.1f}x {times('pandera', 'mlwarden-checks', both)}",
            pandera_both >= TARGET_PANDERA,
        ),
        target(
            "full profile vs whylogs, read included",
            f">= {TARGET_WHYLOGS:.0f}x faster",
            f"{why_both:.1f}x {times('whylogs', 'mlwarden-profile', both)}" if have_why else "not run",
            have_why and why_both >= TARGET_WHYLOGS,
        ),
        target(
            "peak memory, one pass streaming from the file (read + checks + profile per record batch)",
            f"<= {TARGET_MEMORY:.1f}x the Arrow size",
            f"{rss_stream / arrow:.2f}x ({mib(rss_stream)})",
            rss_stream <= TARGET_MEMORY * arrow,
        ),
        "",
        f"## Contract checks ({len(ids)}): wall time and peak memory",
        "",
        '"tool / mlwarden": how many times longer than mlwarden the tool took (the first for the work, the'
        ' second with the read). "process wall": the whole process (interpreter start-up, imports, read,'
        " setup, work, exit). The reads vary more from run to run than the work does (compare the runs): on"
        " this virtual machine, first touching freshly allocated memory costs more in some runs than in"
        ' others, and reading allocates the most; so the "read + work" ratios are the noisier ones.',
        "",
        header,
        *(row(key, "mlwarden-checks") for key in ("mlwarden-checks", "gx", "pandera", "polars-checks")),
        "",
        "## Full profile: wall time and peak memory",
        "",
        header,
        *(row(key, "mlwarden-profile") for key in ("mlwarden-profile", "whylogs", "polars-profile") if runs.get(key)),
        "",
        "## mlwarden in one pass from the file",
        "",
        "As the ingest gate runs: Parquet record batches of"
        f" {BATCH_ROWS:,} rows read, conformed, checked and profiled one at a time; nothing else is kept.",
        "",
        "| measure | median | runs |",
        "| --- | ---: | --- |",
        f"| read + conform + {len(ids)} checks + profile | {med(one_pass, 'work'):.2f} s"
        f" | {runs_text('mlwarden-stream')} |",
        f"| the separate in-memory runs, for comparison: read + checks + read + profile"
        f" | {both('mlwarden-checks') + both('mlwarden-profile'):.2f} s | |",
        f"| process wall | {med(one_pass, 'wall'):.2f} s | |",
        f"| peak RSS | {mib(rss_stream)} ({rss_stream / arrow:.2f}x the Arrow size) | |",
        "",
        "## Memory at each stage (median max RSS so far, as each process reports it)",
        "",
        "| tool | after imports | after reading | peak (whole process) |",
        "| --- | ---: | ---: | ---: |",
        *(
            f"| {t.label} ({t.task}) | {mib(med(runs[t.key], 'rss_import_kb') * 1024)}"
            f" | {mib(med(runs[t.key], 'rss_read_kb') * 1024)} | {mib(med(runs[t.key], 'maxrss'))} |"
            for t in tools
            if runs.get(t.key)
        ),
        "",
        f"Reading the file into memory is what costs the memory: mlwarden's record batches, conformed, are"
        f" {size(ctx['conformed_bytes'])} of Arrow buffers (strings become `large_string`: 8-byte offsets), yet"
        f" the process's RSS after reading is {mib(med(runs['mlwarden-checks'], 'rss_read_kb') * 1024)}; the"
        f" checks then add {mib(rss_checks - med(runs['mlwarden-checks'], 'rss_read_kb') * 1024)} and the profile"
        f" {mib(rss_profile - med(runs['mlwarden-profile'], 'rss_read_kb') * 1024)}. The one-pass run holds one"
        " record batch (and the Parquet reader's current row group) at a time.",
        "",
        "## What each tool does",
        "",
        f"* **mlwarden**: reads the file with `pyarrow.parquet.ParquetFile.iter_batches({BATCH_ROWS:,})`,"
        " infers the schema (`columns.infer_schema`) and conforms each record batch (`columns.conform`:"
        " canonical types, strings become `large_string`): the read. Checks: `contract_from_json`,"
        " `compile_checks` (types and column presence against the schema, then one bound polars check per"
        " rule: not_null, min, max, allowed; a range is two checks, min and max, counted here as one) and"
        " `CheckRunner`, which evaluates all the checks of a record batch as one polars `select` of failure"
        " counts and keeps a few failing rows per check; `findings()`. Profile: `Profiler.add` per record"
        " batch (counts, nulls, NaN and infinities, min/max, mean/variance, a KLL quantile sketch for"
        " numbers, HyperLogLog registers, Misra-Gries frequent items, string lengths; strings in worker"
        " threads), then `result()`.",
        '* **Great Expectations**: `gx.get_context(mode="ephemeral")`, a pandas datasource, a dataframe asset'
        " and a whole-dataframe batch definition, an `ExpectationSuite` of"
        f" {len(ids)} expectations (setup); the work is `get_batch(dataframe=...)` + `validate(suite)` with the"
        " default result format (counts and a partial list of unexpected values). Its type expectation names"
        f" the pandas dtype as GE reports it ({', '.join(f'{k}: `{v}`' for k, v in ctx['gx_types'].items())};"
        " for pandas' nullable `Int64` GE reports `int64`).",
        "* **pandera**: a `DataFrameSchema` of one `Column` per column (dtype `int64`, `Int64` for the integer"
        " columns that may hold nulls, `float64` or `str`; `nullable`; `Check.in_range` or `Check.isin`),"
        " `validate(frame, lazy=True)`, which collects every failure case into a frame (`SchemaErrors`).",
        "* **whylogs**: `why.log(pandas=frame).view()`: its default profile of every column (counts, types,"
        " nulls, a KLL distribution and HyperLogLog cardinality for numbers, frequent items, and string"
        f" metrics), single-threaded. Run {args.whylogs_repeat} time(s) only: it is the slowest by far.",
        "* **polars (reference)**: `pl.read_parquet`; the checks as one `select` of failure counts (types from"
        " the frame's schema); the exact profile as one `select` (null count, exact distinct count, min, max,"
        f" mean, std, exact quantiles {', '.join(map(str, QUANTILES))} for numbers; byte lengths for strings)"
        " plus `value_counts` of every column. It keeps no failing rows, no sketches, nothing mergeable: a"
        " floor for the work, not a peer.",
        f"* Reading: the peers call `pd.read_parquet` (pandas {ctx['pandas_gx']} for GE and pandera, pandas"
        f" {ctx['pandas_why']} for whylogs; strings as pandas' `str` dtype in pandas 3, `object` in pandas 2),"
        " then make the integer columns that may hold nulls pandas' `Int64`. The read is timed apart in every"
        ' tool and excluded from "work"; the "read + work" columns include it.',
        f"* The issue's reference measurements (a 2-core machine, 5M x 20, the same 41 checks): Great Expectations"
        " 1.24 about 4.1 s with pandas 3 (16 s with pandas 2), pandera 0.35 about 1.7 s, a hand-written polars"
        " pass about 0.14 s; whylogs 1.6 about 73 s, an exact polars profile about 9 s; peak memory of the"
        f" pandas-based tools 2.4-3.0 GB. Here ({data.rows:,} rows): {work('gx'):.1f} s, {work('pandera'):.1f} s,"
        f" {work('polars-checks'):.2f} s; {ctx['whylogs_work']}, {work('polars-profile'):.1f} s; peaks"
        f" {ctx['peer_peaks']}.",
        *ctx["notes"],
        "* The machine: the timed part starts once the 1-minute load average is below"
        f" {args.quiet_load} (or after {args.quiet_timeout:.0f} s of waiting); the CPU time other processes"
        f" used meanwhile is in the machine table. {os.cpu_count()} CPUs: polars, Arrow and mlwarden's profiler"
        " use both; pandas, GE, pandera and whylogs mostly one.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:
        _, mode, spec_path, report_path = argv
        report = worker(mode, json.loads(Path(spec_path).read_text()))
        Path(report_path).write_text(json.dumps(report))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5_000_000, help="rows of the table (default 5000000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each tool; medians are reported (default 3)")
    parser.add_argument("--whylogs-repeat", type=int, default=1, help="runs of whylogs (default 1: it is slow)")
    parser.add_argument("--dir", type=Path, default=None, help="where to put the data (default: a tmpdir)")
    parser.add_argument("--reinstall", action="store_true", help="recreate the peers' virtualenvs")
    parser.add_argument("--output", type=Path, default=RESULTS, help="Markdown results file (overwritten)")
    parser.add_argument("--quiet-load", type=float, default=0.6, help="start when the 1-min load is below this")
    parser.add_argument("--quiet-timeout", type=float, default=600, help="wait at most this long for it (s)")
    args = parser.parse_args(argv)
    if args.rows < 1000 or args.repeat < 1 or args.whylogs_repeat < 0:
        parser.error("--rows must be at least 1000, --repeat positive")

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # `kill PID`: remove the temporary folder too
    wall0 = time.perf_counter()
    python_gx, fallback_gx = ensure_env("validation", args.reinstall)
    python_why, fallback_why = ensure_env("validation-whylogs", args.reinstall)
    v_gx = dist_versions(python_gx, PEER_DISTS["validation"])
    v_why = dist_versions(python_why, PEER_DISTS["validation-whylogs"])
    v_mine = dist_versions(sys.executable, ("mlwarden", "pyarrow", "polars", "numpy"))
    doc = contract_document()
    expected = expected_outcomes(doc)
    runs: dict[str, list[Run]] = {}
    with tempfile.TemporaryDirectory(prefix="mlwarden-bench-validation-", dir=args.dir) as tmp:
        work = Path(tmp)
        print(f"writing {args.rows:,} rows x {len(COLUMNS)} columns of Parquet ...", file=sys.stderr)
        data = write_data(work / "data.parquet", args.rows, SEED)
        warm = write_data(work / "warm.parquet", WARM_ROWS, SEED + 1)
        spec, warm_spec = work / "spec.json", work / "warm-spec.json"
        spec.write_text(json.dumps({"path": str(data.path), "contract": doc}))
        warm_spec.write_text(json.dumps({"path": str(warm.path), "contract": doc}))
        tools = make_tools(python_gx, python_why, work, args.repeat, args.whylogs_repeat)
        # Warm-up, not measured: bytecode, the page cache, and a first agreement check on a small file.
        print("warm-up: every tool on a small file ...", file=sys.stderr)
        warm_runs = {t.key: [run_tool(t, warm_spec, work)] for t in tools}
        problems = agreement(warm_runs, expected, warm)
        if problems:
            raise AssertionError("the tools disagree (warm-up):\n" + "\n".join(problems))
        quiet = wait_until_quiet(args.quiet_load, args.quiet_timeout)
        meter = CpuMeter()
        for r in range(max(args.repeat, args.whylogs_repeat)):
            order = tools[r % len(tools) :] + tools[: r % len(tools)]
            for tool in order:
                if r < tool.repeat:
                    print(f"run {r + 1}: {tool.key} ...", file=sys.stderr)
                    runs.setdefault(tool.key, []).append(run_tool(tool, spec, work))
        others = meter.stop()
        problems = agreement(runs, expected, data)
        if problems:
            raise AssertionError("the tools disagree:\n" + "\n".join(problems))
        versions = {
            "mlwarden's side: pyarrow / polars / NumPy": " / ".join(v_mine[d] for d in ("pyarrow", "polars", "numpy")),
            "env `validation`: Great Expectations / pandera / pandas / NumPy / pyarrow": " / ".join(
                v_gx[d] for d in PEER_DISTS["validation"]
            ),
            "env `validation-whylogs`: whylogs / pandas / NumPy / pyarrow": " / ".join(
                v_why[d] for d in PEER_DISTS["validation-whylogs"]
            ),
            "mlwarden": v_mine["mlwarden"],
        }
        notes = []
        for name, fallback in (("validation", fallback_gx), ("validation-whylogs", fallback_why)):
            if fallback:
                notes.append(f"* The pins of `{name}` ({' '.join(PEER_ENVS[name])}) did not install: {fallback}.")
        peer_peaks = [med(runs[k], "maxrss") for k in ("gx", "pandera", "whylogs") if runs.get(k)]
        ctx = {
            "doc": doc,
            "conformed_bytes": conformed_bytes(data.path),
            "whylogs_work": f"{med(runs['whylogs'], 'work'):.0f} s" if runs.get("whylogs") else "whylogs not run",
            "peer_peaks": f"{min(peer_peaks) / 1e9:.1f}-{max(peer_peaks) / 1e9:.1f} GB",
            "machine": machine_info(work, versions, quiet, others),
            "whylogs_counts": whylogs_counts(runs.get("whylogs", []), data),
            "gx_types": GX_TYPES,
            "pandas_gx": v_gx["pandas"],
            "pandas_why": v_why["pandas"],
            "notes": notes,
            "wall": time.perf_counter() - wall0,
        }
        text = render(args, data, tools, runs, ctx)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
