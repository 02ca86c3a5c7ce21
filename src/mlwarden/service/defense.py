"""Poison hunting through the one door: `defend scan` lists a version's suspicious rows with their
provenance, `defend forensics` ranks its sources (or ingestions) and proposes the revert. Both hand out
rows, so both are audited as ``data.export`` (what: "defend scan" / "defend forensics")."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection

from mlwarden.data.versions import Reference
from mlwarden.domain.actions import Action
from mlwarden.domain.events import DetailValue, Resource
from mlwarden.errors import UsageError
from mlwarden.service.context import ServiceContext
from mlwarden.service.dataset_reads import Snapshot, provenance_rows
from mlwarden.service.dataset_store import chosen_project, dataset_target, ref_target, require_dataset, resolve
from mlwarden.service.dataset_trust import insert_trust, trusted_version
from mlwarden.service.door import Applied, Refusal, access, mutation

StepUp = Callable[[str | None, Action, Resource], None]

MAX_ROWS = 50_000  # a larger version is scanned through a uniform sample of this many rows (said so)
GROUPINGS = ("source", "ingestion")


class DefenseService:
    def __init__(self, ctx: ServiceContext, step_up: StepUp) -> None:
        self._ctx = ctx
        self._step_up = step_up

    # -- the trusted version ---------------------------------------------------------------------------

    @mutation
    def trust(
        self, ref: str, *, project: str | None = None, totp: str | None = None, note: str | None = None
    ) -> dict[str, Any]:
        """Mark a version the gate accepted as the dataset's trusted rows (needs ``totp``): forensics then
        measure every row, and each source's harm, against it."""
        from mlwarden.service.gate_store import version_status

        project = chosen_project(project, self._ctx.config.default_project)
        parsed = Reference.parse(ref)

        def found(conn: Connection) -> tuple[Resource, Any]:
            dataset, version = resolve(conn, project, parsed)
            status = version_status(conn, dataset, version)
            if status != "accepted":
                raise Refusal(f"{version.ref} is {status} by the ingestion gate: it cannot be trusted")
            resource = dataset.resource()
            return Resource(resource.type, resource.id, project, attributes=(("digest", str(version.digest)),)), version

        resource, version = self._ctx.door.read(self._ctx.actor, Action.DATA_READ, ref_target(project, parsed), found)
        self._step_up(totp, Action.DATA_TRUST, resource)

        def apply(conn: Connection) -> Applied[dict[str, Any]]:
            dataset, current = resolve(conn, project, Reference(version.dataset, number=version.number))
            insert_trust(conn, dataset.id, current.number, str(current.digest), self._ctx.actor.name, note)
            details: dict[str, DetailValue] = {"version": current.number, "note": note}
            value = {"dataset": dataset.name, "version": current.number, "digest": str(current.digest)}
            return Applied(value, digest_after=str(current.digest), details=details)

        return self._ctx.door.run(self._ctx.actor, Action.DATA_TRUST, resource, apply)

    @mutation
    def untrust(self, name: str, *, project: str | None = None) -> dict[str, Any]:
        """Withdraw the dataset's trusted version (forensics go back to judging each source by the rest)."""
        project = chosen_project(project, self._ctx.config.default_project)

        def apply(conn: Connection) -> Applied[dict[str, Any]]:
            dataset = require_dataset(conn, project, name)
            if trusted_version(conn, dataset.id) is None:
                raise UsageError(f"dataset {name} has no trusted version")
            insert_trust(conn, dataset.id, None, None, self._ctx.actor.name, None)
            return Applied({"dataset": name, "version": None}, details={"version": None})

        return self._ctx.door.run(self._ctx.actor, Action.DATA_TRUST, dataset_target(project, name), apply)

    def trusted(self, name: str, *, project: str | None = None) -> dict[str, Any] | None:
        """The dataset's trusted version (who marked it, when, why), or None."""
        project = chosen_project(project, self._ctx.config.default_project)

        def fetch(conn: Connection) -> dict[str, Any] | None:
            found = trusted_version(conn, require_dataset(conn, project, name).id)
            return None if found is None else {"dataset": name, **found.to_dict()}

        return self._ctx.door.read(self._ctx.actor, Action.DATA_READ, dataset_target(project, name), fetch)

    # -- scanning --------------------------------------------------------------------------------------

    @access
    def scan(
        self, ref: str, *, project: str | None = None, label_column: str | None = None, limit: int = 50
    ) -> dict[str, Any]:
        """The version's most suspicious rows (score, detector, reason, provenance) and which sources
        hold significantly more of them than the rest."""
        from mlwarden.defense.forensics import rank_groups, scan_table

        if limit < 0:
            raise UsageError("--limit must be 0 or more")
        loaded = _Loaded(self._ctx, ref, project, label_column, "defend scan")
        scan = scan_table(loaded.features, loaded.label, loaded.groups("source"), loaded.trusted_rows)
        top = scan.top(limit)
        rows = provenance_rows(loaded.frame[top], loaded.snapshot.ingestions) if top else []
        for row, i in zip(rows, top, strict=True):
            row.update(score=round(float(scan.scores[i]), 4), detector=scan.detector[i], reason=scan.reason[i])
        ranks = rank_groups(scan, loaded.groups("source"))
        return {
            **loaded.header(),
            "flagged": int(scan.flagged.sum()),
            "detectors": [{"name": r.name, "flagged": r.flagged, "note": r.note} for r in scan.runs],
            "not_features": scan.skipped,
            "rows": rows,
            "suspected_sources": [r.group for r in ranks if r.suspected],
        }

    @access
    def forensics(
        self, ref: str, *, project: str | None = None, label_column: str | None = None, by: str = "source"
    ) -> dict[str, Any]:
        """Sources (or ingestions) ranked by their excess of suspicious rows, the revert that drops the
        suspects, and what a simple model gains on the other sources' rows without the top one."""
        from mlwarden.defense.forensics import rank_groups, scan_table, what_if

        if by not in GROUPINGS:
            raise UsageError(f"--by must be one of {', '.join(GROUPINGS)}")
        loaded = _Loaded(self._ctx, ref, project, label_column, "defend forensics")
        groups = loaded.groups(by)
        ranks = rank_groups(scan_table(loaded.features, loaded.label, groups, loaded.trusted_rows), groups)
        suspects = [r.group for r in ranks if r.suspected]
        report: dict[str, Any] = {
            **loaded.header(),
            "by": by,
            "ranking": [loaded.described(r.to_json(), by) for r in ranks],
            "suspected": suspects,
            "revert": _revert_command(loaded.snapshot, by, suspects, project),
        }
        if suspects and loaded.label is not None:
            report["what_if"] = what_if(loaded.features, loaded.label, groups, suspects[0])
        return report


class _Loaded:
    """A version's rows (a uniform sample past MAX_ROWS), its features, label and each row's provenance."""

    def __init__(self, ctx: ServiceContext, ref: str, project: str | None, label: str | None, what: str) -> None:
        import polars as pl

        from mlwarden.data.compare import _frames
        from mlwarden.data.frames import PROVENANCE
        from mlwarden.service.datasets import hand_out

        self.snapshot = hand_out(ctx, ref, project, what)
        frame = pl.concat(list(_frames(ctx.blobs, self.snapshot.view())), how="vertical")
        self.total = frame.height
        if frame.height > MAX_ROWS:
            frame = frame.sample(MAX_ROWS, seed=0).sort(PROVENANCE[0])
        self.frame = frame
        self.label = label or self.snapshot.dataset.label_column
        if self.label is not None and self.label not in frame.columns:
            raise UsageError(f"{self.snapshot.version.ref} has no column {self.label!r}", hint="check --label-column")
        self.features = frame.drop(PROVENANCE).to_arrow()
        self.trusted = _trusted_rows(ctx, self.snapshot)
        if self.trusted is not None and self.label is not None and self.label not in self.trusted[1].column_names:
            self.trusted = None  # trusted rows without this label teach nothing about it

    def groups(self, by: str) -> list[str]:
        from mlwarden.data.frames import INGESTION

        ingestions = self.frame[INGESTION].to_list()
        if by == "ingestion":
            return [str(i) for i in ingestions]
        return [self.snapshot.ingestions[i].source for i in ingestions]

    @property
    def trusted_rows(self) -> Any:
        return None if self.trusted is None else self.trusted[1]

    def header(self) -> dict[str, Any]:
        judged = self.frame.height
        return {
            "version": self.snapshot.version.to_dict(),
            "trusted": None if self.trusted is None else self.trusted[0],
            "label_column": self.label,
            "rows": self.total,
            "rows_judged": judged,
            "sampled": judged < self.total,
        }

    def described(self, rank: dict[str, Any], by: str) -> dict[str, Any]:
        if by == "ingestion":
            ingestion = self.snapshot.ingestions[rank["group"]]
            rank.update(source=ingestion.source, actor=ingestion.actor, ingested_at=ingestion.created_at)
        return rank


def _trusted_rows(ctx: ServiceContext, snapshot: Snapshot) -> tuple[str, Any] | None:
    """The dataset's trusted version (its reference and rows, a uniform sample past MAX_ROWS), if any."""
    import polars as pl

    from mlwarden.data.compare import _frames
    from mlwarden.data.frames import PROVENANCE

    found = ctx.door.read(
        ctx.actor, Action.DATA_READ, snapshot.dataset.resource(), lambda c: trusted_version(c, snapshot.dataset.id)
    )
    if found is None:
        return None
    version = next(v for v in snapshot.history if v.number == found.version)
    frame = pl.concat(list(_frames(ctx.blobs, snapshot.view(version))), how="vertical")
    if frame.height > MAX_ROWS:
        frame = frame.sample(MAX_ROWS, seed=1)
    return version.ref, frame.drop(PROVENANCE).to_arrow()


def _revert_command(snapshot: Snapshot, by: str, suspects: list[str], project: str | None) -> str | None:
    if not suspects:
        return None
    """The revert that drops the most suspected group (a revert drops one source or ingestion at a time)."""
    flag = "--source" if by == "source" else "--ingestion"
    name, where = snapshot.dataset.name, project or snapshot.dataset.project
    return f"mlwarden data revert {name} {flag} {suspects[0]} --project {where} --note 'defend forensics: suspected'"
