"""The gate's policy: what each finding does to an ingestion's verdict.

A policy file (YAML or TOML, docs/validation.md)::

    version: 1
    severity:              # by step, for a failed finding
      contract: reject     # the batch does not fit the dataset's columns and types
      check: reject        # a contract check failed
      drift: quarantine    # a column's distribution moved
      label: quarantine    # the label distribution moved
      poisoning: quarantine  # a poisoning detector flagged more rows than clean data gives
      error: reject        # a check or detector could not run: fail closed
      skipped: info        # nothing to test (too few rows, no reference yet)
    overrides:             # failed or errored findings by name; shell patterns; the first match wins
      "age.min": warn
      "drift.*": quarantine
    drift:
      alpha: 0.01          # family-wise false-alarm rate per batch, after the correction
      correction: holm     # holm, bonferroni or bh
      reference: accepted  # the latest accepted version, or a version number to pin
      columns: [a, b]      # optional: test only these

An empty policy is the default below, which is strict: an error or a failed check rejects.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from mlwarden.quality.contract import ContractError
from mlwarden.quality.interface import SEVERITY_ORDER, Finding, Outcome, Severity

POLICY_VERSION = 1
STEP_DEFAULTS: dict[str, Severity] = {
    "contract": Severity.REJECT,
    "check": Severity.REJECT,
    "drift": Severity.QUARANTINE,
    "label": Severity.QUARANTINE,
    "detector": Severity.QUARANTINE,
    "poisoning": Severity.QUARANTINE,  # the row-level poisoning detectors (defense.detectors.gate_step)
    "error": Severity.REJECT,
    "skipped": Severity.INFO,
}
CORRECTIONS = ("holm", "bonferroni", "bh")


class Verdict:
    ACCEPTED = "accepted"
    QUARANTINED = "quarantined"
    REJECTED = "rejected"


@dataclass(frozen=True)
class DriftSettings:
    alpha: float = 0.01
    correction: str = "holm"
    reference: int | None = None  # None: the latest accepted version
    columns: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Policy:
    severity: dict[str, Severity] = field(default_factory=lambda: dict(STEP_DEFAULTS))
    overrides: tuple[tuple[str, Severity], ...] = ()
    drift: DriftSettings = DriftSettings()

    def severity_of(self, finding: Finding) -> Severity | None:
        """What ``finding`` does; None when it passed."""
        if finding.outcome is Outcome.PASSED:
            return None
        if finding.outcome is Outcome.SKIPPED:  # nothing was tested: overrides name what a finding found
            return self.severity["skipped"]
        for pattern, level in self.overrides:
            if fnmatch.fnmatchcase(finding.name, pattern):
                return level
        if finding.outcome is Outcome.ERROR:
            return self.severity["error"]
        if finding.severity is not None:
            return finding.severity
        return self.severity.get(finding.step, self.severity["detector"])

    def to_json(self) -> dict[str, Any]:
        drift: dict[str, Any] = {
            "alpha": self.drift.alpha,
            "correction": self.drift.correction,
            "reference": self.drift.reference if self.drift.reference is not None else "accepted",
        }
        if self.drift.columns is not None:
            drift["columns"] = list(self.drift.columns)
        return {
            "version": POLICY_VERSION,
            "severity": {k: v.value for k, v in self.severity.items()},
            "overrides": {pattern: level.value for pattern, level in self.overrides},
            "drift": drift,
        }

    def digest(self) -> str:
        canonical = json.dumps(self.to_json(), sort_keys=True, separators=(",", ":")).encode()
        return "sha256:" + hashlib.sha256(canonical).hexdigest()


DEFAULT_POLICY = Policy()


def policy_from_json(data: dict[str, Any]) -> Policy:
    unknown = sorted(set(data) - {"version", "severity", "overrides", "drift"})
    if unknown:
        raise ContractError(f"the policy: unknown key(s) {', '.join(map(repr, unknown))}")
    if data.get("version", POLICY_VERSION) != POLICY_VERSION:
        raise ContractError(f"policy version {data.get('version')!r} is not supported (this is {POLICY_VERSION})")
    severity = dict(STEP_DEFAULTS)
    for step, level in _mapping(data.get("severity", {}), "severity").items():
        if step not in STEP_DEFAULTS:
            raise ContractError(f"severity: unknown step {step!r}", hint="steps: " + ", ".join(STEP_DEFAULTS))
        severity[step] = _level(level, f"severity.{step}")
    overrides = tuple(
        (str(pattern), _level(level, f"overrides.{pattern}"))
        for pattern, level in _mapping(data.get("overrides", {}), "overrides").items()
    )
    return Policy(severity, overrides, _drift(_mapping(data.get("drift", {}), "drift")))


def _drift(data: dict[str, Any]) -> DriftSettings:
    unknown = sorted(set(data) - {"alpha", "correction", "reference", "columns"})
    if unknown:
        raise ContractError(f"drift: unknown key(s) {', '.join(map(repr, unknown))}")
    alpha = data.get("alpha", 0.01)
    if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not 0 < alpha < 1:
        raise ContractError("drift.alpha must be a number between 0 and 1, e.g. 0.01")
    correction = data.get("correction", "holm")
    if correction not in CORRECTIONS:
        raise ContractError(f"drift.correction must be one of {', '.join(CORRECTIONS)}")
    reference = data.get("reference", "accepted")
    if reference != "accepted" and (isinstance(reference, bool) or not isinstance(reference, int) or reference < 1):
        raise ContractError("drift.reference must be `accepted` or a version number")
    columns = data.get("columns")
    if columns is not None and (not isinstance(columns, list) or not all(isinstance(c, str) for c in columns)):
        raise ContractError("drift.columns must be a list of column names")
    return DriftSettings(
        float(alpha),
        str(correction),
        None if reference == "accepted" else int(reference),
        tuple(columns) if columns is not None else None,
    )


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ContractError(f"{where} must be a mapping")
    return value


def _level(value: Any, where: str) -> Severity:
    try:
        return Severity(value)
    except ValueError:
        raise ContractError(f"{where}: {value!r} is not a severity", hint="info, warn, quarantine or reject") from None


@dataclass(frozen=True)
class Judgement:
    """The gate's verdict on one batch, with every finding and the ones that decided it."""

    verdict: str
    findings: tuple[Finding, ...]
    deciding: tuple[str, ...]  # names of the findings at the verdict's severity
    policy_digest: str

    def to_json(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "deciding": list(self.deciding),
            "policy": self.policy_digest,
            "findings": [f.to_json() for f in self.findings],
        }


def judge(findings: list[Finding], policy: Policy) -> Judgement:
    """Rejected if any finding rejects, else quarantined if any quarantines, else accepted."""
    levels = [(f, policy.severity_of(f)) for f in findings]
    worst = max((SEVERITY_ORDER.index(level) for _, level in levels if level is not None), default=-1)
    if worst >= SEVERITY_ORDER.index(Severity.REJECT):
        verdict, at = Verdict.REJECTED, Severity.REJECT
    elif worst >= SEVERITY_ORDER.index(Severity.QUARANTINE):
        verdict, at = Verdict.QUARANTINED, Severity.QUARANTINE
    else:
        verdict, at = Verdict.ACCEPTED, None
    deciding = tuple(f.name for f, level in levels if at is not None and level is at)
    return Judgement(verdict, tuple(findings), deciding, policy.digest())
