"""The ingestion gate: contract findings, checks, then the batch-level steps, judged by one policy.

Batch-level steps are ``GateStep`` plugins: drift is built in, and the poisoning detectors register
under the entry point ``mlwarden.detectors`` without touching this module. A step that raises becomes
an ``error`` finding, which the default policy rejects on (fail closed, DESIGN invariant 4).
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

from mlwarden.data.schema import ColumnType
from mlwarden.defense.policy import DriftSettings, Judgement, Policy, judge
from mlwarden.quality.evidence import Evidence
from mlwarden.quality.interface import Finding, GateStep, Outcome

if TYPE_CHECKING:
    from mlwarden.quality.drift_tests import ColumnDrift

DETECTORS = "mlwarden.detectors"
MIN_ROWS = 10


class DriftStep(GateStep):
    """Each column of the batch against the reference's sample, corrected across columns (quality.drift)."""

    step = "drift"

    def __init__(self, settings: DriftSettings) -> None:
        self.settings = settings

    def run(self, evidence: Evidence) -> list[Finding]:
        if evidence.reference is None:
            return [Finding("drift", "drift", Outcome.SKIPPED, "no accepted version to compare with yet")]
        if min(evidence.current.num_rows, evidence.reference.num_rows) < MIN_ROWS:
            message = f"too few rows to test drift ({evidence.current.num_rows} vs {evidence.reference.num_rows})"
            return [Finding("drift", "drift", Outcome.SKIPPED, message)]
        from mlwarden.quality.drift import drift_report

        columns, skipped = self._columns(evidence)
        report = drift_report(
            evidence.reference,
            evidence.current,
            evidence.schema,
            alpha=self.settings.alpha,
            correction=self.settings.correction,
            label_column=evidence.label_column,
            columns=columns,
        )
        found = skipped + [_drift_finding("drift", c) for c in report.columns]
        if report.label is not None:
            found.append(_drift_finding("label", report.label))
        return found

    def _columns(self, evidence: Evidence) -> tuple[list[str], list[Finding]]:
        """The columns to test: the policy's, or every column but keys and clocks.

        Time columns and identifiers (integers all distinct in the reference) move with every append by
        design: testing them would quarantine every healthy batch. A policy that lists columns tests
        exactly those.
        """
        if self.settings.columns is not None:
            return list(self.settings.columns), []
        reference = evidence.reference
        chosen, skipped = [], []
        for column in evidence.schema.columns:
            if column.name == evidence.label_column:
                continue
            reason = None
            if column.type in (ColumnType.DATE, ColumnType.TIMESTAMP, ColumnType.TIMESTAMP_UTC):
                reason = "a time column: it moves with every batch"
            elif column.type is ColumnType.INT and reference is not None and _all_distinct(reference, column.name):
                reason = "an identifier: every value in the reference is distinct"
            if reason is None:
                chosen.append(column.name)
            else:
                message = f"{column.name}: not tested ({reason}; list it under drift.columns to test it)"
                skipped.append(Finding("drift", f"drift.{column.name}", Outcome.SKIPPED, message, column.name))
        return chosen, skipped


def _all_distinct(table: pa.Table, name: str) -> bool:
    values = table.column(name).drop_null()
    return len(values) >= MIN_ROWS and len(pc.unique(values)) == len(values)


def _drift_finding(step: str, drift: ColumnDrift) -> Finding:
    name = "label.shift" if step == "label" else f"drift.{drift.column}"
    scores = {"statistic": drift.statistic, "p_value": drift.p_value, "adjusted_p": drift.adjusted_p, **drift.scores}
    if drift.test == "none":
        return Finding(step, name, Outcome.SKIPPED, f"{drift.column}: not tested ({drift.reason})", drift.column)
    what = f"{drift.column}: {drift.test} statistic {drift.statistic:.4g}, adjusted p {drift.adjusted_p:.3g}"
    outcome = Outcome.FAILED if drift.drifted else Outcome.PASSED
    message = ("distribution moved: " if drift.drifted else "no drift: ") + what
    return Finding(step, name, outcome, message, drift.column, scores={k: float(v) for k, v in scores.items()})


def detectors() -> list[GateStep]:
    """The installed detector plugins (entry point ``mlwarden.detectors``), each made with no arguments."""
    found: list[GateStep] = []
    for ep in sorted(entry_points(group=DETECTORS), key=lambda e: e.name):
        loaded = ep.load()
        if isinstance(loaded, type) and issubclass(loaded, GateStep):
            found.append(loaded())
    return found


def run_steps(evidence: Evidence, steps: Iterable[GateStep]) -> list[Finding]:
    findings: list[Finding] = []
    for step in steps:
        try:
            findings += step.run(evidence)
        except Exception as exc:  # a step that cannot judge blocks the gate, with its reason
            message = f"could not run {step.step}: {type(exc).__name__}: {exc}"
            findings.append(Finding(step.step, f"{step.step}.error", Outcome.ERROR, message))
    return findings


def judge_batch(static: list[Finding], evidence: Evidence | None, policy: Policy) -> Judgement:
    """The verdict on a batch: its contract and check findings, then (when it was readable) the steps."""
    findings = list(static)
    if evidence is not None:
        findings += run_steps(evidence, [DriftStep(policy.drift), *detectors()])
    return judge(findings, policy)
