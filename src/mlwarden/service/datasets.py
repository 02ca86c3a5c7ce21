"""Datasets through the one door: ingest, revert, protect, verify, and the queries over versions.

Metadata (datasets, versions, ingestions, provenance) is readable by every project role. Anything that
returns rows or statistics computed from them (export, diff, blame) hands out content: it needs the
data.export permission and is audited like a change.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, update

from mlwarden.audit.clock import format_ts, normalize_ts, utcnow
from mlwarden.data.ingest import stage
from mlwarden.data.readers import Progress, from_table, open_file
from mlwarden.data.rows import grow_tree
from mlwarden.data.tree import TreeState
from mlwarden.data.versions import Reference, validate_dataset_name
from mlwarden.defense.policy import Judgement, Verdict
from mlwarden.domain.actions import Action
from mlwarden.domain.digests import Digest
from mlwarden.domain.events import DetailValue, Resource
from mlwarden.errors import ContractMismatch, GateBlocked, NotFound, UsageError
from mlwarden.service.context import ServiceContext
from mlwarden.service.dataset_changes import (
    Change,
    Ingest,
    Revert,
    apply_ingest,
    apply_revert,
    bounded_note,
    new_id,
    validate_source,
)
from mlwarden.service.dataset_gate import (
    AddBase,
    Watch,
    add_base,
    record_rejection,
    rejection_message,
    store_evidence,
    unreadable,
)
from mlwarden.service.dataset_gate import Reference as GateReference
from mlwarden.service.dataset_integrity import IntegrityReport, check_datasets
from mlwarden.service.dataset_reads import Snapshot, diff_summary, lineage, provenance_rows, reuse_tree, show
from mlwarden.service.dataset_store import (
    Dataset,
    Ingestion,
    Version,
    chosen_project,
    dataset_resource,
    dataset_target,
    find_dataset,
    ingestions_of,
    latest_version,
    list_datasets,
    ref_target,
    require_dataset,
    resolve,
    version_counts,
    versions_of,
)
from mlwarden.service.door import Applied, access, mutation
from mlwarden.service.gate_store import GateRecord
from mlwarden.service.projects import require_project
from mlwarden.store.tables import datasets as datasets_table

MAX_LIST_ROWS = 10_000
StepUp = Callable[[str | None, Action, Resource], None]


class DatasetService:
    def __init__(self, ctx: ServiceContext, step_up: StepUp) -> None:
        self._ctx = ctx
        self._step_up = step_up

    # -- changes -----------------------------------------------------------------------------------------

    @mutation
    def add(
        self,
        name: str,
        data: str | Path | Any,
        *,
        source: str,
        project: str | None = None,
        label_column: str | None = None,
        note: str | None = None,
        replace: bool = False,
        progress: Progress | None = None,
    ) -> Change:
        """Ingest a file (CSV, Parquet, JSON Lines, Arrow IPC) or a pandas/polars/pyarrow table.

        The batch passes the ingestion gate (contract, checks, drift): accepted, it makes a version;
        quarantined, it makes a version that is not accepted until an approver accepts the ingestion (or
        a revert drops it); rejected, it makes nothing and ``GateBlocked`` says why. Every verdict is
        recorded and audited.
        """
        project = chosen_project(project, self._ctx.config.default_project)
        validate_dataset_name(name)
        validate_source(source)
        target = dataset_resource(project, name)
        base = self._ctx.door.read(self._ctx.actor, Action.DATA_ADD, target, self._base(project, name))
        dataset, latest = base.dataset, base.latest
        schema = dataset.schema if dataset else None
        watch = Watch(base.contract, new_id("ing"))
        try:
            batches = open_file(Path(data), schema, progress) if isinstance(data, str | Path) else from_table(data)
            staged = stage(batches, schema, self._tree_base(latest, replace), self._ctx.blobs, watch)
        except ContractMismatch as broken:
            if dataset is None:
                raise
            return self._reject(target, dataset, watch, source, unreadable(broken.message), evidence=False)
        label = dataset.label_column if dataset else label_column
        judgement = watch.judge(label, base.reference, base.policy)
        if judgement.verdict == Verdict.REJECTED:
            return self._reject(target, dataset, watch, source, judgement, evidence=True)
        ingestion = Ingestion(
            id=watch.ingestion,
            source=source,
            actor=self._ctx.actor.name,
            created_at=format_ts(utcnow()),
            input_name=batches.name[:256],
            input_format=batches.format,
            input_digest=str(digest) if (digest := batches.input_digest()) else None,
            rows=staged.rows,
            segment=staged.segment,
            segment_root=staged.segment_tree.root().hex(),
            note=bounded_note(note),
        )
        gate = self._gate_record(watch, judgement, base.reference, source, evidence=True)
        request = Ingest(
            project,
            name,
            staged,
            ingestion,
            replace,
            label_column,
            latest.number if latest else 0,
            ingestion.note,
            gate,
        )
        actor = self._ctx.actor
        return self._ctx.door.run(
            actor, Action.DATA_ADD, target, lambda conn: apply_ingest(conn, self._ctx.blobs, actor, request)
        )

    @staticmethod
    def _tree_base(latest: Version | None, replace: bool) -> TreeState:
        return TreeState() if replace or latest is None else latest.tree

    def _gate_record(
        self, watch: Watch, judgement: Judgement, reference: GateReference, source: str, *, evidence: bool
    ) -> GateRecord:
        sample = store_evidence(self._ctx.blobs, watch) if evidence else None
        report = judgement.to_json() | {"rows": watch.rows, "reference_version": reference.number, "source": source}
        return GateRecord(
            new_id("gate"), watch.ingestion, judgement.verdict, report, sample, None,
            self._ctx.actor.name, format_ts(utcnow()),
        )  # fmt: skip

    def _reject(
        self,
        target: Resource,
        dataset: Dataset | None,
        watch: Watch,
        source: str,
        judgement: Judgement,
        *,
        evidence: bool,
    ) -> Change:
        """Record and audit the rejection (no version, no ingestion), then raise ``GateBlocked``."""
        record = self._gate_record(watch, judgement, GateReference(None, None), source, evidence=evidence)
        self._ctx.door.run(
            self._ctx.actor, Action.DATA_ADD, target, lambda conn: record_rejection(conn, dataset, record)
        )
        raise GateBlocked(rejection_message(judgement), hint=f"ingestion {watch.ingestion} was recorded as rejected")

    def _base(self, project: str, name: str) -> Callable[[Connection], AddBase]:
        def fetch(conn: Connection) -> AddBase:
            require_project(conn, project)
            return add_base(conn, self._ctx.blobs, find_dataset(conn, project, name))

        return fetch

    @mutation
    def revert(
        self,
        name: str,
        *,
        project: str | None = None,
        source: str | None = None,
        ingestion: str | None = None,
        since: str | None = None,
        to: int | None = None,
        note: str | None = None,
    ) -> Change:
        """A new version without the rows of a source, an ingestion, everything since a time, or back to
        an earlier version's rows; it records what it undid."""
        project = chosen_project(project, self._ctx.config.default_project)
        chosen = [(k, v) for k, v in (("source", source), ("ingestion", ingestion), ("since", since), ("to", to)) if v]
        if len(chosen) != 1:
            raise UsageError("give exactly one of --source, --ingestion, --since and --to")
        by, value = chosen[0]
        target = dataset_resource(project, name)
        snapshot = self._ctx.door.read(
            self._ctx.actor, Action.DATA_REVERT, target, self._latest_snapshot(project, name)
        )
        plan = self._plan_revert(snapshot, by, value, bounded_note(note))
        actor = self._ctx.actor
        return self._ctx.door.run(
            actor, Action.DATA_REVERT, target, lambda conn: apply_revert(conn, project, name, actor, plan)
        )

    def _plan_revert(self, snapshot: Snapshot, by: str, value: str | int, note: str | None) -> Revert:
        latest = snapshot.version
        in_version = {piece.ingestion for piece in latest.manifest}
        if by == "to":
            earlier = _version_numbered(snapshot.history, int(value))
            manifest, drop = earlier.manifest, in_version - {p.ingestion for p in earlier.manifest}
        else:
            drop = {i for i in in_version if _matches(snapshot.ingestions[i], by, str(value))}
            manifest = tuple(p for p in latest.manifest if p.ingestion not in drop)
        if manifest == latest.manifest:
            raise UsageError(f"nothing to revert: no rows of {latest.ref} match --{by} {value}")
        tree = reuse_tree(snapshot.history, manifest) or grow_tree(self._ctx.blobs, snapshot.view(), manifest)
        undid = {
            "by": by,
            "value": str(value),
            "ingestions": sorted(drop),
            "rows_removed": latest.rows - tree.size,
            "from_version": latest.number,
        }
        return Revert(manifest, tree, undid, latest.number, note)

    @mutation
    def protect(self, name: str, *, project: str | None = None, approvals: int = 1) -> Dataset:
        """From now on every change to the dataset needs ``approvals`` approvers (never its author)."""
        if not 1 <= approvals <= 10:
            raise UsageError("--approvals must be between 1 and 10")
        return self._set_protection(
            name, chosen_project(project, self._ctx.config.default_project), True, approvals, Action.DATA_PROTECT
        )

    @mutation
    def unprotect(self, name: str, *, project: str | None = None, totp: str | None = None) -> Dataset:
        """Accept changes without approval again (admins, with a TOTP step-up)."""
        project = chosen_project(project, self._ctx.config.default_project)
        self._step_up(totp, Action.DATA_UNPROTECT, dataset_resource(project, name))
        return self._set_protection(name, project, False, 1, Action.DATA_UNPROTECT)

    def _set_protection(self, name: str, project: str, protected: bool, approvals: int, action: Action) -> Dataset:
        def apply(conn: Connection) -> Applied[Dataset]:
            dataset = require_dataset(conn, project, name)
            conn.execute(
                update(datasets_table)
                .where(datasets_table.c.id == dataset.id)
                .values(protected=protected, required_approvals=approvals)
            )
            changed = require_dataset(conn, project, name)
            return Applied(changed, details={"protected": protected, "required_approvals": approvals})

        return self._ctx.door.run(self._ctx.actor, action, dataset_target(project, name), apply)

    @mutation
    def verify(self, name: str | None = None, *, project: str | None = None) -> IntegrityReport:
        """Re-hash every segment and recompute every version digest; record the result as an event."""
        project = chosen_project(project, self._ctx.config.default_project)
        target = Resource("dataset", f"{project}/{name or '*'}", project)

        def load(conn: Connection) -> list[Snapshot]:
            require_project(conn, project)
            chosen = [require_dataset(conn, project, name)] if name else list_datasets(conn, project)
            return [_full_snapshot(conn, d) for d in chosen]

        snapshots = self._ctx.door.read(self._ctx.actor, Action.DATA_VERIFY, target, load)
        report = check_datasets(self._ctx.blobs, snapshots)
        details = {"datasets": report.datasets, "versions": report.versions, "problems": len(report.problems)}
        return self._ctx.door.run(
            self._ctx.actor, Action.DATA_VERIFY, target, lambda conn: Applied(report, details=dict(details))
        )

    # -- content (audited) -------------------------------------------------------------------------------

    @access
    def export(self, ref: str, out: str | Path, *, project: str | None = None) -> dict[str, Any]:
        """Write a version's rows to ``out`` (.parquet, .csv, .jsonl or .arrow), checking its digest."""
        from mlwarden.service.dataset_export import export_format, export_version

        export_format(Path(out))
        snapshot = self._hand_out(ref, project, "export")
        rows = export_version(self._ctx.blobs, snapshot.view(), snapshot.version.digest, Path(out))
        return {"version": snapshot.version.to_dict(), "path": str(out), "rows": rows}

    @access
    def diff(self, a: str, b: str, *, project: str | None = None, rows: int | None = None) -> dict[str, Any]:
        """Rows added and removed from A to B by fingerprint, by source, with column statistics."""
        project = chosen_project(project, self._ctx.config.default_project)
        first = self._hand_out(a, project, "diff")
        second = self._read(b, project)
        if first.dataset.schema != second.dataset.schema:
            raise UsageError(f"{a} and {b} have different schemas", hint="diff versions of one dataset")
        from mlwarden.data import compare  # polars: loaded by the queries that need it

        result = compare.diff(self._ctx.blobs, first.view(), second.view())
        return diff_summary(first, second, result, _bounded(rows))

    @access
    def blame(
        self,
        ref: str,
        *,
        project: str | None = None,
        where: str | None = None,
        row_digest: str | None = None,
        limit: int = 100,
    ) -> dict[str, Any]:
        """The rows matching a SQL condition (or a row digest), each with the ingestion that brought it."""
        wanted = bytes.fromhex(Digest.parse(row_digest).hex) if row_digest else None
        snapshot = self._hand_out(ref, project, "blame")
        from mlwarden.data import compare  # polars: loaded by the queries that need it

        found = compare.blame(self._ctx.blobs, snapshot.view(), where=where, digest=wanted, limit=_bounded(limit) or 0)
        return {
            "version": snapshot.version.to_dict(),
            "matched": found.total,
            "shown": found.rows.height,
            "rows": provenance_rows(found.rows, snapshot.ingestions) if found.rows.height else [],
        }

    def _hand_out(self, ref: str, project: str | None, what: str) -> Snapshot:
        return hand_out(self._ctx, ref, project, what)

    # -- metadata reads ----------------------------------------------------------------------------------

    def versions(self, name: str, *, project: str | None = None) -> list[Version]:
        project = chosen_project(project, self._ctx.config.default_project)

        def fetch(conn: Connection) -> list[Version]:
            return versions_of(conn, require_dataset(conn, project, name))

        return self._ctx.door.read(self._ctx.actor, Action.DATA_READ, dataset_target(project, name), fetch)

    def show(self, ref: str, *, project: str | None = None) -> dict[str, Any]:
        """A version: its digest, schema, rows, and the ingestions and sources that make it up."""
        return show(self._read(ref, project))

    def lineage(self, ref: str, *, project: str | None = None) -> dict[str, Any]:
        """Sources, ingestions and the history of versions behind a version."""
        return lineage(self._read(ref, project))

    def _read(self, ref: str, project: str | None) -> Snapshot:
        project = chosen_project(project, self._ctx.config.default_project)
        parsed = Reference.parse(ref)
        return self._ctx.door.read(
            self._ctx.actor,
            Action.DATA_READ,
            ref_target(project, parsed),
            lambda c: _snapshot(c, project, parsed),
        )

    def _latest_snapshot(self, project: str, name: str) -> Callable[[Connection], Snapshot]:
        return lambda conn: _snapshot(conn, project, Reference(name))

    def list(self, *, project: str | None = None) -> list[dict[str, Any]]:
        """The project's datasets with their latest version."""
        project = chosen_project(project, self._ctx.config.default_project)

        def fetch(conn: Connection) -> list[dict[str, Any]]:
            require_project(conn, project)
            found = list_datasets(conn, project)
            counts = version_counts(conn, [d.id for d in found])
            out = []
            for dataset in found:
                latest = latest_version(conn, dataset) if counts.get(dataset.id) else None
                out.append(dataset.to_dict() | {"latest": latest.to_dict() if latest else None})
            return out

        target = Resource("dataset", f"{project}/*", project)
        return self._ctx.door.read(self._ctx.actor, Action.DATA_READ, target, fetch)


def hand_out(ctx: ServiceContext, ref: str, project: str | None, what: str) -> Snapshot:
    """A version whose rows are about to be handed out, authorized and audited as ``data.export``."""
    project = chosen_project(project, ctx.config.default_project)
    parsed = Reference.parse(ref)

    def apply(conn: Connection) -> Applied[Snapshot]:
        snapshot = _snapshot(conn, project, parsed)
        details: dict[str, DetailValue] = {"what": what, "ref": snapshot.version.ref}
        return Applied(snapshot, digest_after=str(snapshot.version.digest), details=details)

    return ctx.door.run(ctx.actor, Action.DATA_EXPORT, ref_target(project, parsed), apply)


def _snapshot(conn: Connection, project: str, ref: Reference) -> Snapshot:
    dataset, version = resolve(conn, project, ref)
    return Snapshot(dataset, version, ingestions_of(conn, dataset), tuple(versions_of(conn, dataset)))


def _full_snapshot(conn: Connection, dataset: Dataset) -> Snapshot:
    history = tuple(versions_of(conn, dataset))
    latest = history[-1] if history else None
    if latest is None:
        raise NotFound(f"dataset {dataset.name!r} has no versions")
    return Snapshot(dataset, latest, ingestions_of(conn, dataset), history)


def _version_numbered(history: tuple[Version, ...], number: int) -> Version:
    for version in history:
        if version.number == number:
            return version
    raise NotFound(f"no version {number}", hint="see `mlwarden data versions`")


def _matches(ingestion: Ingestion, by: str, value: str) -> bool:
    if by == "source":
        return ingestion.source == value
    if by == "ingestion":
        return ingestion.id == value
    return ingestion.created_at >= normalize_ts(value)  # by == "since"


def _bounded(rows: int | None) -> int | None:
    if rows is None:
        return None
    if rows < 0:
        raise UsageError("a row limit cannot be negative")
    return min(rows, MAX_LIST_ROWS)
