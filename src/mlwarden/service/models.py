"""The model registry through the one door: register signed versions, read them, verify, pull and load
them (refusing any whose signature or files do not match), evaluate them, and name them with aliases.
Stage changes are in service/promotion.py."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, insert, select

from mlwarden.audit.clock import format_ts, utcnow
from mlwarden.domain.actions import Action
from mlwarden.domain.digests import Digest
from mlwarden.domain.events import DetailValue, Resource
from mlwarden.errors import GateBlocked, IntegrityError, NotFound, PermissionDenied, UsageError
from mlwarden.registry.refs import ModelRef, Stage, check_alias, check_model_name
from mlwarden.service.context import ServiceContext
from mlwarden.service.dataset_changes import new_id
from mlwarden.service.dataset_store import chosen_project
from mlwarden.service.door import Applied, Refusal, access, mutation
from mlwarden.service.model_files import (
    manifest_digest,
    manifest_of_blob,
    materialize,
    model_path_in,
    problems,
    store_files,
    write_files,
)
from mlwarden.service.model_store import (
    ModelVersion,
    current_aliases,
    current_stages,
    insert_alias,
    insert_stage,
    metrics_digest,
    model_id_of,
    model_resource,
    next_version,
    require_model,
    resolve_version,
    stage_history,
    unaccepted_inputs,
    versions_of,
)
from mlwarden.store.tables import model_evaluations, model_versions, models, run_artifacts, run_ends, runs

MAX_SOURCE = 1024


class RegistryService:
    def __init__(self, ctx: ServiceContext, step_up: Callable[[str | None, Action, Resource], None]) -> None:
        self._ctx = ctx
        self._step_up = step_up

    def _project(self, project: str | None) -> str:
        return chosen_project(project, self._ctx.config.default_project)

    # -- registering -----------------------------------------------------------------------------------

    @mutation
    def register(
        self,
        name: str,
        artifact: str | Path,
        *,
        run: str | None = None,
        project: str | None = None,
        source: str | None = None,
    ) -> dict[str, Any]:
        """Register a new version of model ``name``, signed with the workspace's model key.

        With ``run``, ``artifact`` is the name of a file the run logged, or a path whose every file the
        run logged: the version inherits the run's inputs and metrics as lineage. Without, it is an
        external model (``source`` says where it came from): no lineage. A version is scanned first; a
        malicious one is refused, and only a clean one can be promoted.
        """
        project = self._project(project)
        check_model_name(name)
        if source is not None and len(source) > MAX_SOURCE:
            raise UsageError(f"--source is limited to {MAX_SOURCE} characters")
        # Decided first (a denial audited): nothing is read or stored for someone who may not register.
        self._ctx.door.read(self._ctx.actor, Action.MODEL_REGISTER, model_resource(project, name), lambda _c: None)
        files, layout = self._files(artifact, run)
        with tempfile.TemporaryDirectory(prefix="mlwarden-register-") as tmp:
            root = Path(tmp) / name  # a folder model's name in its signature is the model's
            write_files(self._ctx.blobs, files, root)
            staged = model_path_in(root, layout, files)
            scan = self._scan(staged)
            fmt = _format_of(staged)
            signature = _sign(self._ctx, staged)
        digest = manifest_digest(files)
        if scan["verdict"] == "malicious":
            raise GateBlocked(
                f"{artifact} is malicious by the model-file scanner: {scan['summary']}",
                hint="see `mlwarden scan` on the file; a malicious model is never registered",
            )

        def apply(conn: Connection) -> Applied[dict[str, Any]]:
            lineage = _lineage(conn, project, run, files) if run is not None else {"inputs": [], "metrics": {}}
            model_id = model_id_of(conn, project, name) or _create_model(conn, project, name, self._ctx.actor.name)
            number = next_version(conn, model_id)
            conn.execute(
                insert(model_versions).values(
                    model_id=model_id,
                    version=number,
                    digest=digest,
                    format=fmt,
                    layout=layout,
                    files=json.dumps(files),
                    run_id=run,
                    source=source,
                    inputs=json.dumps(lineage["inputs"]),
                    metrics=json.dumps(lineage["metrics"]),
                    scan=json.dumps(scan),
                    signature=signature,
                    author_id=str(self._ctx.actor.user_id),
                    actor=self._ctx.actor.name,
                    created_at=format_ts(utcnow()),
                )
            )
            insert_stage(conn, model_id, number, Stage.DEVELOPMENT, self._ctx.actor.name, reason="registered")
            value = {
                "model": name,
                "version": number,
                "ref": f"{name}@{number}",
                "digest": digest,
                "format": fmt,
                "run": run,
                "external": run is None,
                "scan": scan["verdict"],
                "stage": Stage.DEVELOPMENT.value,
            }
            details: dict[str, DetailValue] = {k: v for k, v in value.items() if k != "model"}
            resource = Resource("model_version", f"{project}/{name}@{number}", project)
            return Applied(value, resource=resource, digest_after=digest, details=details)

        return self._ctx.door.run(self._ctx.actor, Action.MODEL_REGISTER, model_resource(project, name), apply)

    def _files(self, artifact: str | Path, run: str | None) -> tuple[list[dict[str, Any]], str]:
        path = Path(artifact)
        if run is not None and not path.exists():
            with self._ctx.db.read() as conn:
                digest = conn.execute(
                    select(run_artifacts.c.digest).where(
                        run_artifacts.c.run_id == run, run_artifacts.c.name == str(artifact)
                    )
                ).scalar()
            if digest is None:
                raise NotFound(
                    f"run {run} has no artifact {str(artifact)!r} and no such file exists",
                    hint="see `mlwarden run show`",
                )
            return manifest_of_blob(self._ctx.blobs, Path(str(artifact)).name, Digest.parse(digest)), "file"
        return store_files(self._ctx.blobs, path), "directory" if path.is_dir() else "file"

    def _scan(self, path: Path) -> dict[str, Any]:
        from mlwarden.scan import scan_path
        from mlwarden.service.scans import ScanService

        report = scan_path([path], policy=ScanService(self._ctx, self._step_up).policy())
        worst = [f"{Path(f.path).name}: {f.verdict.value}" for f in report.files if not f.clean]
        return {
            "verdict": report.verdict.value,
            "files": [
                {"path": Path(f.path).name, "verdict": f.verdict.value, "format": f.format} for f in report.files
            ],
            "summary": "; ".join(worst[:5]) or "clean",
            "allowlist": report.allowlist_digest,
        }

    # -- reading ---------------------------------------------------------------------------------------

    def list_models(self, *, project: str | None = None) -> list[dict[str, Any]]:
        project = self._project(project)

        def fetch(conn: Connection) -> list[dict[str, Any]]:
            found = []
            names = conn.execute(
                select(models.c.id, models.c.name).where(models.c.project == project).order_by(models.c.name)
            )
            for model_id, name in names.all():
                stages = current_stages(conn, model_id)
                found.append(
                    {
                        "name": name,
                        "versions": len(stages),
                        "latest": max(stages) if stages else None,
                        "stages": {
                            s.value: sorted(v for v, st in stages.items() if st is s)
                            for s in Stage
                            if s in stages.values()
                        },
                        "aliases": current_aliases(conn, model_id),
                    }
                )
            return found

        target = Resource("model", f"{project}/*", project)
        return self._ctx.door.read(self._ctx.actor, Action.MODEL_READ, target, fetch)

    def show(self, ref: str, *, project: str | None = None) -> dict[str, Any]:
        """A version (stage, digest, signature status, lineage, scan, evaluations), or with a bare model
        name and no version, the model: every version and its stage history."""
        project = self._project(project)
        parsed = ModelRef.parse(ref)

        def fetch(conn: Connection) -> tuple[dict[str, Any], ModelVersion]:
            version = resolve_version(conn, project, parsed)
            model_id = version.model_id
            shown = describe(conn, version)
            stages = current_stages(conn, model_id)
            shown["versions"] = [
                {
                    "version": v.version,
                    "stage": stages[v.version].value,
                    "digest": v.digest,
                    "external": v.external,
                    "created_at": v.created_at,
                }
                for v in versions_of(conn, model_id)
            ]
            shown["history"] = stage_history(conn, model_id)
            return shown, version

        shown, version = self._ctx.door.read(self._ctx.actor, Action.MODEL_READ, self._target(project, parsed), fetch)
        found = problems(self._ctx, version)
        shown["signature"] = {"status": "valid" if not found else "invalid", "problems": found}
        return shown

    def verify(self, ref: str, *, project: str | None = None) -> dict[str, Any]:
        """Check a version's signature, its manifest and every file's bytes; ``ok`` only when all hold."""
        project = self._project(project)
        version = self._version(project, ModelRef.parse(ref))
        found = problems(self._ctx, version)
        return {"ref": version.ref, "digest": version.digest, "ok": not found, "problems": found}

    def compare(self, a: str, b: str, *, project: str | None = None) -> dict[str, Any]:
        """Metric deltas between two versions (run metrics, and evaluations on the same dataset
        versions); a change for the worse is flagged as degraded."""
        first, second = self.show(a, project=project), self.show(b, project=project)
        rows = []
        pairs = _metric_table(first), _metric_table(second)
        for key in sorted(pairs[0].keys() | pairs[1].keys()):
            x, y = pairs[0].get(key), pairs[1].get(key)
            delta = y - x if x is not None and y is not None else None
            rows.append({"metric": key, "a": x, "b": y, "delta": delta, "degraded": _degraded(key, delta)})
        return {
            "a": first["ref"],
            "b": second["ref"],
            "metrics": rows,
            "degraded": [r["metric"] for r in rows if r["degraded"]],
        }

    # -- content (audited) -----------------------------------------------------------------------------

    @access
    def pull(self, ref: str, out: str | Path, *, project: str | None = None) -> dict[str, Any]:
        """Write a version's files into the folder ``out`` with its signature beside them (model.sig);
        refuses, leaving nothing half-written, when the signature or a file does not match."""
        dest = Path(out)
        if dest.exists() and any(dest.iterdir()):
            raise UsageError(f"{dest} is not empty", hint="pull into a new or empty folder")
        version = self._hand_out(ref, project, "pull")
        with tempfile.TemporaryDirectory(
            prefix=".mlwarden-pull-", dir=dest.parent if dest.parent.exists() else None
        ) as tmp:
            staged = materialize(self._ctx, version, Path(tmp) / "model")
            path = dest / staged.name if version.layout == "file" else dest
            (Path(tmp) / "model" / "model.sig").write_text(version.signature, encoding="utf-8")
            dest.mkdir(parents=True, exist_ok=True)
            for item in (Path(tmp) / "model").iterdir():
                item.rename(dest / item.name)
        return {"ref": version.ref, "digest": version.digest, "path": str(path), "signature": str(dest / "model.sig")}

    @access
    def load(self, ref: str, *, project: str | None = None, trusted_types: tuple[str, ...] = ()) -> Any:
        """The model object, after its signature and every file verified (refuses otherwise)."""
        from mlwarden.registry.formats import load_model

        version = self._hand_out(ref, project, "load")
        with tempfile.TemporaryDirectory(prefix="mlwarden-load-") as tmp:
            return load_model(materialize(self._ctx, version, Path(tmp)), trusted_types=trusted_types)

    def _hand_out(self, ref: str, project: str | None, what: str) -> ModelVersion:
        project = self._project(project)
        parsed = ModelRef.parse(ref)
        version = self._version(project, parsed)
        found = problems(self._ctx, version)

        refused: list[bool] = []  # set when the door allowed the hand-out and this check refused it

        def apply(conn: Connection) -> Applied[ModelVersion]:
            current = resolve_version(conn, project, parsed)
            if found:
                refused.append(True)
                raise Refusal(f"{version.ref} does not verify: {'; '.join(found)}")
            if current.digest != version.digest:
                raise Refusal(f"{version.ref} changed while it was being checked")
            return Applied(current, digest_after=current.digest, details={"what": what, "ref": current.ref})

        try:
            return self._ctx.door.run(self._ctx.actor, Action.MODEL_PULL, self._target(project, parsed), apply)
        except PermissionDenied:
            if refused:  # audited as a denied hand-out; said as what it is
                raise IntegrityError(
                    f"refusing to hand out {version.ref}: {'; '.join(found)}",
                    hint="the registry's copy changed outside mlwarden: see `mlwarden model verify`, `audit verify`",
                ) from None
            raise

    # -- evaluations and aliases -----------------------------------------------------------------------

    @mutation
    def evaluate(
        self, ref: str, dataset: str, *, project: str | None = None, label: str | None = None
    ) -> dict[str, Any]:
        """Measure a version on a dataset version the gate accepted (its label column, or ``label``, as
        the truth) and record the metrics, bound to both digests: what promotion policies read."""
        from mlwarden.registry.evaluation import evaluate_on

        project = self._project(project)
        parsed = ModelRef.parse(ref)
        version, table, declared, data = self._evaluation_inputs(project, parsed, dataset)
        with tempfile.TemporaryDirectory(prefix="mlwarden-eval-") as tmp:
            from mlwarden.registry.formats import load_model

            model = load_model(materialize(self._ctx, version, Path(tmp)))
        label = label or declared
        if label is None:
            raise UsageError(f"{data['ref']} has no label column", hint="name it with --label COLUMN")
        metrics = evaluate_on(model, table, label)

        def apply(conn: Connection) -> Applied[dict[str, Any]]:
            current = resolve_version(conn, project, ModelRef(version.name, version.version))
            evaluation = new_id("eval_")
            conn.execute(
                insert(model_evaluations).values(
                    id=evaluation,
                    model_id=current.model_id,
                    version=current.version,
                    model_digest=current.digest,
                    dataset_id=data["dataset_id"],
                    dataset_version=data["version"],
                    dataset_digest=data["digest"],
                    metrics=json.dumps(metrics),
                    actor=self._ctx.actor.name,
                    at=format_ts(utcnow()),
                )
            )
            value = {
                "ref": current.ref,
                "dataset": data["ref"],
                "dataset_digest": data["digest"],
                "label": label,
                "metrics": metrics,
            }
            details: dict[str, DetailValue] = {
                "evaluation": evaluation,
                "version": current.version,
                "dataset": data["ref"],
                "metrics": metrics_digest(metrics),
                **{f"metric.{k}": f"{v:.6g}" for k, v in metrics.items()},
            }
            return Applied(value, digest_after=current.digest, details=details)

        return self._ctx.door.run(self._ctx.actor, Action.MODEL_EVALUATE, self._target(project, parsed), apply)

    def _evaluation_inputs(
        self, project: str, parsed: ModelRef, dataset: str
    ) -> tuple[ModelVersion, Any, str | None, dict[str, Any]]:
        from mlwarden.data.versions import Reference
        from mlwarden.service.dataset_export import export_version
        from mlwarden.service.datasets import _snapshot
        from mlwarden.service.gate_store import version_status

        def fetch(conn: Connection) -> tuple[ModelVersion, Any, str]:
            version = resolve_version(conn, project, parsed)
            snapshot = _snapshot(conn, project, Reference.parse(dataset))
            status = version_status(conn, snapshot.dataset, snapshot.version)
            if status != "accepted":
                raise Refusal(f"{snapshot.version.ref} is {status} by the ingestion gate: not an evaluation set")
            return version, snapshot, status

        version, snapshot, _ = self._ctx.door.read(
            self._ctx.actor, Action.MODEL_EVALUATE, self._target(project, parsed), fetch
        )
        import pyarrow.parquet as pq

        with tempfile.TemporaryDirectory(prefix="mlwarden-eval-") as tmp:
            out = Path(tmp) / "rows.parquet"
            export_version(self._ctx.blobs, snapshot.view(), snapshot.version.digest, out)
            table = pq.read_table(out)
        data = {
            "dataset_id": snapshot.dataset.id,
            "version": snapshot.version.number,
            "digest": str(snapshot.version.digest),
            "ref": snapshot.version.ref,
        }
        return version, table, snapshot.dataset.label_column, data

    @mutation
    def set_alias(self, ref: str, alias: str, *, project: str | None = None) -> dict[str, Any]:
        """Point ``alias`` (e.g. champion) at a version: ``NAME@alias`` then names it."""
        return self._alias(ref, check_alias(alias), project, remove=False)

    @mutation
    def remove_alias(self, name: str, alias: str, *, project: str | None = None) -> dict[str, Any]:
        return self._alias(name, check_alias(alias), project, remove=True)

    def _alias(self, ref: str, alias: str, project: str | None, *, remove: bool) -> dict[str, Any]:
        project = self._project(project)
        parsed = ModelRef.parse(ref)

        def apply(conn: Connection) -> Applied[dict[str, Any]]:
            model_id = require_model(conn, project, parsed.name)
            if remove:
                if alias not in current_aliases(conn, model_id):
                    raise NotFound(f"model {parsed.name} has no alias {alias!r}")
                insert_alias(conn, model_id, alias, None, self._ctx.actor.name)
                return Applied(
                    {"model": parsed.name, "alias": alias, "version": None}, details={"alias": alias, "removed": True}
                )
            version = resolve_version(conn, project, parsed)
            insert_alias(conn, model_id, alias, version.version, self._ctx.actor.name)
            value = {"model": parsed.name, "alias": alias, "version": version.version}
            return Applied(value, digest_after=version.digest, details={"alias": alias, "version": version.version})

        return self._ctx.door.run(self._ctx.actor, Action.MODEL_ALIAS, model_resource(project, parsed.name), apply)

    # -- stages ----------------------------------------------------------------------------------------

    @mutation
    def promote(self, ref: str, to: str, *, project: str | None = None, totp: str | None = None) -> dict[str, Any]:
        """Move a version to ``to`` (staging, production or archived) if the promotion policy holds:
        at once, or (``status`` "pending") through an approval request that moves it when approved.
        Production needs ``totp``, a fresh code of the requester's authenticator."""
        from mlwarden.registry.refs import parse_stage

        return self._move(ref, parse_stage(to), project, totp, rollback=False)

    @mutation
    def rollback(self, name: str, to: int, *, project: str | None = None, totp: str | None = None) -> dict[str, Any]:
        """Return a former production version to production (one approver suffices for the version that
        was in production just before; any older one needs the production policy's approvers)."""
        from mlwarden.registry.refs import ModelRef as Ref

        return self._move(str(Ref(check_model_name(name), version=to)), Stage.PRODUCTION, project, totp, rollback=True)

    def check(self, ref: str, to: str, *, project: str | None = None) -> dict[str, Any]:
        """Every requirement of a promotion, each with what was found (nothing is changed)."""
        from dataclasses import asdict

        from mlwarden.registry.refs import parse_stage
        from mlwarden.service.promotion import checked_requirements, plan_for, rule_for

        project = self._project(project)
        parsed, stage = ModelRef.parse(ref), parse_stage(to)
        plan = self._ctx.door.read(
            self._ctx.actor,
            Action.MODEL_READ,
            self._target(project, parsed),
            lambda c: plan_for(c, project, parsed, stage),
        )
        found = problems(self._ctx, plan.version)

        def fetch(conn: Connection) -> dict[str, Any]:
            checked = checked_requirements(conn, plan, found)
            rule, needed = rule_for(conn, plan)
            return {
                "ref": plan.version.ref,
                "to": stage.value,
                "requirements": [asdict(r) for r in checked],
                "ok": all(r.ok for r in checked),
                "approvals_needed": needed,
                "approver_role": rule.approver_role.value,
                "step_up": stage is Stage.PRODUCTION,
            }

        return self._ctx.door.read(self._ctx.actor, Action.MODEL_READ, self._target(project, parsed), fetch)

    def _move(self, ref: str, to: Stage, project: str | None, totp: str | None, *, rollback: bool) -> dict[str, Any]:
        from mlwarden.service.promotion import plan_for, request_or_move

        project = self._project(project)
        parsed = ModelRef.parse(ref)
        plan = self._ctx.door.read(
            self._ctx.actor,
            Action.MODEL_READ,
            self._target(project, parsed),
            lambda c: plan_for(c, project, parsed, to, rollback=rollback),
        )
        return request_or_move(self._ctx, plan, self._step_up, totp)

    @mutation
    def set_policy(
        self, document: str | Path | dict[str, Any], *, project: str | None = None, totp: str | None = None
    ) -> dict[str, Any]:
        """Set the project's promotion policy (a YAML or TOML file, or its parsed document; needs ``totp``)."""
        from mlwarden.quality.contract import load_document
        from mlwarden.registry.policy import policy_from_json
        from mlwarden.service.promotion import insert_policy

        project = self._project(project)
        data = document if isinstance(document, dict) else load_document(Path(document))
        policy = policy_from_json(data)

        def apply(conn: Connection) -> Applied[dict[str, Any]]:
            from mlwarden.service.projects import require_project

            require_project(conn, project)
            insert_policy(conn, project, policy, self._ctx.actor.name)
            return Applied(
                {"project": project, "digest": policy.digest, "policy": policy.document},
                digest_after=policy.digest,
                details={"digest": policy.digest},
            )

        target = Resource("model_policy", project, project, attributes=(("digest", policy.digest),))
        self._step_up(totp, Action.MODEL_POLICY, target)
        return self._ctx.door.run(self._ctx.actor, Action.MODEL_POLICY, target, apply)

    def policy(self, *, project: str | None = None) -> dict[str, Any]:
        """The project's promotion policy, every stage spelled out (defaults included)."""
        from dataclasses import asdict

        from mlwarden.service.promotion import stored_policy

        project = self._project(project)

        def fetch(conn: Connection) -> dict[str, Any]:
            policy = stored_policy(conn, project)
            stages = {s.value: asdict(policy.for_stage(s)) for s in Stage if s is not Stage.DEVELOPMENT}
            return {"project": project, "digest": policy.digest, "document": policy.document, "stages": stages}

        target = Resource("model_policy", project, project)
        return self._ctx.door.read(self._ctx.actor, Action.MODEL_READ, target, fetch)

    def public_key(self) -> str:
        """The PEM public key that verifies this workspace's model signatures (for `model_signing`)."""
        from mlwarden.service.model_keys import model_public_key_pem

        return model_public_key_pem(self._ctx)

    # -- helpers ---------------------------------------------------------------------------------------

    def _version(self, project: str, parsed: ModelRef) -> ModelVersion:
        return self._ctx.door.read(
            self._ctx.actor,
            Action.MODEL_READ,
            self._target(project, parsed),
            lambda c: resolve_version(c, project, parsed),
        )

    @staticmethod
    def _target(project: str, parsed: ModelRef) -> Resource:
        return model_resource(project, parsed.name)


def describe(conn: Connection, version: ModelVersion) -> dict[str, Any]:
    stage = current_stages(conn, version.model_id)[version.version]
    aliases = sorted(a for a, v in current_aliases(conn, version.model_id).items() if v == version.version)
    return {
        "model": version.name,
        "version": version.version,
        "ref": version.ref,
        "project": version.project,
        "stage": stage.value,
        "aliases": aliases,
        "digest": version.digest,
        "format": version.format,
        "files": version.files,
        "run": version.run_id,
        "external": version.external,
        "source": version.source,
        "inputs": version.inputs,
        "metrics": version.metrics,
        "scan": version.scan,
        "author": version.actor,
        "created_at": version.created_at,
        "evaluations": evaluations_of(conn, version),
    }


def evaluations_of(conn: Connection, version: ModelVersion) -> list[dict[str, Any]]:
    from mlwarden.store.tables import datasets

    query = (
        select(model_evaluations, datasets.c.name)
        .join(datasets, datasets.c.id == model_evaluations.c.dataset_id)
        .where(model_evaluations.c.model_id == version.model_id, model_evaluations.c.version == version.version)
        .order_by(model_evaluations.c.at)
    )
    return [
        {
            "dataset": f"{row['name']}@{row['dataset_version']}",
            "dataset_id": row["dataset_id"],
            "dataset_version": row["dataset_version"],
            "dataset_digest": row["dataset_digest"],
            "metrics": json.loads(row["metrics"]),
            "model_digest": row["model_digest"],
            "at": row["at"],
        }
        for row in conn.execute(query).mappings()
    ]


def _metric_table(shown: dict[str, Any]) -> dict[str, float]:
    table = {f"run.{k}": float(v) for k, v in shown["metrics"].items()}
    for evaluation in shown["evaluations"]:  # the newest evaluation on each dataset version wins
        for key, value in evaluation["metrics"].items():
            table[f"{evaluation['dataset']}.{key}"] = float(value)
    return table


_LOWER_IS_BETTER = ("mae", "rmse", "mse", "loss", "error", "log_loss")


def _degraded(metric: str, delta: float | None) -> bool:
    if delta is None or delta == 0:
        return False
    lower_better = metric.rsplit(".", 1)[-1].endswith(_LOWER_IS_BETTER)
    return delta > 0 if lower_better else delta < 0


def _create_model(conn: Connection, project: str, name: str, actor: str) -> str:
    from mlwarden.service.projects import require_project

    require_project(conn, project)
    model_id = new_id("mdl_")
    conn.execute(
        insert(models).values(id=model_id, project=project, name=name, actor=actor, created_at=format_ts(utcnow()))
    )
    return model_id


def _lineage(conn: Connection, project: str, run_id: str, files: list[dict[str, Any]]) -> dict[str, Any]:
    """The run's inputs and final metrics; refuses a run of another project, one still running or failed,
    one whose artifacts do not include every file, or one that used data the gate has not accepted."""
    from mlwarden.service.tracking import _details

    row = conn.execute(select(runs.c.project).where(runs.c.id == run_id)).first()
    if row is None or row.project != project:
        raise NotFound(f"no run {run_id} in project {project}", hint="see `mlwarden run list`")
    status = conn.execute(select(run_ends.c.status).where(run_ends.c.run_id == run_id)).scalar()
    if status != "finished":
        raise Refusal(f"run {run_id} is {status or 'still running'}: only a finished run's model is registered")
    logged = {d for (d,) in conn.execute(select(run_artifacts.c.digest).where(run_artifacts.c.run_id == run_id))}
    missing = [f["path"] for f in files if f"sha256:{f['sha256']}" not in logged]
    if missing:
        raise Refusal(f"run {run_id} did not log {', '.join(missing[:3])}: the model is not that run's output")
    details = _details(conn, run_id)
    refused = unaccepted_inputs(conn, project, details["inputs"])
    if refused:
        raise Refusal(f"run {run_id} trained on data the gate does not accept: {'; '.join(refused)}")
    return {"inputs": details["inputs"], "metrics": details["metrics"]}


def _format_of(path: Path) -> str:
    from mlwarden.registry.formats import detect_format

    return str(detect_format(path))


def _sign(ctx: ServiceContext, path: Path) -> str:
    from mlwarden.service.model_keys import model_signing_key
    from mlwarden.supplychain.signing import sign_model

    return sign_model(path, model_signing_key(ctx))
