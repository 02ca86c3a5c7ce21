"""The peers' side of ``validation.py``: Great Expectations, pandera and whylogs, each run as
``python _validation_peers.py MODE SPEC REPORT`` in a fresh interpreter of the benchmark's own virtualenv
(``benchmarks/.envs/validation`` or ``benchmarks/.envs/validation-whylogs``), never in mlwarden's.

``SPEC`` is a JSON file written by ``validation.py``: the Parquet file and the contract as mlwarden's
document (``{"version": 1, "columns": {name: {"type", "nullable", "min", "max", "allowed"}}}``), which
each mode translates into its tool's own terms. ``REPORT`` receives a JSON object: the seconds of each
phase (imports, reading the Parquet file into pandas, building the suite or schema, the work), the
process's peak RSS after the imports and after reading, and what the tool found, by check:
``{"age.range": {"passed": false, "failed_rows": 7}, ...}`` (``failed_rows`` is null where the tool
does not count rows). Only the standard library is imported at the top: what a mode imports is part of
what it measures. Run without arguments (as ``make bench`` does with every script here), it does nothing.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from collections.abc import Callable
from typing import Any

T0 = time.perf_counter()


def rss_kb() -> int:
    """This process's peak RSS so far (kB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def check_ids(doc: dict[str, Any]) -> list[str]:
    """The contract's checks, named as ``validation.py`` names them (``COLUMN.KIND``), in order."""
    ids = []
    for name, spec in doc["columns"].items():
        ids.append(f"{name}.type")
        if not spec.get("nullable", True):
            ids.append(f"{name}.not_null")
        if "min" in spec or "max" in spec:
            ids.append(f"{name}.range")
        if "allowed" in spec:
            ids.append(f"{name}.set")
    return ids


def nullable_ints(doc: dict[str, Any]) -> list[str]:
    return [n for n, s in doc["columns"].items() if s["type"] == "int" and s.get("nullable", True)]


def read_frame(path: str, doc: dict[str, Any]) -> Any:
    """The Parquet file as a pandas user reads it: ``pd.read_parquet`` (pyarrow), then the integer
    columns that may hold nulls as pandas' nullable ``Int64`` (``read_parquet`` makes them float64)."""
    import pandas as pd

    frame = pd.read_parquet(path)
    for name in nullable_ints(doc):
        frame[name] = frame[name].astype("Int64")
    return frame


# -- Great Expectations 1.x ---------------------------------------------------------------------------------

# The dtype name GE's pandas engine reports for each contract type (for ``Int64`` it reports ``int64``).
GX_TYPES = {"int": "int64", "float": "float64", "string": "str"}


def gx_setup(doc: dict[str, Any]) -> tuple[Any, Any]:
    """An ephemeral context, a pandas datasource with a whole-dataframe batch definition, and the suite."""
    import great_expectations as gx

    expect = gx.expectations
    context = gx.get_context(mode="ephemeral")
    asset = context.data_sources.add_pandas("bench").add_dataframe_asset("frame")
    batch_definition = asset.add_batch_definition_whole_dataframe("whole")
    suite = context.suites.add(gx.ExpectationSuite(name="contract"))
    for name, spec in doc["columns"].items():
        suite.add_expectation(expect.ExpectColumnValuesToBeOfType(column=name, type_=GX_TYPES[spec["type"]]))
        if not spec.get("nullable", True):
            suite.add_expectation(expect.ExpectColumnValuesToNotBeNull(column=name))
        if "min" in spec or "max" in spec:
            between = expect.ExpectColumnValuesToBeBetween(
                column=name, min_value=spec.get("min"), max_value=spec.get("max")
            )
            suite.add_expectation(between)
        if "allowed" in spec:
            suite.add_expectation(expect.ExpectColumnValuesToBeInSet(column=name, value_set=spec["allowed"]))
    return batch_definition, suite


GX_KINDS = {
    "expect_column_values_to_be_of_type": "type",
    "expect_column_values_to_not_be_null": "not_null",
    "expect_column_values_to_be_between": "range",
    "expect_column_values_to_be_in_set": "set",
}


def gx_validate(frame: Any, setup: tuple[Any, Any]) -> dict[str, dict[str, Any]]:
    batch_definition, suite = setup
    result = batch_definition.get_batch(batch_parameters={"dataframe": frame}).validate(suite)
    outcomes = {}
    for r in result.results:
        config = r.expectation_config
        if r.exception_info and r.exception_info.get("raised_exception"):
            raise RuntimeError(f"GE could not run {config.type} on {config.kwargs['column']}: {r.exception_info}")
        check = f"{config.kwargs['column']}.{GX_KINDS[config.type]}"
        count = r.result.get("unexpected_count")
        outcomes[check] = {"passed": bool(r.success), "failed_rows": None if count is None else int(count)}
    return outcomes


# -- pandera ------------------------------------------------------------------------------------------------------


def pandera_setup(doc: dict[str, Any]) -> tuple[Any, list[str]]:
    """A ``DataFrameSchema``: per column its dtype, nullability and an ``in_range`` or ``isin`` check;
    and the contract's check names, to report the ones pandera passes (it lists only failures)."""
    import pandera.pandas as pa

    maybe_null_ints = set(nullable_ints(doc))
    columns = {}
    for name, spec in doc["columns"].items():
        dtype = {"int": "Int64" if name in maybe_null_ints else "int64", "float": "float64", "string": "str"}
        checks = []
        if "min" in spec or "max" in spec:
            checks.append(pa.Check.in_range(spec.get("min"), spec.get("max")))
        if "allowed" in spec:
            checks.append(pa.Check.isin(spec["allowed"]))
        columns[name] = pa.Column(dtype[spec["type"]], nullable=spec.get("nullable", True), checks=checks)
    return pa.DataFrameSchema(columns), check_ids(doc)


def pandera_kind(check: str) -> str:
    if check.startswith("dtype("):
        return "type"
    if check == "not_nullable":
        return "not_null"
    if check.startswith("in_range"):
        return "range"
    if check.startswith("isin"):
        return "set"
    raise RuntimeError(f"pandera reported an unexpected check: {check}")


def pandera_validate(frame: Any, setup: tuple[Any, list[str]]) -> dict[str, dict[str, Any]]:
    import pandera.pandas as pa

    schema, checks = setup
    try:
        schema.validate(frame, lazy=True)
        failures: dict[str, int] = {}
    except pa.errors.SchemaErrors as exc:
        cases = exc.failure_cases
        counted = cases.groupby(["column", "check"], dropna=False).size()
        failures = {}
        for (column, check), n in counted.items():
            key = f"{column}.{pandera_kind(str(check))}"
            failures[key] = failures.get(key, 0) + int(n)
    outcomes = {}
    for check in checks:
        failed = failures.pop(check, 0)
        kind = check.rsplit(".", 1)[1]
        outcomes[check] = {"passed": failed == 0, "failed_rows": None if kind == "type" else failed}
    if failures:
        raise RuntimeError(f"pandera reported failures outside the contract: {failures}")
    return outcomes


# -- whylogs ---------------------------------------------------------------------------------------------------


def whylogs_profile(frame: Any) -> dict[str, Any]:
    """``why.log(pandas=frame)``: the full default profile of every column; returns per column the values
    and nulls it counted (to compare with mlwarden's profile)."""
    import whylogs as why

    view = why.log(pandas=frame).view()
    summary = view.to_pandas()
    counted = {}
    for name, row in summary.iterrows():
        nulls = int(row.get("counts/null", 0) or 0)  # None and NaN (also counted apart as counts/nan)
        counted[str(name)] = {"count": int(row["counts/n"]), "nulls": nulls, "metrics": int(row.notna().sum())}
    return counted


# -- the modes -------------------------------------------------------------------------------------------------


def run(mode: str, spec: dict[str, Any]) -> dict[str, Any]:
    doc = spec["contract"]
    setup_fn: Callable[[dict[str, Any]], Any]
    work_fn: Callable[[Any, Any], Any]
    if mode == "gx":
        import great_expectations  # noqa: F401 - the imports are timed apart from the work

        setup_fn, work_fn = gx_setup, gx_validate
    elif mode == "pandera":
        import pandera.pandas  # noqa: F401

        setup_fn, work_fn = pandera_setup, pandera_validate
    elif mode == "whylogs":
        import whylogs  # noqa: F401

        setup_fn, work_fn = (lambda _doc: None), (lambda frame, _setup: whylogs_profile(frame))
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    import pandas  # noqa: F401

    report: dict[str, Any] = {"import": time.perf_counter() - T0, "rss_import_kb": rss_kb()}
    t0 = time.perf_counter()
    frame = read_frame(spec["path"], doc)
    report |= {"read": time.perf_counter() - t0, "rss_read_kb": rss_kb(), "rows": len(frame)}
    t0 = time.perf_counter()
    setup = setup_fn(doc)
    report["setup"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    found = work_fn(frame, setup)
    report["work"] = time.perf_counter() - t0
    report["profile" if mode == "whylogs" else "outcomes"] = found
    return report


def main(argv: list[str]) -> int:
    if not argv:
        print("the peers' side of validation.py: nothing to run on its own")
        return 0
    mode, spec_path, report_path = argv
    with open(spec_path) as f:
        spec = json.load(f)
    report = run(mode, spec)
    with open(report_path, "w") as f:
        json.dump(report, f)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
