"""Stage changes: promote, archive and roll back, each only when the project's promotion policy holds.

A promotion is checked (signature and files, scan, lineage, training data, evaluations, the drop against
production), then either applied at once or, when the target stage needs approvers, turned into an
approval request bound to the version's content and target. The approving vote re-checks everything in
its own transaction and makes the change there: nothing moves unless every requirement holds at that
moment. Production (promotion and rollback) also needs the requester's TOTP step-up.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import Connection, insert, select

from mlwarden.audit.clock import format_ts, utcnow
from mlwarden.domain.actions import Action
from mlwarden.domain.events import DetailValue, Resource
from mlwarden.errors import GateBlocked
from mlwarden.registry.policy import PromotionPolicy, StagePolicy, policy_from_json
from mlwarden.registry.refs import NEXT_STAGES, ModelRef, Stage
from mlwarden.service import approvals
from mlwarden.service.context import ServiceContext
from mlwarden.service.door import Applied, Refusal
from mlwarden.service.model_files import problems
from mlwarden.service.model_store import (
    ModelVersion,
    current_stages,
    insert_stage,
    production_versions,
    resolve_version,
    unaccepted_inputs,
    version_row,
)
from mlwarden.store.tables import model_policies, next_seq

PROMOTE_KIND = "model.promote"
StepUp = Callable[[str | None, Action, Resource], None]


@dataclass(frozen=True)
class Requirement:
    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class Plan:
    """A stage change as asked: the version, where it goes, and under which rule."""

    version: ModelVersion
    to: Stage
    rollback: bool = False

    @property
    def digest(self) -> str:
        """What an approval binds to: this model, this version's content, this target (never another)."""
        text = json.dumps(
            [
                self.version.project,
                self.version.name,
                self.version.version,
                self.version.digest,
                self.to.value,
                self.rollback,
            ]
        )
        return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


# -- the policy document ---------------------------------------------------------------------------------


def stored_policy(conn: Connection, project: str) -> PromotionPolicy:
    query = select(model_policies.c.document).where(model_policies.c.project == project)
    document = conn.execute(query.order_by(model_policies.c.seq.desc()).limit(1)).scalar()
    return PromotionPolicy() if document is None else policy_from_json(json.loads(document))


def insert_policy(conn: Connection, project: str, policy: PromotionPolicy, actor: str) -> None:
    conn.execute(
        insert(model_policies).values(
            project=project,
            seq=next_seq(conn, model_policies, model_policies.c.project == project),
            document=json.dumps(policy.document, sort_keys=True),
            digest=policy.digest,
            actor=actor,
            at=format_ts(utcnow()),
        )
    )


# -- requirements ----------------------------------------------------------------------------------------


def requirements(conn: Connection, plan: Plan, rule: StagePolicy, file_problems: list[str]) -> list[Requirement]:
    """Every requirement of the target stage but the approvals, each with what was found."""
    version = plan.version
    found = [Requirement("signature", not file_problems, "; ".join(file_problems) or "valid; every file intact")]
    if rule.require_scan_clean:
        verdict = version.scan.get("verdict")
        found.append(
            Requirement("scan", verdict == "clean", f"model-file scan: {verdict} ({version.scan.get('summary')})")
        )
    if rule.require_lineage:
        found.append(
            Requirement(
                "lineage",
                not version.external,
                "external model: no run on record" if version.external else f"run {version.run_id}",
            )
        )
    if rule.require_accepted_data:
        found.append(_training_data(conn, version))
    if not plan.rollback:
        found += [_evaluation(conn, version, e.metric, e.dataset, e.min, e.max) for e in rule.evaluations]
        found += [
            _drop(conn, version, d.metric, d.dataset, d.drop, d.higher)
            for d in rule.max_drop
            if plan.to is Stage.PRODUCTION
        ]
    return found


def _training_data(conn: Connection, version: ModelVersion) -> Requirement:
    bad = unaccepted_inputs(conn, version.project, version.inputs)
    shown = ", ".join(f"{u['dataset']}@{u['version']}" for u in version.inputs) or "none on record"
    return Requirement("training_data", not bad, "; ".join(bad) or f"accepted by the gate: {shown}")


def _dataset_version(conn: Connection, project: str, ref: str) -> tuple[str, int] | None:
    """(dataset id, version) a policy's dataset reference names: the version it names, or the newest
    version the gate accepted."""
    from mlwarden.data.versions import Reference
    from mlwarden.service.dataset_gate import choose_reference
    from mlwarden.service.dataset_store import require_dataset, resolve, versions_of

    parsed = Reference.parse(ref)
    if parsed.name is None or parsed.number is not None or parsed.digest is not None:
        dataset, version = resolve(conn, project, parsed)
        return dataset.id, version.number
    dataset = require_dataset(conn, project, parsed.name)
    chosen = choose_reference(conn, dataset, list(versions_of(conn, dataset)), None)
    return None if chosen is None else (dataset.id, chosen.number)


def _measured(conn: Connection, version: ModelVersion, metric: str, dataset_ref: str) -> tuple[float | None, str]:
    from mlwarden.service.models import evaluations_of

    target = _dataset_version(conn, version.project, dataset_ref)
    if target is None:
        return None, f"{dataset_ref} has no accepted version"
    runs = [
        e
        for e in evaluations_of(conn, version)
        if (e["dataset_id"], e["dataset_version"]) == target and e["model_digest"] == version.digest
    ]
    value = runs[-1]["metrics"].get(metric) if runs else None
    where = runs[-1]["dataset"] if runs else dataset_ref
    return (None if value is None else float(value)), where


def _evaluation(
    conn: Connection, version: ModelVersion, metric: str, dataset: str, low: float | None, high: float | None
) -> Requirement:
    name = f"evaluation {metric} on {dataset}"
    value, where = _measured(conn, version, metric, dataset)
    if value is None:
        return Requirement(
            name, False, f"no {metric} measured on {where}: run `mlwarden model evaluate {version.ref} {where}`"
        )
    ok = (low is None or value >= low) and (high is None or value <= high)
    bounds = " and ".join(
        b for b in (f">= {low}" if low is not None else "", f"<= {high}" if high is not None else "") if b
    )
    return Requirement(name, ok, f"{metric} = {value:.4f} on {where} (needs {bounds})")


def _drop(
    conn: Connection, version: ModelVersion, metric: str, dataset: str, limit: float, higher: bool
) -> Requirement:
    name = f"max drop of {metric} on {dataset}"
    holders = [
        v for v, s in current_stages(conn, version.model_id).items() if s is Stage.PRODUCTION and v != version.version
    ]
    if not holders:
        return Requirement(name, True, "no version in production to compare with")
    current = version_row(conn, version.project, version.name, max(holders))
    mine, where = _measured(conn, version, metric, dataset)
    theirs, _ = _measured(conn, current, metric, dataset)
    if mine is None or theirs is None:
        missing = version.ref if mine is None else current.ref
        return Requirement(name, False, f"no {metric} of {missing} on {where}: evaluate both on the same data")
    drop = theirs - mine if higher else mine - theirs
    return Requirement(
        name,
        drop <= limit,
        f"{metric} {mine:.4f} vs {theirs:.4f} in production ({current.ref}): drop {drop:+.4f}, at most {limit}",
    )


# -- changing stages -------------------------------------------------------------------------------------


def rule_for(conn: Connection, plan: Plan) -> tuple[StagePolicy, int]:
    """The stage's policy and how many approvals this change needs."""
    rule = stored_policy(conn, plan.version.project).for_stage(plan.to)
    if not plan.rollback:
        return rule, rule.approvals
    history = production_versions(conn, plan.version.model_id)
    holders = [v for v, s in current_stages(conn, plan.version.model_id).items() if s is Stage.PRODUCTION]
    previous = [v for v in history if v not in holders]
    return rule, (
        rule.rollback_approvals if previous and previous[-1] == plan.version.version else max(rule.approvals, 1)
    )


def check_move(conn: Connection, plan: Plan) -> None:
    """Refuse a move the stage graph does not allow (a rollback: only to a former production version)."""
    stage = current_stages(conn, plan.version.model_id)[plan.version.version]
    if plan.rollback:
        if plan.version.version not in production_versions(conn, plan.version.model_id):
            raise Refusal(f"{plan.version.ref} was never in production: nothing to roll back to")
        if stage is Stage.PRODUCTION:
            raise Refusal(f"{plan.version.ref} is in production already")
        return
    if plan.to not in NEXT_STAGES[stage]:
        allowed = ", ".join(sorted(NEXT_STAGES[stage])) or "nowhere"
        raise Refusal(f"{plan.version.ref} is in {stage}: it can go to {allowed}, not {plan.to}")


def transition(conn: Connection, plan: Plan, actor: str, request_id: str | None) -> dict[str, DetailValue]:
    """Make the move; a version entering production archives the one it replaces, in the same transaction."""
    replaced = []
    if plan.to is Stage.PRODUCTION:
        for held, stage in sorted(current_stages(conn, plan.version.model_id).items()):
            if stage is Stage.PRODUCTION:
                insert_stage(
                    conn,
                    plan.version.model_id,
                    held,
                    Stage.ARCHIVED,
                    actor,
                    request_id=request_id,
                    reason=f"replaced by {plan.version.ref}",
                )
                replaced.append(held)
    reason = "rollback" if plan.rollback else "promotion"
    insert_stage(
        conn, plan.version.model_id, plan.version.version, plan.to, actor, request_id=request_id, reason=reason
    )
    return {
        "ref": plan.version.ref,
        "stage": plan.to.value,
        "replaced": ",".join(map(str, replaced)) or None,
        "rollback": plan.rollback,
    }


def request_or_move(ctx: ServiceContext, plan: Plan, step_up: StepUp, totp: str | None) -> dict[str, Any]:
    """The one path of promote, archive and rollback: check, then move now or open an approval request."""
    found = problems(ctx, plan.version)
    resource = plan.version.resource(plan.to)
    if plan.to is Stage.PRODUCTION:
        step_up(totp, Action.MODEL_PROMOTE, resource)
    # Read as MODEL_READ: a MODEL_PROMOTE decision here would consume the step-up the change needs.
    checked = ctx.door.read(
        ctx.actor, Action.MODEL_READ, resource, lambda conn: checked_requirements(conn, plan, found)
    )
    failed = [r for r in checked if not r.ok]
    if failed:
        reason = f"{plan.version.ref} cannot enter {plan.to}: " + "; ".join(f"{r.name}: {r.detail}" for r in failed)
        ctx.door.record_denial(ctx.actor, Action.MODEL_PROMOTE, resource, reason)
        raise GateBlocked(reason, hint="see `mlwarden model promote --check` for every requirement")

    def apply(conn: Connection) -> Applied[dict[str, Any]]:
        current = _checked_again(conn, plan, found)
        rule, needed = rule_for(conn, plan)
        value: dict[str, Any] = {
            "ref": current.ref,
            "to": plan.to.value,
            "rollback": plan.rollback,
            "requirements": [asdict(r) for r in checked],
        }
        if needed == 0:
            moved = transition(conn, plan, ctx.actor.name, None)
            value.update(moved, status="moved")
            return Applied(
                value, digest_after=current.digest, details={"to": plan.to.value, "status": "moved", **moved}
            )
        request_id = approvals.open_request(
            conn,
            kind=PROMOTE_KIND,
            project=current.project,
            resource=current.resource(plan.to),
            digest=plan.digest,
            author_id=ctx.actor.user_id,
            required_count=needed,
            required_role=rule.approver_role,
            payload={
                "model_id": current.model_id,
                "name": current.name,
                "version": current.version,
                "to": plan.to.value,
                "rollback": plan.rollback,
            },
        )
        value.update(status="pending", request=request_id, approvals_needed=needed)
        details: dict[str, DetailValue] = {"to": plan.to.value, "status": "pending", "request": request_id}
        return Applied(value, digest_after=current.digest, details=details)

    return ctx.door.run(ctx.actor, Action.MODEL_PROMOTE, resource, apply)


def checked_requirements(conn: Connection, plan: Plan, found: list[str]) -> list[Requirement]:
    """Whether the move is allowed, then every requirement of the target stage but the approvals."""
    try:
        check_move(conn, plan)
        move = Requirement("stage", True, f"{plan.version.ref} may move to {plan.to}")
    except Refusal as refused:
        move = Requirement("stage", False, refused.reason)
    rule, _ = rule_for(conn, plan)
    return [move, *requirements(conn, plan, rule, found)]


def _checked_again(conn: Connection, plan: Plan, found: list[str]) -> ModelVersion:
    """Inside the change's transaction: the same content, and every requirement still holds."""
    current = version_row(conn, plan.version.project, plan.version.name, plan.version.version)
    if current.digest != plan.version.digest:
        raise Refusal(f"{current.ref} changed while it was being checked")
    failed = [r for r in checked_requirements(conn, plan, found) if not r.ok]
    if failed:
        raise Refusal(f"{current.ref}: " + "; ".join(f"{r.name}: {r.detail}" for r in failed))
    return current


def plan_for(conn: Connection, project: str, ref: ModelRef, to: Stage, *, rollback: bool = False) -> Plan:
    return Plan(resolve_version(conn, project, ref), to, rollback)


def _promote_approved(
    conn: Connection, request: approvals.ApprovalRequest, ctx: ServiceContext
) -> dict[str, DetailValue]:
    """The approving vote: re-check the same content against every requirement, then move."""
    payload = request.payload
    current = version_row(conn, request.project, payload["name"], int(payload["version"]))
    plan = Plan(current, Stage(payload["to"]), bool(payload["rollback"]))
    if plan.digest != request.digest:
        raise Refusal(f"request {request.id} was for other content than {current.ref} has now: a stale approval")
    _checked_again(conn, plan, problems(ctx, current))
    return transition(conn, plan, request.author, request.id)


approvals.on_approved(PROMOTE_KIND, _promote_approved)
