"""The ingestion gate's side of datasets: contracts, policies, verdicts, profiles and dry runs.

Setting a contract or a policy is a change (audited, append-only). Verdicts with their findings,
profiles and dry runs hand out statistics and sample rows computed from the data: they need the
data.export permission and are audited like an export.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection

from mlwarden.audit.clock import format_ts, utcnow
from mlwarden.data.versions import Reference
from mlwarden.defense.policy import Policy, Verdict, policy_from_json
from mlwarden.domain.actions import Action
from mlwarden.quality.contract import Contract, contract_from_json, infer_contract, load_document
from mlwarden.quality.profile import Profile
from mlwarden.service.context import ServiceContext
from mlwarden.service.dataset_changes import new_id
from mlwarden.service.dataset_gate import (
    Reference as GateReference,
)
from mlwarden.service.dataset_gate import (
    Watch,
    reference_sample,
    version_profile,
)
from mlwarden.service.dataset_store import (
    Dataset,
    Version,
    chosen_project,
    dataset_target,
    ingestions_of,
    ref_target,
    require_dataset,
    resolve,
)
from mlwarden.service.door import Applied, access, mutation
from mlwarden.service.gate_store import (
    CONTRACT,
    POLICY,
    contract_of,
    current_document,
    gate_records,
    insert_document,
    policy_of,
    version_status,
)

MAX_REJECTIONS_SHOWN = 10
T = TypeVar("T")


class QualityService:
    def __init__(self, ctx: ServiceContext) -> None:
        self._ctx = ctx

    # -- contracts and policies ----------------------------------------------------------------------------

    @mutation
    def set_contract(
        self, name: str, contract: str | Path | dict[str, Any] | None, *, project: str | None = None
    ) -> dict[str, Any]:
        """Put a contract in force for every later batch of the dataset (None clears it)."""
        document = _document(contract, contract_from_json)
        return self._set(name, project, CONTRACT, document)

    @mutation
    def set_policy(
        self, name: str, policy: str | Path | dict[str, Any] | None, *, project: str | None = None
    ) -> dict[str, Any]:
        """Put a gate policy in force for every later batch of the dataset (None: the default policy)."""
        document = _document(policy, policy_from_json)
        return self._set(name, project, POLICY, document)

    def _set(self, name: str, project: str | None, kind: str, document: dict[str, Any] | None) -> dict[str, Any]:
        project = chosen_project(project, self._ctx.config.default_project)

        def apply(conn: Connection) -> Applied[dict[str, Any]]:
            dataset = require_dataset(conn, project, name)
            at = format_ts(utcnow())
            digest = insert_document(conn, dataset, kind, document, id=new_id("doc"), actor=self._ctx.actor.name, at=at)
            result = {"dataset": name, "project": project, "kind": kind, "digest": digest, "document": document}
            return Applied(result, digest_after=digest, details={"kind": kind, "cleared": document is None})

        target = dataset_target(project, name)
        return self._ctx.door.run(self._ctx.actor, Action.DATA_POLICY, target, apply)

    def contract(self, name: str, *, project: str | None = None) -> Contract:
        return self._read_dataset(name, project, contract_of)

    def policy(self, name: str, *, project: str | None = None) -> Policy:
        return self._read_dataset(name, project, policy_of)

    def documents(self, name: str, *, project: str | None = None) -> dict[str, Any]:
        """The contract and policy documents in force as set (None where none was set)."""

        def fetch(conn: Connection, dataset: Dataset) -> dict[str, Any]:
            return {kind: current_document(conn, dataset, kind) for kind in (CONTRACT, POLICY)}

        return self._read_dataset(name, project, fetch)

    # -- verdicts, profiles, dry runs (audited: they show data) ----------------------------------------

    @access
    def gate(self, ref: str, *, project: str | None = None) -> dict[str, Any]:
        """A version's status and the verdict of each ingestion in it, with findings; recent rejections."""

        def build(conn: Connection, dataset: Dataset, version: Version) -> dict[str, Any]:
            records = gate_records(conn, dataset)
            ingestions = ingestions_of(conn, dataset)
            in_version = [p.ingestion for p in version.manifest]
            by_ingestion: dict[str, list[Any]] = {}
            for record in records:
                by_ingestion.setdefault(record.ingestion, []).append(record)
            batches = [_batch(i, ingestions.get(i), by_ingestion.get(i, [])) for i in dict.fromkeys(in_version)]
            rejected = [r.to_dict() for r in records if r.verdict == Verdict.REJECTED][-MAX_REJECTIONS_SHOWN:]
            return {
                "dataset": dataset.name,
                "version": version.to_dict(),
                "verdict": version_status(conn, dataset, version),
                "ingestions": batches,
                "recent_rejections": rejected,
            }

        return self._hand_out(ref, project, "gate", build)

    @access
    def profile(self, ref: str, *, project: str | None = None) -> Profile:
        """The version's profile: its ingestions' profiles merged (computed from rows where one is missing)."""

        def build(conn: Connection, dataset: Dataset, version: Version) -> Profile:
            return version_profile(conn, self._ctx.blobs, dataset, version)

        return self._hand_out(ref, project, "profile", build)

    @access
    def infer_contract(self, ref: str, *, project: str | None = None) -> Contract:
        """The contract a version already satisfies (observed types, nulls, ranges and small value sets)."""

        def build(conn: Connection, dataset: Dataset, version: Version) -> Contract:
            profile = version_profile(conn, self._ctx.blobs, dataset, version)
            return infer_contract(dataset.schema, profile, dataset.label_column)

        return self._hand_out(ref, project, "infer", build)

    @access
    def validate(
        self,
        data: str | Path | Any,
        *,
        against: str,
        project: str | None = None,
        contract: str | Path | dict[str, Any] | None = None,
        policy: str | Path | dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The gate's verdict on ``data`` against version ``against``, without ingesting anything.

        The contract and policy are the dataset's unless given; the drift reference is ``against``.
        """
        from mlwarden.data.columns import conform
        from mlwarden.data.readers import from_table, open_file
        from mlwarden.errors import ContractMismatch
        from mlwarden.service.dataset_gate import unreadable

        def build(
            conn: Connection, dataset: Dataset, version: Version
        ) -> tuple[Dataset, Version, Contract, Policy, Any]:
            segments = {i.id: i.segment for i in ingestions_of(conn, dataset).values()}
            sample = reference_sample(conn, self._ctx.blobs, dataset, version, segments)
            return dataset, version, contract_of(conn, dataset), policy_of(conn, dataset), sample

        dataset, version, own_contract, own_policy, sample = self._hand_out(against, project, "validate", build)
        chosen_contract = (
            contract_from_json(_document(contract, contract_from_json) or {}) if contract else own_contract
        )
        chosen_policy = policy_from_json(_document(policy, policy_from_json) or {}) if policy else own_policy
        watch = Watch(chosen_contract, "dry-run")
        watch.start(dataset.schema)
        try:
            batches = open_file(Path(data), dataset.schema) if isinstance(data, str | Path) else from_table(data)
            for batch in batches.batches:
                watch.add(conform(batch, dataset.schema))
            judgement = watch.judge(dataset.label_column, GateReference(version.number, sample), chosen_policy)
        except ContractMismatch as broken:
            judgement = unreadable(broken.message)
        return judgement.to_json() | {"dry_run": True, "against": version.to_dict(), "rows": watch.rows}

    # -- helpers -------------------------------------------------------------------------------------------

    def _hand_out(
        self, ref: str, project: str | None, what: str, build: Callable[[Connection, Dataset, Version], T]
    ) -> T:
        project = chosen_project(project, self._ctx.config.default_project)
        parsed = Reference.parse(ref)

        def apply(conn: Connection) -> Applied[T]:
            dataset, version = resolve(conn, project, parsed)
            value = build(conn, dataset, version)
            details = {"what": what, "ref": version.ref}
            return Applied(value, digest_after=str(version.digest), details=dict(details))

        target = ref_target(project, parsed)
        return self._ctx.door.run(self._ctx.actor, Action.DATA_EXPORT, target, apply)

    def _read_dataset(self, name: str, project: str | None, fetch: Callable[[Connection, Dataset], T]) -> T:
        project = chosen_project(project, self._ctx.config.default_project)

        def read(conn: Connection) -> T:
            return fetch(conn, require_dataset(conn, project, name))

        return self._ctx.door.read(self._ctx.actor, Action.DATA_READ, dataset_target(project, name), read)


def _document(
    value: str | Path | dict[str, Any] | None, parse: Callable[[dict[str, Any]], Any]
) -> dict[str, Any] | None:
    """A contract or policy given as a file or a mapping, checked by parsing it, in canonical form."""
    if value is None:
        return None
    data = load_document(Path(value)) if isinstance(value, str | Path) else dict(value)
    return parse(data).to_json()  # type: ignore[no-any-return]


def _batch(ingestion: str, row: Any, records: list[Any]) -> dict[str, Any]:
    first = records[0].to_dict() if records else None
    return {
        "ingestion": ingestion,
        "source": row.source if row else None,
        "verdict": records[-1].verdict if records else Verdict.ACCEPTED,
        "gated": bool(records),
        "record": first,
        "history": [
            {"verdict": r.verdict, "at": r.created_at, "by": r.actor, "request": r.approval_request} for r in records
        ],
    }
