"""The poisoning step in the ingestion gate: registered by entry point, judged by the gate's policy."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from mlwarden.data.columns import infer_schema
from mlwarden.defense.detectors.gate_step import PoisoningStep
from mlwarden.defense.gate import detectors, judge_batch, run_steps
from mlwarden.defense.policy import DEFAULT_POLICY, Verdict, policy_from_json
from mlwarden.quality.evidence import Evidence
from mlwarden.quality.interface import Finding, Outcome, Severity
from tests.defense.kit import backdoor, blobs, flip


def table(X: np.ndarray, y: np.ndarray | None, *, extra: bool = True) -> pa.Table:
    data: dict[str, object] = {f"f{i}": X[:, i] for i in range(X.shape[1])}
    if extra:
        data["shop"] = [f"s{i % 5}" for i in range(len(X))]
        data["id"] = np.arange(len(X))
    if y is not None:
        data["label"] = y
    return pa.table(data)


def evidence(current: pa.Table, reference: pa.Table | None, label: str | None = "label") -> Evidence:
    return Evidence(infer_schema(current.schema), label, current, current.num_rows, reference, 1 if reference else None)


@pytest.fixture(scope="module")
def data() -> dict[str, Any]:
    X, y = blobs(3000, d=8)
    return {"ref": table(X[:1500], y[:1500]), "X": X[1500:], "y": y[1500:]}


def by_name(findings: list[Finding]) -> dict[str, Finding]:
    return {f.name: f for f in findings}


def test_the_step_is_registered_as_a_detector_plugin() -> None:
    assert any(isinstance(step, PoisoningStep) for step in detectors())


def test_a_clean_batch_is_accepted_and_a_flipped_one_quarantined(data: dict[str, Any]) -> None:
    clean = judge_batch([], evidence(table(data["X"], data["y"]), data["ref"]), DEFAULT_POLICY)
    assert clean.verdict == Verdict.ACCEPTED, [f.message for f in clean.findings if f.outcome is Outcome.FAILED]
    noisy, _ = flip(data["y"], 0.1)
    judged = judge_batch([], evidence(table(data["X"], noisy), data["ref"]), DEFAULT_POLICY)
    assert judged.verdict == Verdict.QUARANTINED
    assert "poisoning.confident_labels" in judged.deciding
    finding = by_name(list(judged.findings))["poisoning.confident_labels"]
    assert 0.08 <= finding.scores["flagged_fraction"] <= 0.13 and finding.failed_rows > 0
    assert finding.sample and "labelled" in finding.sample[0]["reason"]


def test_a_backdoored_batch_is_quarantined_not_rejected(data: dict[str, Any]) -> None:
    Xp, yp, _ = backdoor(data["X"], data["y"], 0.05)
    judged = judge_batch([], evidence(table(Xp, yp), data["ref"]), DEFAULT_POLICY)
    assert judged.verdict == Verdict.QUARANTINED
    assert {"poisoning.reference_outliers", "poisoning.spectral_signature"} <= set(judged.deciding)
    relaxed = policy_from_json({"severity": {"poisoning": "warn"}})
    assert judge_batch([], evidence(table(Xp, yp), data["ref"]), relaxed).verdict == Verdict.ACCEPTED


def test_a_small_backdoor_aimed_at_one_class_is_an_excess_in_that_class(data: dict[str, Any]) -> None:
    Xp, yp, _ = backdoor(data["X"], data["y"], 0.006)  # 9 rows of 1,500, all labelled class 0
    found = by_name(run_steps(evidence(table(Xp, yp), data["ref"]), [PoisoningStep()]))
    outliers = found["poisoning.reference_outliers"]
    assert outliers.outcome is Outcome.FAILED, outliers.message
    assert outliers.scores["p_value"] < 1e-3


def test_it_degrades_gracefully(data: dict[str, Any]) -> None:
    X, y = data["X"], data["y"]
    unlabelled = by_name(run_steps(evidence(table(X, None), data["ref"], None), [PoisoningStep()]))
    assert unlabelled["poisoning.labels"].outcome is Outcome.SKIPPED
    assert unlabelled["poisoning.reference_outliers"].outcome is Outcome.PASSED
    first = by_name(run_steps(evidence(table(X, y), None), [PoisoningStep()]))
    assert first["poisoning.reference"].outcome is Outcome.SKIPPED
    # no accepted rows to measure the label detectors' clean rate on: counted, never judged
    assert first["poisoning.confident_labels"].outcome is Outcome.SKIPPED
    assert "not judged" in first["poisoning.knn_labels"].message
    few = run_steps(evidence(table(X[:30], y[:30]), data["ref"]), [PoisoningStep()])
    assert [f.outcome for f in few] == [Outcome.SKIPPED] and "too few" in few[0].message
    assert DEFAULT_POLICY.severity_of(few[0]) == Severity.INFO


def test_labels_the_features_cannot_predict_are_not_judged(data: dict[str, Any]) -> None:
    rng = np.random.default_rng(5)
    random_labels = rng.integers(0, 2, len(data["y"]))
    found = by_name(run_steps(evidence(table(data["X"], random_labels), None), [PoisoningStep()]))
    assert found["poisoning.confident_labels"].outcome is Outcome.SKIPPED
    assert "not predictable" in found["poisoning.confident_labels"].message


def test_bad_columns_give_findings_not_errors(data: dict[str, Any]) -> None:
    X, y = data["X"], data["y"]
    odd = table(X, y).append_column("empty", pa.array([None] * len(y), pa.float64()))
    odd = odd.append_column("flat", pa.array([1.0] * len(y))).append_column(
        "when", pa.array([0] * len(y), pa.timestamp("us"))
    )
    findings = run_steps(evidence(odd, data["ref"]), [PoisoningStep()])
    assert all(f.outcome is not Outcome.ERROR for f in findings), [f.message for f in findings]
    one_class = run_steps(evidence(table(X, np.zeros(len(y), dtype=np.int64)), None), [PoisoningStep()])
    assert all(f.outcome is not Outcome.ERROR for f in one_class)
    only_ids = pa.table({"id": np.arange(100), "label": np.arange(100) % 2})
    nothing = run_steps(evidence(only_ids, None), [PoisoningStep()])
    assert [f.name for f in nothing] == ["poisoning.features"] and "identifier" in nothing[0].message


def events(start: int, n: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    return pa.table(
        {
            "event_ms": 1_700_000_000_000 + 250 * np.arange(start, start + n),
            "txn_id": [f"txn_{v:016x}" for v in rng.integers(0, 1 << 62, n).tolist()],
            "price": np.round(rng.lognormal(3.0, 1.0, n), 2),
            "rate": np.full(n, 0.1) + np.zeros(n) * rng.normal(size=n),
            "shop": [f"s{v}" for v in rng.integers(0, 40, n)],
        }
    )


def test_the_next_slice_of_an_event_log_is_not_poison() -> None:
    # new string ids and later timestamps are what every append of an event log brings; a constant
    # float column must not turn float noise in its spread into a signal either
    later = by_name(run_steps(evidence(events(10_000, 2_000, 2), events(0, 2_000, 1), None), [PoisoningStep()]))
    outliers = later["poisoning.reference_outliers"]
    assert outliers.outcome is Outcome.PASSED, outliers.message
    assert outliers.scores["flagged_fraction"] < 0.03


def test_rows_that_repeat_naturally_are_not_a_flood() -> None:
    rng = np.random.default_rng(4)

    def shops(n: int) -> pa.Table:  # three categorical columns: most rows have many exact twins
        return pa.table({"shop": rng.integers(0, 5, n), "tier": rng.choice(["a", "b"], n), "open": rng.random(n) < 0.5})

    first = by_name(run_steps(evidence(shops(1_000), None, None), [PoisoningStep()]))
    assert first["poisoning.duplicate_flood"].outcome is Outcome.SKIPPED
    assert "not judged" in first["poisoning.duplicate_flood"].message
    later = by_name(run_steps(evidence(shops(1_000), shops(1_000), None), [PoisoningStep()]))
    assert later["poisoning.duplicate_flood"].outcome is Outcome.PASSED


def test_a_flood_of_copies_is_judged_against_the_reference(data: dict[str, Any]) -> None:
    X, y = data["X"], data["y"]
    flood = np.vstack([X, np.repeat(X[:1], 150, axis=0)])
    found = by_name(run_steps(evidence(table(flood, np.r_[y, np.repeat(y[:1], 150)]), data["ref"]), [PoisoningStep()]))
    assert found["poisoning.duplicate_flood"].outcome is Outcome.FAILED
    assert found["poisoning.duplicate_flood"].scores["flagged"] >= 100


def test_a_50k_row_20_column_sample_is_judged_in_about_a_second() -> None:
    X, y = blobs(70_000, classes=4, d=20)
    current, reference = table(X[:50_000], y[:50_000], extra=False), table(X[50_000:], y[50_000:], extra=False)
    step = PoisoningStep()
    started = time.perf_counter()
    findings = step.run(evidence(current, reference))
    assert time.perf_counter() - started < 4.0  # ~1 s on a quiet 2-core machine; slack for a loaded CI
    assert "a uniform sample of 2000 of 50000 rows" in findings[0].message


def test_a_measured_clean_rate_is_judged_by_its_upper_bound() -> None:
    from mlwarden.defense.detectors.gate_step import upper_bound

    assert 0.0 < upper_bound(0, 1_000) < 0.01
    assert 0.11 < upper_bound(109, 1_000) < 0.15  # 10.9% of 1,000 rows leaves up to ~14% plausible
    assert upper_bound(109, 100_000) < upper_bound(109, 1_000) and upper_bound(5, 0) == 1.0
