"""The promotion policy: what a model version must pass to enter a stage (one document per project, a
section per target stage, YAML or TOML, strictly parsed: an unknown key is an error, never ignored).

    staging:
      evaluations:                     # measured by `model evaluate` on a dataset version
        - {metric: accuracy, min: 0.9, dataset: iris@3}
    production:
      approvals: 2                     # distinct approvers, never the author (at least 1 for production)
      max_drop:                        # against the version in production, on the same dataset version
        - {metric: accuracy, drop: 0.02, dataset: iris}

Every stage also requires, unless the policy turns it off: a clean model-file scan, training data the
ingestion gate accepted, and (production only) lineage, i.e. a run. A valid signature over intact files is
always required and cannot be turned off; nor can production's approver and TOTP step-up.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any

from mlwarden.access.roles import Role
from mlwarden.quality.contract import ContractError, _count, _flag, _known, _mapping
from mlwarden.registry.refs import Stage

POLICY_VERSION = 1
_STAGE_KEYS = {
    "approvals",
    "approver_role",
    "require_lineage",
    "require_scan_clean",
    "require_accepted_data",
    "evaluations",
    "max_drop",
    "rollback_approvals",
}


@dataclass(frozen=True)
class Evaluation:
    """``metric`` measured on ``dataset`` (a dataset reference; the newest accepted version when it names
    no version) must be at least ``min`` and at most ``max``."""

    metric: str
    dataset: str
    min: float | None = None
    max: float | None = None


@dataclass(frozen=True)
class MaxDrop:
    """``metric`` on ``dataset`` may fall at most ``drop`` below the production version's (``higher``:
    whether higher is better; for an error metric, a rise is the drop)."""

    metric: str
    dataset: str
    drop: float
    higher: bool = True


@dataclass(frozen=True)
class StagePolicy:
    approvals: int = 0
    approver_role: Role = Role.APPROVER
    require_lineage: bool = False
    require_scan_clean: bool = True
    require_accepted_data: bool = True
    evaluations: tuple[Evaluation, ...] = ()
    max_drop: tuple[MaxDrop, ...] = ()
    rollback_approvals: int = 1


DEFAULT_STAGES = {
    Stage.STAGING: StagePolicy(),
    Stage.PRODUCTION: StagePolicy(approvals=1, require_lineage=True),
    Stage.ARCHIVED: StagePolicy(require_scan_clean=False, require_accepted_data=False),
}


@dataclass(frozen=True)
class PromotionPolicy:
    stages: dict[Stage, StagePolicy] = field(default_factory=lambda: dict(DEFAULT_STAGES))
    document: dict[str, Any] = field(default_factory=dict)

    def for_stage(self, stage: Stage) -> StagePolicy:
        return self.stages.get(stage, DEFAULT_STAGES.get(stage, StagePolicy()))

    @property
    def digest(self) -> str:
        canonical = json.dumps(self.document, sort_keys=True, separators=(",", ":"))
        return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def policy_from_json(data: dict[str, Any]) -> PromotionPolicy:
    """A policy from its document (the stages it names replace the defaults; the others keep them)."""
    _known(data, {"version", *(s.value for s in Stage if s is not Stage.DEVELOPMENT)}, "the promotion policy")
    if data.get("version", POLICY_VERSION) != POLICY_VERSION:
        raise ContractError(f"promotion policy version {data.get('version')!r} is not supported")
    stages = dict(DEFAULT_STAGES)
    for name, spec in data.items():
        if name != "version":
            stage = Stage(name)
            stages[stage] = _stage(stage, _mapping(spec, name))
    return PromotionPolicy(stages, data)


def _stage(stage: Stage, spec: dict[str, Any]) -> StagePolicy:
    _known(spec, _STAGE_KEYS, stage.value)
    base = DEFAULT_STAGES.get(stage, StagePolicy())
    approvals = _count(spec.get("approvals"), f"{stage}.approvals")
    if stage is Stage.PRODUCTION and approvals is not None and approvals < 1:
        raise ContractError("production.approvals must be at least 1", hint="production always needs an approver")
    rollback = _count(spec.get("rollback_approvals"), f"{stage}.rollback_approvals")
    return StagePolicy(
        approvals=base.approvals if approvals is None else approvals,
        approver_role=_role(spec.get("approver_role", base.approver_role.value), f"{stage}.approver_role"),
        require_lineage=_flag(spec.get("require_lineage", base.require_lineage), f"{stage}.require_lineage"),
        require_scan_clean=_flag(spec.get("require_scan_clean", True), f"{stage}.require_scan_clean"),
        require_accepted_data=_flag(spec.get("require_accepted_data", True), f"{stage}.require_accepted_data"),
        evaluations=tuple(_evaluation(e, f"{stage}.evaluations") for e in _list(spec.get("evaluations", []), stage)),
        max_drop=tuple(_drop(d, f"{stage}.max_drop") for d in _list(spec.get("max_drop", []), stage)),
        rollback_approvals=max(1, base.rollback_approvals if rollback is None else rollback),
    )


def _list(value: Any, stage: Stage) -> list[Any]:
    if not isinstance(value, list):
        raise ContractError(f"{stage}: evaluations and max_drop must be lists")
    return value


def _role(value: Any, where: str) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise ContractError(f"{where}: unknown role {value!r}", hint="one of: " + ", ".join(Role)) from None


def _evaluation(value: Any, where: str) -> Evaluation:
    spec = _mapping(value, where)
    _known(spec, {"metric", "dataset", "min", "max"}, where)
    low, high = _number(spec.get("min"), f"{where}.min"), _number(spec.get("max"), f"{where}.max")
    if low is None and high is None:
        raise ContractError(f"{where}: give min, max or both for {spec.get('metric')!r}")
    return Evaluation(
        _word(spec.get("metric"), f"{where}.metric"), _word(spec.get("dataset"), f"{where}.dataset"), low, high
    )


def _drop(value: Any, where: str) -> MaxDrop:
    spec = _mapping(value, where)
    _known(spec, {"metric", "dataset", "drop", "higher_is_better"}, where)
    drop = _number(spec.get("drop"), f"{where}.drop")
    if drop is None or drop < 0:
        raise ContractError(f"{where}.drop must be a number >= 0")
    higher = _flag(spec.get("higher_is_better", True), f"{where}.higher_is_better")
    return MaxDrop(
        _word(spec.get("metric"), f"{where}.metric"), _word(spec.get("dataset"), f"{where}.dataset"), drop, higher
    )


def _number(value: Any, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ContractError(f"{where} must be a finite number")
    return float(value)


def _word(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value or len(value) > 256:
        raise ContractError(f"{where} must be a non-empty string")
    return value
