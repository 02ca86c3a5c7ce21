"""Drift tests of the ingestion gate: false alarms bounded by alpha, real shifts found, bad input survived."""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Callable
from decimal import Decimal

import numpy as np
import polars as pl
import pytest

from mlwarden.data.schema import Column, ColumnType, Schema
from mlwarden.errors import UsageError
from mlwarden.quality.drift import (
    ColumnDrift,
    DriftKind,
    DriftReport,
    adjust,
    categorical_drift,
    category_table,
    drift_report,
    numeric_drift,
)

SPLITS = 100


def allowance(rate: float, trials: int) -> float:
    """Three binomial standard errors above ``rate``: a correct procedure fails this about 0.1% of the time
    (normal approximation, one-sided z = 3), while an uncorrected gate (about 1 - 0.95^21 = 66% false alarms
    on 21 tests) or a mis-calibrated test is far beyond it."""
    return rate + 3 * math.sqrt(rate * (1 - rate) / trials)


# --- the synthetic source: 14 numeric columns of different shapes, 6 skewed categorical, a label ----------

Draw = Callable[[np.random.Generator, int], np.ndarray]


def _skewed(k: int, exponent: float = 1.5) -> np.ndarray:
    weights: np.ndarray = 1.0 / np.arange(1, k + 1) ** exponent
    shares: np.ndarray = weights / weights.sum()
    return shares


NUMERIC: dict[str, Draw] = {
    "normal_std": lambda g, n: g.normal(0.0, 1.0, n),
    "normal_price": lambda g, n: g.normal(100.0, 15.0, n),
    "normal_narrow": lambda g, n: g.normal(-5.0, 0.1, n),
    "normal_large": lambda g, n: g.normal(1e6, 1e4, n),
    "lognormal_std": lambda g, n: g.lognormal(0.0, 1.0, n),
    "lognormal_tight": lambda g, n: g.lognormal(2.0, 0.5, n),
    "lognormal_heavy": lambda g, n: g.lognormal(0.0, 2.0, n),
    "lognormal_amount": lambda g, n: g.lognormal(5.0, 1.0, n),
    "poisson_rare": lambda g, n: g.poisson(0.5, n),
    "poisson_count": lambda g, n: g.poisson(4.0, n),
    "poisson_many": lambda g, n: g.poisson(30.0, n),
    "uniform_unit": lambda g, n: g.uniform(0.0, 1.0, n),
    "uniform_sym": lambda g, n: g.uniform(-10.0, 10.0, n),
    "uniform_offset": lambda g, n: g.uniform(1000.0, 1001.0, n),
}
CATEGORIES = {"cat_3": 3, "cat_5": 5, "cat_8": 8, "cat_12": 12, "cat_20": 20}
LABEL_SHARES = np.array([0.7, 0.2, 0.1])


def _categorical(g: np.random.Generator, n: int, shares: np.ndarray, prefix: str = "v") -> list[str]:
    return [f"{prefix}{i}" for i in g.choice(shares.size, size=n, p=shares)]


def _batch(g: np.random.Generator, n: int) -> pl.DataFrame:
    data: dict[str, object] = {name: draw(g, n) for name, draw in NUMERIC.items()}
    data |= {name: _categorical(g, n, _skewed(k)) for name, k in CATEGORIES.items()}
    data["flag"] = g.random(n) < 0.9
    data["label"] = g.choice(3, size=n, p=LABEL_SHARES)
    return pl.DataFrame(data)


def _schema(frame: pl.DataFrame) -> Schema:
    types = {
        "Float64": ColumnType.FLOAT,
        "Int64": ColumnType.INT,
        "String": ColumnType.STRING,
        "Boolean": ColumnType.BOOL,
    }
    return Schema(tuple(Column(name, types[str(dtype)]) for name, dtype in frame.schema.items()))


@pytest.fixture(scope="module")
def null_splits() -> list[tuple[pl.DataFrame, pl.DataFrame]]:
    """Reference and current drawn independently from one source: every alarm on these is a false alarm."""
    splits = []
    for seed in range(SPLITS):
        g = np.random.default_rng([2024, seed])
        splits.append((_batch(g, 4000), _batch(g, 2500)))
    return splits


@pytest.fixture(scope="module")
def null_reports(null_splits: list[tuple[pl.DataFrame, pl.DataFrame]]) -> dict[str, list[DriftReport]]:
    schema = _schema(null_splits[0][0])
    return {
        method: [
            drift_report(r, c, schema, alpha=0.05, correction=method, label_column="label") for r, c in null_splits
        ]
        for method in ("holm", "bonferroni", "bh")
    }


# --- calibration -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["holm", "bonferroni", "bh"])
def test_false_alarm_rate_per_dataset_is_at_most_alpha(method: str, null_reports: dict[str, list[DriftReport]]) -> None:
    """100 same-source splits (20 columns and a label, 4000 vs 2500 rows), alpha = 0.05.

    The share of splits flagged must stay within alpha plus three binomial standard errors
    (0.05 + 3 * sqrt(0.05 * 0.95 / 100) = 0.115): a correct gate exceeds that about 0.1% of the time, an
    uncorrected one (about 66% here) never stays under it. Holm and Bonferroni bound the family-wise error
    rate; BH bounds the false discovery rate, which equals it when nothing drifted, so the same bound holds.
    """
    reports = null_reports[method]
    assert all(len(r.columns) == 20 and r.label is not None for r in reports)
    assert all(not r.untested_columns() for r in reports)
    rate = sum(r.drifted for r in reports) / len(reports)
    assert rate <= allowance(0.05, SPLITS), f"{method}: {rate:.2f} of same-source batches flagged"


def test_raw_p_values_are_calibrated(null_reports: dict[str, list[DriftReport]]) -> None:
    """Each test alone (2100 p-values) rejects at most 5% at 0.05; KS with ties (Poisson) may reject fewer."""
    p_values = [d.p_value for r in null_reports["holm"] for d in (*r.columns, r.label) if d is not None]
    assert len(p_values) == 21 * SPLITS
    rate = float(np.mean(np.asarray(p_values) < 0.05))
    assert 0.02 <= rate <= allowance(0.05, len(p_values)), rate


def test_flat_category_tail_does_not_alarm() -> None:
    """1000 equally likely categories at 5000 rows: ranking categories by the reference alone would keep the
    top 50 whose reference counts came out high by chance, and alarm on every batch (it did, 100 of 100)."""
    flagged = 0
    for seed in range(SPLITS):
        g = np.random.default_rng([7, seed])
        ref, cur = (np.bincount(g.integers(0, 1000, 5000), minlength=1000) for _ in range(2))
        drift = categorical_drift("tail", _as_counts(ref), _as_counts(cur))
        assert drift.test == "chi2"
        flagged += drift.p_value < 0.05
    assert flagged / SPLITS <= allowance(0.05, SPLITS)


def _as_counts(counts: np.ndarray) -> dict[str, int]:
    return {f"c{i}": int(n) for i, n in enumerate(counts)}


# --- power ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shifted", ["normal_price", "lognormal_std", "poisson_count", "uniform_sym"])
def test_finds_a_fifth_of_a_standard_deviation_in_one_of_twenty_columns(shifted: str) -> None:
    """100k rows x 20 numeric columns, one column's mean moved by 0.2 sd: flagged, and nothing else is."""
    g = np.random.default_rng([11, sorted(NUMERIC).index(shifted)])
    draws = [*NUMERIC.items(), *((f"extra_{name}", draw) for name, draw in list(NUMERIC.items())[:6])]
    n = 100_000
    reference = pl.DataFrame({name: draw(g, n).astype(np.float64) for name, draw in draws})
    current = pl.DataFrame({name: draw(g, n).astype(np.float64) for name, draw in draws})
    sd = float(reference[shifted].to_numpy().std())
    current = current.with_columns(pl.col(shifted) + 0.2 * sd)
    schema = Schema(tuple(Column(name, ColumnType.FLOAT) for name in reference.columns))
    report = drift_report(reference, current, schema, alpha=0.01)
    assert len(report.columns) == 20
    assert report.drifted_columns() == [shifted]
    found = next(d for d in report.columns if d.column == shifted)
    assert found.adjusted_p < 1e-6
    assert found.scores["wasserstein"] == pytest.approx(0.2, abs=0.05)


def _shares_frame(g: np.random.Generator, n: int, shares: dict[str, float]) -> pl.DataFrame:
    names, weights = list(shares), np.asarray(list(shares.values()))
    return pl.DataFrame(
        {
            "segment": [names[i] for i in g.choice(len(names), size=n, p=weights / weights.sum())],
            "amount": g.lognormal(3.0, 1.0, n),
            "label": g.choice(3, size=n, p=LABEL_SHARES),
        }
    )


SEGMENTS = {"a": 0.30, "b": 0.25, "c": 0.20, "d": 0.15, "e": 0.10}
SEGMENT_SCHEMA = Schema(
    (Column("segment", ColumnType.STRING), Column("amount", ColumnType.FLOAT), Column("label", ColumnType.INT))
)


def test_finds_one_category_moving_from_30_to_36_percent() -> None:
    g = np.random.default_rng(3)
    moved = {k: (0.36 if k == "a" else v * 0.64 / 0.70) for k, v in SEGMENTS.items()}
    reference, current = _shares_frame(g, 20_000, SEGMENTS), _shares_frame(g, 20_000, moved)
    report = drift_report(reference, current, SEGMENT_SCHEMA, alpha=0.01, label_column="label")
    assert report.drifted_columns() == ["segment"]
    assert report.columns[0].test == "chi2" and report.columns[0].adjusted_p < 1e-6


def test_finds_a_label_shift() -> None:
    g = np.random.default_rng(4)
    reference = _shares_frame(g, 10_000, SEGMENTS)
    current = _shares_frame(g, 10_000, SEGMENTS).with_columns(
        label=pl.Series(g.choice(3, size=10_000, p=[0.62, 0.24, 0.14]))
    )
    report = drift_report(reference, current, SEGMENT_SCHEMA, alpha=0.01, label_column="label")
    assert report.label is not None and report.label.kind is DriftKind.CATEGORICAL
    assert report.drifted_columns() == ["label"]
    assert [d.column for d in report.columns] == ["segment", "amount"]


def test_finds_a_category_that_only_the_current_batch_has() -> None:
    g = np.random.default_rng(5)
    reference = _shares_frame(g, 5000, SEGMENTS)
    current = _shares_frame(g, 5000, {**{k: v * 0.95 for k, v in SEGMENTS.items()}, "injected": 0.05})
    report = drift_report(reference, current, SEGMENT_SCHEMA, alpha=0.01, label_column="label")
    assert report.drifted_columns() == ["segment"]
    assert report.columns[0].scores["new_share"] == pytest.approx(0.05, abs=0.01)


def test_new_category_gets_its_own_bucket_with_an_empty_reference_cell() -> None:
    table = category_table({"a": 500, "b": 500}, {"a": 450, "b": 500, "new": 50})
    assert table.tolist() == [[500, 500, 0], [500, 450, 50]]


def test_rare_categories_beyond_the_cap_are_pooled() -> None:
    ref = {"a": 400, "b": 300, "c": 200, "x": 2, "y": 1}
    cur = {"a": 410, "b": 290, "c": 210, "z": 3}
    assert category_table(ref, cur, max_categories=2).tolist() == [[400, 300, 203], [410, 290, 213]]


# --- bad input: a "none" result with a reason, or a valid test, never an exception ---------------------------


def test_bad_columns_are_reported_not_raised() -> None:
    n = 200
    g = np.random.default_rng(6)
    normal = g.normal(size=n)
    reference = pl.DataFrame(
        {
            "all_null": pl.Series([None] * n, dtype=pl.Float64),
            "null_now": normal,
            "const_same": np.full(n, 3.0),
            "const_moved": np.full(n, 3.0),
            "nan_inf": np.where(np.arange(n) % 10 == 0, np.nan, normal),
            "only_inf": np.full(n, np.inf),
            "user_id": [f"user-{i}" for i in range(n)],
            "payload": [bytes([i % 256]) for i in range(n)],
            "day": [dt.date(2024, 1, 1) + dt.timedelta(days=int(i % 30)) for i in range(n)],
            "at": [dt.datetime(2024, 1, 1) + dt.timedelta(minutes=int(i)) for i in range(n)],
            "price": pl.Series([Decimal(f"{i % 50}.25") for i in range(n)], dtype=pl.Decimal(10, 2)),
            "label": ["yes"] * n,
        }
    )
    current = reference.with_columns(
        null_now=pl.lit(None, dtype=pl.Float64),
        const_moved=pl.lit(4.0),
        nan_inf=np.where(np.arange(n) % 7 == 0, np.inf, normal),
    ).drop("all_null")
    types = {
        "all_null": ColumnType.FLOAT,
        "user_id": ColumnType.STRING,
        "payload": ColumnType.BINARY,
        "day": ColumnType.DATE,
        "at": ColumnType.TIMESTAMP,
        "price": ColumnType.DECIMAL,
        "label": ColumnType.STRING,
    }
    schema = Schema(tuple(Column(name, types.get(name, ColumnType.FLOAT)) for name in reference.columns))
    schema = Schema(tuple(Column(c.name, c.type, 10, 2) if c.name == "price" else c for c in schema.columns))
    report = drift_report(reference, current, schema, alpha=0.01, label_column="label")
    by_name = {d.column: d for d in report.columns}
    untested = report.untested_columns()
    assert "missing from the current batch" in untested["all_null"]
    assert untested["null_now"] == "all values are null or non-finite in the current batch"
    assert untested["const_same"].startswith("constant")
    assert by_name["const_moved"].test == "ks" and by_name["const_moved"].statistic == 1.0
    assert by_name["const_moved"].drifted and by_name["const_moved"].scores["psi"] > 1
    assert by_name["nan_inf"].test == "ks"
    assert by_name["nan_inf"].scores["reference_nonfinite"] == 20
    assert by_name["nan_inf"].scores["current_nonfinite"] == 29
    assert untested["only_inf"].startswith("all values are null")
    assert untested["user_id"].startswith("high cardinality")
    assert untested["payload"].startswith("binary column") and by_name["payload"].kind is DriftKind.BINARY
    assert untested["label"] == "a single category on both sides"
    assert report.label is not None and report.label.p_value == 1.0
    for name in ("day", "at", "price"):
        assert by_name[name].test == "ks" and by_name[name].p_value == 1.0, name
    assert report.drifted_columns() == ["const_moved"]


def test_too_few_rows_are_not_tested() -> None:
    frame = pl.DataFrame({"x": [1.0, 2.0, 3.0, 4.0, 5.0], "s": ["a", "b", "a", "b", "a"]})
    schema = Schema((Column("x", ColumnType.FLOAT), Column("s", ColumnType.STRING)))
    report = drift_report(frame, frame, schema)
    assert [d.test for d in report.columns] == ["none", "none"]
    assert all(d.reason.startswith("too few rows to test") for d in report.columns)
    empty = drift_report(frame.clear(), frame, schema)
    assert all("all values are null" in d.reason for d in empty.columns)
    assert not report.drifted and not empty.drifted


def test_numeric_drift_drops_non_finite_values_and_counts_them() -> None:
    values = np.r_[np.arange(50.0), np.nan, np.inf, -np.inf]
    drift = numeric_drift("x", values, np.arange(50.0))
    assert (drift.test, drift.reference_rows, drift.scores["reference_nonfinite"]) == ("ks", 50, 3.0)
    assert drift.p_value == 1.0 and drift.adjusted_p == drift.p_value and not drift.drifted


def test_numeric_drift_samples_large_sides_deterministically() -> None:
    g = np.random.default_rng(8)
    ref, cur = g.normal(size=5000), g.normal(size=5000)
    first = numeric_drift("x", ref, cur, max_sample=1000, seed=1)
    assert first == numeric_drift("x", ref, cur, max_sample=1000, seed=1)
    assert first != numeric_drift("x", ref, cur, max_sample=1000, seed=2)
    assert (first.reference_rows, first.current_rows) == (5000, 5000)


def test_numeric_drift_accepts_datetimes_with_nat() -> None:
    days = np.arange("2024-01-01", "2024-03-01", dtype="datetime64[D]")
    drift = numeric_drift("day", np.r_[days, np.datetime64("NaT")], days)
    assert drift.test == "ks" and drift.scores["reference_nonfinite"] == 1


def test_categorical_drift_rejects_negative_counts_and_ignores_zeros() -> None:
    with pytest.raises(UsageError):
        categorical_drift("c", {"a": -1, "b": 20}, {"a": 10, "b": 10})
    drift = categorical_drift("c", {"a": 20, "b": 20, "zero": 0}, {"a": 20, "b": 20})
    assert drift.test == "chi2" and drift.p_value == pytest.approx(1.0)


def test_bad_arguments_are_usage_errors() -> None:
    frame = pl.DataFrame({"x": [1.0] * 20})
    schema = Schema((Column("x", ColumnType.FLOAT),))
    with pytest.raises(UsageError):
        drift_report(frame, frame, schema, correction="fdr")
    with pytest.raises(UsageError):
        drift_report(frame, frame, schema, alpha=0.0)
    with pytest.raises(UsageError):
        drift_report(frame, frame, schema, columns=["nope"])


# --- adjust() -------------------------------------------------------------------------------------------------

P = [0.01, 0.04, 0.03, 0.005]


@pytest.mark.parametrize(
    ("method", "expected"),
    [
        # sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1 = 0.02, 0.03, 0.06, 0.04 -> running max
        ("holm", [0.03, 0.06, 0.06, 0.02]),
        ("bonferroni", [0.04, 0.16, 0.12, 0.02]),
        # sorted times 4/1, 4/2, 4/3, 4/4 = 0.02, 0.02, 0.04, 0.04 -> running min from the top
        ("bh", [0.02, 0.04, 0.04, 0.02]),
    ],
)
def test_adjust_hand_checked(method: str, expected: list[float]) -> None:
    assert adjust(P, method) == pytest.approx(expected)


@pytest.mark.parametrize("method", ["holm", "bonferroni", "bh"])
def test_adjust_is_monotone_clipped_and_handles_empty(method: str) -> None:
    p = np.random.default_rng(9).random(200) ** 3
    adjusted = np.asarray(adjust(list(p), method))
    order = np.argsort(p)
    assert np.all(np.diff(adjusted[order]) >= 0)
    assert np.all((adjusted >= p) & (adjusted <= 1.0))
    assert adjust([], method) == []
    expected = [0.9, 0.9] if method == "bh" else [1.0, 1.0]  # BH: 0.8 * 2/1 = 1.6, lowered to 0.9 * 2/2
    assert adjust([0.9, 0.8], method) == expected


def test_adjust_rejects_bad_input() -> None:
    with pytest.raises(UsageError):
        adjust([0.1, float("nan")])
    with pytest.raises(UsageError):
        adjust([0.1], "sidak")


# --- serialisation --------------------------------------------------------------------------------------------


def test_report_json_round_trip() -> None:
    g = np.random.default_rng(10)
    reference = _shares_frame(g, 3000, SEGMENTS)
    current = _shares_frame(g, 3000, {**SEGMENTS, "new": 0.2})
    report = drift_report(reference, current, SEGMENT_SCHEMA, label_column="label", correction="bh")
    data = json.loads(json.dumps(report.to_json()))
    assert data["drifted"] is True and data["columns"][0]["kind"] == "categorical"
    assert DriftReport.from_json(data) == report
    plain = DriftReport(0.05, "holm", (ColumnDrift("x", DriftKind.NUMERIC, "none", 0.0, 1.0, 1.0, False),))
    assert DriftReport.from_json(json.loads(json.dumps(plain.to_json()))) == plain
