"""Column profiles: one pass, mergeable (parts merge into the whole), stored as strict, versioned JSON."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import math
import pickle
import threading
import time
from collections import Counter
from decimal import Decimal
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from mlwarden.data.columns import conform, infer_schema
from mlwarden.data.schema import Schema
from mlwarden.errors import ContractMismatch
from mlwarden.quality import _scan, sketches
from mlwarden.quality import profile as profile_module
from mlwarden.quality.profile import (
    PROFILE_VERSION,
    ColumnProfile,
    Profile,
    Profiler,
    profile_batches,
    profile_html,
)

KLL_EPS = sketches.kll_error()
HLL_SIGMA = sketches.HLL_RELATIVE_ERROR
EPOCH = dt.date(1970, 1, 1)


# --- data -----------------------------------------------------------------------------------------


def _mixed_table(rng: np.random.Generator, n: int) -> pa.Table:
    """Every column type, with nulls, NaN, infinities, -0.0, heavy hitters and a long tail."""
    floats = rng.normal(3.0, 10.0, n)
    special = rng.random(n)
    floats[special < 0.02] = np.nan
    floats[(special >= 0.02) & (special < 0.03)] = np.inf
    floats[(special >= 0.03) & (special < 0.035)] = -np.inf
    floats[(special >= 0.035) & (special < 0.04)] = -0.0
    ints = np.where(rng.random(n) < 0.4, rng.integers(-5, 5, n), rng.integers(-(10**12), 10**12, n))
    words = [f"w{z}" if z < 5000 else "é\u00e9\U0001f600" for z in rng.zipf(1.4, n)]
    dates = rng.integers(18_000, 18_400, n).astype(np.int32)
    micros = rng.integers(-(10**15), 2 * 10**15, n)
    cents = rng.integers(-(10**8), 10**8, n)
    return pa.table(
        {
            "f": pa.array(floats, mask=rng.random(n) < 0.05),
            "i": pa.array(ints, mask=rng.random(n) < 0.05),
            "s": pa.array([None if m else w for w, m in zip(words, rng.random(n) < 0.05, strict=True)]),
            "b": pa.array(rng.random(n) < 0.3, mask=rng.random(n) < 0.05),
            "d": pa.array(dates, pa.date32(), mask=rng.random(n) < 0.05),
            "t": pa.array(micros, pa.timestamp("us")),
            "tz": pa.array(micros // 7, pa.timestamp("us", tz="UTC"), mask=rng.random(n) < 0.05),
            "dec": pa.array([Decimal(int(c)).scaleb(-2) for c in cents], pa.decimal128(12, 2)),
            "bin": pa.array([bytes([int(x) % 7]) * int(x % 5) for x in cents], pa.binary()),
        }
    )


def _conformed(table: pa.Table, schema: Schema | None = None) -> tuple[Schema, list[pa.RecordBatch]]:
    schema = schema or infer_schema(table.schema)
    return schema, [conform(batch, schema) for batch in table.to_batches()]


def _profile(table: pa.Table) -> Profile:
    schema, batches = _conformed(table)
    return profile_batches(batches, schema)


def _cut(table: pa.Table, parts: int, rng: np.random.Generator) -> list[pa.Table]:
    """The table in ``parts`` contiguous pieces at random points (pieces may be empty)."""
    points = sorted(int(p) for p in rng.integers(0, table.num_rows + 1, parts - 1))
    bounds = [0, *points, table.num_rows]
    return [table.slice(a, b - a) for a, b in zip(bounds, bounds[1:], strict=False)]


def _merge_randomly(profiles: list[Profile], rng: np.random.Generator) -> Profile:
    """Merge in a random tree order: any two partial results, again and again."""
    pool = list(profiles)
    while len(pool) > 1:
        i, j = sorted(int(x) for x in rng.choice(len(pool), 2, replace=False))
        merged = pool[i].merge(pool[j]) if rng.random() < 0.5 else pool[j].merge(pool[i])
        pool = [p for k, p in enumerate(pool) if k not in (i, j)] + [merged]
    return pool[0]


# --- merge exactness ------------------------------------------------------------------------------


@pytest.mark.parametrize(("parts", "frequent_k"), [(1, 64), (2, 8), (3, 64), (4, 8), (5, 16), (6, 64), (7, 8)])
def test_profiles_of_parts_merge_into_the_profile_of_the_whole(parts: int, frequent_k: int) -> None:
    """Cut at random points, profiled apart, merged in a random order: the profile of the whole."""
    rng = np.random.default_rng(parts)
    table = _mixed_table(rng, 6_000)
    schema = infer_schema(table.schema)
    whole_profiler = Profiler(schema, frequent_k=frequent_k)
    for batch in _conformed(table, schema)[1]:
        whole_profiler.add(batch)
    whole = whole_profiler.result()
    profiles = []
    for piece in _cut(table, parts, rng):
        profiler = Profiler(schema, frequent_k=frequent_k)
        for batch in _conformed(piece, schema)[1]:
            profiler.add(batch)
        profiles.append(profiler.result())
    merged = _merge_randomly(profiles, rng)

    assert merged.rows == whole.rows == table.num_rows
    for a, b in zip(merged.columns, whole.columns, strict=True):
        _assert_same_exact_parts(a, b)
        _assert_frequent_bounds_hold(a, table.column(a.name), frequent_k)
        _assert_quantiles_within_rank_error(a, table.column(a.name))


def _assert_same_exact_parts(a: ColumnProfile, b: ColumnProfile) -> None:
    assert (a.name, a.type, a.count, a.nulls, a.nan, a.inf) == (b.name, b.type, b.count, b.nulls, b.nan, b.inf)
    assert (a.minimum, a.maximum, a.lengths) == (b.minimum, b.maximum, b.lengths), a.name
    assert a.distinct == b.distinct, f"{a.name}: HyperLogLog registers differ"
    for x, y in ((a.mean, b.mean), (a.variance, b.variance)):
        assert (x is None) == (y is None)
        if x is not None and y is not None:
            assert math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-9), a.name
    assert (a.quantiles is None) == (b.quantiles is None)


def _canonical_values(column: ColumnProfile, values: pa.ChunkedArray) -> list[str]:
    items = [v for v in values.to_pylist() if v is not None]
    if column.type == "bool":
        return ["true" if v else "false" for v in items]
    if column.type == "date":
        return [v.isoformat() for v in items]
    return [str(v) for v in items]


def _assert_frequent_bounds_hold(column: ColumnProfile, values: pa.ChunkedArray, k: int) -> None:
    if column.frequent is None:
        assert column.type not in ("string", "int", "bool", "date")
        return
    truth = Counter(_canonical_values(column, values))
    n = sum(truth.values())
    frequent = column.frequent
    assert len(frequent.items) <= k
    assert frequent.error <= n / (k + 1)
    reported = dict(frequent.items)
    for value, count in truth.items():
        low, high = frequent.bounds(value)
        assert low <= count <= high, (column.name, value, count, low, high)
        if count > n / (k + 1):
            assert value in reported, f"{column.name}: heavy hitter {value!r} ({count} of {n}) is missing"
    assert set(reported) <= set(truth)


def _finite_numbers(column: ColumnProfile, values: pa.ChunkedArray) -> np.ndarray[Any, np.dtype[np.float64]]:
    """The column's finite values as the profile counts them: days, microseconds, decimals as doubles."""
    if column.type == "date":
        items: list[float] = [(v - EPOCH).days for v in values.to_pylist() if v is not None]
    elif column.type.startswith("timestamp"):
        items = [v for v in values.cast(pa.int64()).to_pylist() if v is not None]
    else:
        items = [float(v) for v in values.to_pylist() if v is not None]
    array = np.array(items, dtype=np.float64)
    return np.sort(array[np.isfinite(array)])


def _assert_quantiles_within_rank_error(column: ColumnProfile, values: pa.ChunkedArray) -> None:
    if column.quantiles is None:
        assert column.quantile(0.5) is None
        return
    finite = _finite_numbers(column, values)
    assert len(finite) == column.finite
    for q in (0.0, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 1.0):
        value = column.quantile(q)
        assert value is not None
        below = np.searchsorted(finite, value, side="left") / len(finite)
        upto = np.searchsorted(finite, value, side="right") / len(finite)
        assert below - KLL_EPS <= q <= upto + KLL_EPS, (column.name, q, value, below, upto)


def test_the_whole_matches_the_data() -> None:
    """Counts, extremes and moments against numpy, for a table with every special value."""
    rng = np.random.default_rng(11)
    table = _mixed_table(rng, 3_000)
    profile = _profile(table)
    f = profile.column("f")
    raw = table.column("f").to_numpy(zero_copy_only=False)
    valid = ~np.asarray(table.column("f").is_null().to_numpy(zero_copy_only=False))
    finite = raw[valid & np.isfinite(raw)]
    assert (f.count, f.nulls) == (3_000, 3_000 - int(valid.sum()))
    assert f.nan == int(np.isnan(raw[valid]).sum()) and f.inf == int(np.isinf(raw[valid]).sum())
    assert (f.minimum, f.maximum) == (float(finite.min()), float(finite.max()))
    assert f.mean is not None and f.variance is not None
    assert math.isclose(f.mean, float(finite.mean()), rel_tol=1e-9)
    assert math.isclose(f.variance, float(finite.var()), rel_tol=1e-9)
    d = profile.column("d")
    days = [(v - dt.date(1970, 1, 1)).days for v in table.column("d").to_pylist() if v is not None]
    assert (d.minimum, d.maximum) == (min(days), max(days))
    dec = profile.column("dec")
    decimals = [v for v in table.column("dec").to_pylist() if v is not None]
    assert (dec.minimum, dec.maximum) == (float(min(decimals)), float(max(decimals)))
    s = profile.column("s")
    strings = [v for v in table.column("s").to_pylist() if v is not None]
    assert (s.minimum, s.maximum) == (min(strings), max(strings))
    assert s.lengths is not None and s.lengths.total == sum(len(v.encode()) for v in strings)


def test_threads_and_slices_do_not_change_the_result(monkeypatch: pytest.MonkeyPatch) -> None:
    """Worker threads (for string columns) change nothing; slicing a batch changes only what the
    sketches allow (frequent-item reductions, KLL's coin flips), never counts, extremes or registers."""
    rng = np.random.default_rng(5)
    table = _mixed_table(rng, 20_000).combine_chunks()
    schema, batches = _conformed(table)
    monkeypatch.setattr(profile_module, "PARALLEL_MIN_VALUES", 1)
    workers: set[str] = set()
    update = _scan.ColumnScan.update

    def spy(scan: _scan.ColumnScan, array: pa.Array) -> None:
        workers.add(threading.current_thread().name.split("_")[0])
        update(scan, array)

    monkeypatch.setattr(_scan.ColumnScan, "update", spy)
    results = []
    for threads, slice_rows in ((1, 1 << 20), (2, 1 << 20), (2, 3_000)):
        monkeypatch.setattr(_scan, "SLICE_ROWS", slice_rows)
        profiler = Profiler(schema, threads=threads)
        for batch in batches:
            profiler.add(batch)
        results.append(profiler.result())
    for one, threaded, sliced in zip(*(r.columns for r in results), strict=True):
        _assert_same_exact_parts(one, threaded)
        assert one.frequent == threaded.frequent
        _assert_same_exact_parts(one, sliced)
        _assert_frequent_bounds_hold(sliced, table.column(one.name), sketches.FREQUENT_K)
    assert workers == {"MainThread", "mlwarden-profile"}


def test_mostly_distinct_strings_are_counted_the_same_by_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """An id-like column is counted by sorting hashes instead of dictionaries: the same summary."""
    rng = np.random.default_rng(8)
    n = 150_000
    ids = [f"user-{i}" for i in rng.integers(0, 10**9, n)]
    for i in rng.choice(n, 3_000, replace=False):
        ids[i] = "hot-key"  # a heavy hitter among ids
    schema, batches = _conformed(pa.table({"id": ids}).combine_chunks())
    monkeypatch.setattr(_scan, "SLICE_ROWS", 40_000)
    hashed_slices = []
    count_hashes = _scan.ColumnScan._count_hashes

    def spy(scan: _scan.ColumnScan, values: pa.Array, frequent: sketches.FrequentItems) -> Any:
        hashed_slices.append(len(values))
        return count_hashes(scan, values, frequent)

    monkeypatch.setattr(_scan.ColumnScan, "_count_hashes", spy)
    hashed = Profiler(schema, threads=1)
    hashed.add(batches[0])
    assert hashed_slices == [40_000, 40_000, 40_000]  # not the last: 30,000 rows are few enough for a dictionary
    monkeypatch.setattr(_scan, "MIN_HASHED_ROWS", 10**9)
    encoded = Profiler(schema, threads=1)
    encoded.add(batches[0])
    a, b = hashed.result().column("id"), encoded.result().column("id")
    assert a.frequent == b.frequent and a.distinct == b.distinct
    assert a.top(1)[0][0] == "hot-key" and a.top(1)[0][1] <= 3_000 <= a.top(1)[0][2]


def test_only_mostly_distinct_slices_are_counted_by_hashing() -> None:
    rng = np.random.default_rng(2)
    n = 100_000
    for distinct, expected in ((1_000, False), (20_000, False), (n, True), (10 * n, True)):
        values = pa.array([f"v{i}" for i in rng.integers(0, distinct, n)], pa.large_string())
        assert _scan._mostly_distinct(values) is expected, distinct
    assert not _scan._mostly_distinct(pa.array([f"v{i}" for i in range(1_000)]))  # too few rows to bother


# --- sketches -------------------------------------------------------------------------------------


def test_hashes_are_fixed_by_their_definitions() -> None:
    """The hashes are part of the stored format: pinned to SplitMix64 and SHA-256 test vectors."""
    assert int(sketches.splitmix64(np.array([0], dtype=np.uint64))[0]) == 0xE220A8397B1DCDAF
    expected = int.from_bytes(hashlib.sha256(b"abc").digest()[:8], "little")
    assert int(sketches.hash_bytes(pa.array(["abc"]))[0]) == expected
    zeros = sketches.hash_floats(np.array([0.0, -0.0]))
    nans = sketches.hash_floats(np.array([np.nan, -np.nan, np.frombuffer(b"\x01\x00\x00\x00\x00\x00\xf8\x7f")[0]]))
    assert zeros[0] == zeros[1] and len(set(nans.tolist())) == 1
    assert sketches.hash_words(np.array([5], dtype=np.int32))[0] == sketches.hash_words(np.array([5]))[0]


@pytest.mark.parametrize("distinct", [100_000, 1_000_000])
def test_hyperloglog_is_within_three_standard_errors(distinct: int) -> None:
    rng = np.random.default_rng(distinct)
    values = rng.permutation(distinct).astype(np.int64) * 7919 + 13
    registers = sketches.hll_empty()
    sketches.hll_add(registers, np.concatenate([values, values[: distinct // 3]]), sketches.hash_words)
    estimate = sketches.hll_estimate(registers.tobytes())
    assert abs(estimate / distinct - 1) < 3 * HLL_SIGMA


def test_hyperloglog_of_strings_and_small_cardinalities() -> None:
    strings = pa.array([f"item-{i}" for i in range(100_000)])
    registers = sketches.hll_empty()
    sketches.hll_update(registers, sketches.hash_bytes(strings))
    assert abs(sketches.hll_estimate(registers.tobytes()) / 100_000 - 1) < 3 * HLL_SIGMA
    assert sketches.hll_estimate(sketches.hll_empty().tobytes()) == 0.0
    for n in (1, 10, 1_000):
        registers = sketches.hll_empty()
        sketches.hll_add(registers, np.arange(n), sketches.hash_words)
        assert abs(sketches.hll_estimate(registers.tobytes()) - n) <= max(1.0, 0.05 * n)


def test_corrupted_kll_bytes_are_refused_not_crashed_on() -> None:
    """The library's deserializer trusts the level offsets it reads (mutated bytes crashed the
    interpreter before ``check_kll``); every mutation must load as a working sketch or be refused."""
    rng = np.random.default_rng(12)
    seeds = []
    for n in (1, 10, 300, 20_000):
        column = _profile(pa.table({"x": rng.normal(size=n)})).column("x")
        assert column.quantiles is not None
        seeds.append(column.quantiles)
    refused = 0
    for _ in range(3_000):
        data = bytearray(seeds[int(rng.integers(len(seeds)))])
        for _ in range(int(rng.integers(1, 4))):
            if not data:
                break
            at = int(rng.integers(len(data)))
            choice = rng.random()
            if choice < 0.6:
                data[at] = int(rng.integers(256))
            elif choice < 0.8:
                del data[at:]
            else:
                data += rng.bytes(int(rng.integers(1, 16)))
        try:
            sketch = sketches.kll_load(bytes(data))
        except ValueError:
            refused += 1
            continue
        if not sketch.is_empty():
            sketch.get_quantile(0.5)
            sketch.get_pmf([0.0, 1.0])
    assert refused > 2_000


def test_misra_gries_merges_keep_their_guarantees() -> None:
    rng = np.random.default_rng(3)
    stream = [str(v) for v in rng.zipf(1.2, 50_000)]
    truth = Counter(stream)
    capacity = 10
    summaries = []
    for start in range(0, len(stream), 1_700):
        counts = Counter(stream[start : start + 1_700])
        labels = list(counts)
        numbers = np.array([counts[v] for v in labels], dtype=np.int64)
        summaries.append(sketches.FrequentItems.of_counts(numbers, lambda at, ls=labels: [ls[i] for i in at], capacity))
    merged = summaries[0]
    for summary in summaries[1:]:
        merged = merged.merge(summary)
    assert len(merged.items) <= capacity and 0 < merged.error <= len(stream) / (capacity + 1)
    for value, count in truth.items():
        low, high = merged.bounds(value)
        assert low <= count <= high
    top = merged.top(3)
    assert [v for v, _, _ in top] == [v for v, _ in truth.most_common(3)]
    with pytest.raises(ValueError, match="capacity"):
        merged.merge(sketches.FrequentItems(capacity + 1))


def test_moments_merge_in_any_order() -> None:
    rng = np.random.default_rng(9)
    data = rng.lognormal(5, 2, 10_000)
    parts = [sketches.Moments.of(chunk) for chunk in np.array_split(data, 9)]
    forward, backward = sketches.Moments(), sketches.Moments()
    for part in parts:
        forward = forward.merge(part)
    for part in reversed(parts):
        backward = part.merge(backward)
    for m in (forward, backward):
        assert m.n == len(data) and m.variance is not None
        assert math.isclose(m.mean, float(data.mean()), rel_tol=1e-9)
        assert math.isclose(m.variance, float(data.var()), rel_tol=1e-9)


# --- JSON -----------------------------------------------------------------------------------------


def _stored(profile: Profile) -> dict[str, Any]:
    """The JSON as it is stored: strict (no NaN/Infinity literals) and parsed back."""
    return dict(json.loads(json.dumps(profile.to_json(), allow_nan=False)))


def test_json_round_trip_is_exact() -> None:
    table = _mixed_table(np.random.default_rng(21), 2_000)
    profile = _profile(table)
    data = _stored(profile)
    assert data["version"] == PROFILE_VERSION == 1
    again = Profile.from_json(data)
    assert again == profile
    assert again.merge(profile).rows == 4_000
    assert again.column("f").quantile(0.5) == profile.column("f").quantile(0.5)
    assert pickle.loads(pickle.dumps(again)) == profile  # noqa: S301 - our own bytes; as Dask sends them


def _break(data: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    broken: dict[str, Any] = json.loads(json.dumps(data))
    target: Any = broken
    for key in path[:-1]:
        target = target[key]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return broken


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("version",), 2, "version 2 is not supported"),
        (("version",), "1", "version '1' is not supported"),
        (("version",), KeyError, "missing key"),
        (("rows",), -1, "rows: expected a non-negative integer"),
        (("columns",), {}, "columns: expected a list"),
        (("columns", 0, "nulls"), KeyError, r"columns\[0\]: missing key\(s\) \['nulls'\]"),
        (("columns", 0, "extra"), 1, "unknown key"),
        (("columns", 0, "count"), "5", r"columns\[0\].count: expected a non-negative integer, got str"),
        (("columns", 0, "count"), True, "count: expected a non-negative integer, got bool"),
        (("columns", 0, "count"), 7, "inconsistent counts"),
        (("columns", 0, "mean"), "NaN", "mean: expected a finite number"),
        (("columns", 0, "min"), "low", "min: expected a finite number"),
        (("columns", 0, "min"), 100.0, "min is above max"),
        (("columns", 0, "variance"), -1.0, "variance: negative"),
        (("columns", 0, "type"), "complex", "unknown column type"),
        (("columns", 0, "distinct"), "not base64!", "distinct: expected valid base64"),
        (("columns", 0, "distinct"), base64.b64encode(b"\x00" * 10).decode(), "4096 registers"),
        (("columns", 0, "quantiles"), base64.b64encode(b"garbage").decode(), "quantiles"),
        (("columns", 0, "quantiles"), None, "quantiles: missing"),
        (("columns", 1, "frequent", "items"), [["a", 0]], "positive counts"),
        (("columns", 1, "frequent", "items"), [["a", 2], ["a", 1]], "duplicate values"),
        (("columns", 1, "frequent"), None, "frequent: missing"),
        (("columns", 2, "lengths", "min"), 1.5, "lengths.min: expected a non-negative integer"),
    ],
)
def test_from_json_rejects_malformed_input(path: tuple[Any, ...], value: Any, message: str) -> None:
    table = pa.table({"x": [1.5, 2.5, None], "n": [1, 2, 2], "s": ["a", None, "bb"]})
    data = _stored(_profile(table))
    with pytest.raises(ValueError, match=message):
        Profile.from_json(_break(data, path, value))


def test_from_json_rejects_what_is_not_an_object() -> None:
    for data in (None, [], "profile", 1):
        with pytest.raises(ValueError, match="expected an object"):
            Profile.from_json(data)


# --- reports --------------------------------------------------------------------------------------


def test_html_escapes_column_names_and_values() -> None:
    evil = "<script>alert(1)</script>"
    table = pa.table({evil: [1.0, 2.0, 3.0], "s": ['<img src=x onerror="alert(2)">', "a&b", "a&b"]})
    page = profile_html(_profile(table), title=f"report {evil}")
    assert "<script" not in page and "<img" not in page and 'onerror="' not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=&quot;alert(2)&quot;&gt;" in page
    assert "<svg" in page and 'http-equiv="Content-Security-Policy"' in page


def test_summary_is_strict_json_with_percentiles_and_top_values() -> None:
    rng = np.random.default_rng(4)
    table = pa.table({"x": rng.uniform(0, 100, 20_000), "c": [f"k{i % 7}" for i in range(20_000)]})
    summary = _profile(table).summary()
    json.dumps(summary, allow_nan=False)
    x, c = summary["columns"]
    assert summary["rows"] == 20_000 and x["count"] == 20_000
    for key, q in (("p01", 1), ("p25", 25), ("p50", 50), ("p75", 75), ("p99", 99)):
        assert abs(x[key] - q) < 100 * 2 * KLL_EPS
    assert math.isclose(x["std"], 100 / math.sqrt(12), rel_tol=0.02)
    assert c["distinct"] == 7 and len(c["top"]) == 5 and c["top"][0]["count"] in (2_857, 2_858)
    assert c["length"] == {"min": 2, "max": 2, "mean": 2.0}


# --- bad inputs -----------------------------------------------------------------------------------


def test_all_null_columns_of_every_type() -> None:
    schema = infer_schema(_mixed_table(np.random.default_rng(0), 10).schema)
    nulls = pa.RecordBatch.from_arrays(
        [pa.nulls(50, t) for t in schema.arrow_schema().types], schema=schema.arrow_schema()
    )
    profile = profile_batches([nulls], schema)
    for column in profile.columns:
        assert (column.count, column.nulls, column.minimum, column.maximum, column.mean) == (50, 50, None, None, None)
        assert column.quantile(0.5) is None and column.rank(0.0) is None and column.histogram() == []
        assert column.distinct_estimate() == 0.0 and column.top(5) == []
    assert Profile.from_json(_stored(profile)) == profile
    assert profile_html(profile, "nulls").count("<section>") == len(schema.columns)


def test_no_batches_and_empty_batches() -> None:
    schema = infer_schema(_mixed_table(np.random.default_rng(0), 10).schema)
    arrow = schema.arrow_schema()
    empty = [pa.RecordBatch.from_arrays([pa.array([], t) for t in arrow.types], schema=arrow)]
    for batches in ([], empty):
        profile = profile_batches(batches, schema)
        assert profile.rows == 0 and all(c.count == 0 and c.variance is None for c in profile.columns)
        assert Profile.from_json(_stored(profile)) == profile
        profile.summary()


def test_constant_single_row_and_extreme_columns() -> None:
    table = pa.table(
        {
            "constant": [4.25] * 1_000,
            "huge": [1e308, -1e308, 1.5e308, -1.7e308] * 250,
            "special": [np.nan, np.inf, -np.inf, 0.0] * 250,
            "neg_zero": [-0.0, 0.0] * 500,
        }
    )
    profile = _profile(table)
    constant = profile.column("constant")
    assert (constant.minimum, constant.maximum, constant.mean, constant.variance) == (4.25, 4.25, 4.25, 0.0)
    assert constant.quantile(0.3) == 4.25 and constant.histogram() == [(4.25, 4.25, 1.0)]
    assert round(constant.distinct_estimate()) == 1
    huge = profile.column("huge")
    assert huge.mean is not None and math.isfinite(huge.mean) and huge.variance == math.inf
    special = profile.column("special")
    assert (special.nan, special.inf, special.minimum, special.maximum, special.mean) == (250, 500, 0.0, 0.0, 0.0)
    assert round(sketches.hll_estimate(special.distinct)) == 4  # NaN, +inf, -inf and 0 are four values
    zero = profile.column("neg_zero")
    assert (zero.minimum, zero.maximum) == (0.0, 0.0) and math.copysign(1, zero.minimum) == 1.0
    assert round(sketches.hll_estimate(zero.distinct)) == 1
    again = Profile.from_json(_stored(profile))
    assert again.column("huge").variance == math.inf
    json.dumps(again.summary(), allow_nan=False)
    single = _profile(pa.table({"x": [7], "s": ["only"]}))
    assert single.column("x").variance == 0.0 and single.column("x").quantile(0.99) == 7.0
    assert single.column("s").top(5) == [("only", 1, 1)]


def test_decimals_dates_and_timestamps_are_numbers() -> None:
    table = pa.table(
        {
            "price": pa.array([Decimal("1.10"), Decimal("-2.25"), None, Decimal("99999999.99")], pa.decimal128(10, 2)),
            "day": pa.array([dt.date(1970, 1, 2), dt.date(1969, 12, 31), None, dt.date(2024, 2, 29)]),
            "at": pa.array([0, 1_000_000, None, -5], pa.timestamp("us", tz="UTC")),
        }
    )
    profile = _profile(table)
    price, day, at = profile.columns
    assert (price.type, price.minimum, price.maximum) == ("decimal(10,2)", -2.25, 99999999.99)
    assert price.mean is not None and math.isclose(price.mean, (1.10 - 2.25 + 99999999.99) / 3)
    leap_day = (dt.date(2024, 2, 29) - EPOCH).days
    assert (day.minimum, day.maximum, day.top(1)[0][0]) == (-1, leap_day, "1969-12-31")
    assert (at.minimum, at.maximum, at.quantile(0.0)) == (-5, 1_000_000, -5.0)


def test_a_million_distinct_strings_stay_fast_and_small() -> None:
    n = 1_000_000
    table = pa.table({"id": pa.array([f"id-{i:07d}" for i in range(n)], pa.large_string())})
    schema, batches = _conformed(table)
    started = time.perf_counter()
    column = profile_batches(batches, schema).column("id")
    assert time.perf_counter() - started < 5.0
    assert column.frequent is not None and len(column.frequent.items) <= sketches.FREQUENT_K
    assert abs(column.distinct_estimate() / n - 1) < 3 * HLL_SIGMA
    assert (column.minimum, column.maximum) == ("id-0000000", "id-0999999")
    assert len(json.dumps(Profile(n, (column,)).to_json())) < 20_000


def test_merging_or_reading_different_schemas_fails_clearly() -> None:
    a = _profile(pa.table({"x": [1.0]}))
    b = _profile(pa.table({"x": [1]}))
    with pytest.raises(ValueError, match="different schemas"):
        a.merge(b)
    with pytest.raises(ValueError, match="no column 'y'"):
        a.column("y")
    with pytest.raises(ValueError, match="between 0 and 1"):
        a.column("x").quantile(1.5)


def test_the_profiler_refuses_batches_that_are_not_conformed() -> None:
    schema = infer_schema(pa.schema([("x", pa.int64())]))
    with pytest.raises(ContractMismatch, match="canonical types"):
        Profiler(schema).add(pa.record_batch({"x": pa.array([1], pa.int32())}))
