"""What the dataset queries return, and how they are computed from versions and segments."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlwarden.data.rows import VersionView
from mlwarden.data.tree import TreeState
from mlwarden.data.versions import Manifest, without
from mlwarden.service.dataset_store import Dataset, Ingestion, Version

if TYPE_CHECKING:  # polars loads only for the queries that return rows (diff, blame)
    import polars as pl

    from mlwarden.data.compare import RowDiff


@dataclass(frozen=True)
class Snapshot:
    """One version with everything needed to read it: dataset, ingestions, every version."""

    dataset: Dataset
    version: Version
    ingestions: Mapping[str, Ingestion]
    history: tuple[Version, ...]

    def view(self, version: Version | None = None) -> VersionView:
        manifest = (version or self.version).manifest
        return VersionView(self.dataset.schema, manifest, {i: self.ingestions[i].segment for i in _ids(manifest)})


def _ids(manifest: Manifest) -> list[str]:
    return [piece.ingestion for piece in manifest]


def contributions(snapshot: Snapshot) -> list[dict[str, Any]]:
    """Each ingestion in the version with the rows it contributes."""
    rows: Counter[str] = Counter()
    for piece in snapshot.version.manifest:
        rows[piece.ingestion] += piece.rows
    return [snapshot.ingestions[i].to_dict() | {"rows_in_version": n} for i, n in rows.items()]


def sources(snapshot: Snapshot) -> list[dict[str, Any]]:
    by_source: dict[str, dict[str, Any]] = {}
    for item in contributions(snapshot):
        entry = by_source.setdefault(
            item["source"], {"source": item["source"], "rows": 0, "ingestions": 0, "actors": set()}
        )
        entry["rows"] += item["rows_in_version"]
        entry["ingestions"] += 1
        entry["actors"].add(item["actor"])
    return [entry | {"actors": sorted(entry["actors"])} for entry in by_source.values()]


def show(snapshot: Snapshot) -> dict[str, Any]:
    return {
        "dataset": snapshot.dataset.to_dict(),
        "version": snapshot.version.to_dict(),
        "ingestions": contributions(snapshot),
        "sources": sources(snapshot),
    }


def lineage(snapshot: Snapshot) -> dict[str, Any]:
    """Where a version's rows came from, and the chain of versions that led to it."""
    history = [v.to_dict() for v in snapshot.history if v.number <= snapshot.version.number]
    return {
        "dataset": snapshot.dataset.name,
        "project": snapshot.dataset.project,
        "version": snapshot.version.to_dict(),
        "sources": sources(snapshot),
        "ingestions": contributions(snapshot),
        "history": history,
    }


def diff_summary(a: Snapshot, b: Snapshot, result: RowDiff, rows: int | None) -> dict[str, Any]:
    from mlwarden.data.frames import column_stats

    schema = a.dataset.schema
    summary: dict[str, Any] = {
        "a": a.version.to_dict(),
        "b": b.version.to_dict(),
        "added": result.added.height,
        "removed": result.removed.height,
        "unchanged": result.unchanged,
        "by_source": _by_source(result, {**a.ingestions, **b.ingestions}),
        "columns": {
            "added": column_stats(result.added, schema),
            "removed": column_stats(result.removed, schema),
        },
    }
    if rows is not None:
        summary["added_rows"] = provenance_rows(result.added.head(rows), b.ingestions)
        summary["removed_rows"] = provenance_rows(result.removed.head(rows), a.ingestions)
    return summary


def _by_source(result: RowDiff, ingestions: Mapping[str, Ingestion]) -> list[dict[str, Any]]:
    from mlwarden.data.frames import INGESTION

    counts: dict[str, Counter[str]] = {}
    for side, data in (("added", result.added), ("removed", result.removed)):
        for ingestion_id, n in Counter(data.get_column(INGESTION).to_list()).items():
            counts.setdefault(ingestions[ingestion_id].source, Counter())[side] += n
    return [{"source": s, "added": c["added"], "removed": c["removed"]} for s, c in sorted(counts.items())]


def provenance_rows(data: pl.DataFrame, ingestions: Mapping[str, Ingestion]) -> list[dict[str, Any]]:
    """Rows as JSON: their values, their position and digest, and the ingestion that brought them."""
    from mlwarden.data.frames import DIGEST, INGESTION, POSITION, PROVENANCE, jsonable_row

    out = []
    for row in data.iter_rows(named=True):
        ingestion = ingestions[row[INGESTION]]
        values = {k: v for k, v in row.items() if k not in PROVENANCE}
        out.append(
            {
                "position": row[POSITION],
                "row_digest": "sha256:" + row[DIGEST].hex(),
                "values": jsonable_row(values),
                "ingestion": ingestion.id,
                "source": ingestion.source,
                "actor": ingestion.actor,
                "ingested_at": ingestion.created_at,
            }
        )
    return out


def reuse_tree(history: tuple[Version, ...], manifest: Manifest) -> TreeState | None:
    """The tree of an earlier version with exactly this manifest: a revert to known content needs no
    re-hashing."""
    for version in reversed(history):
        if version.manifest == manifest:
            return version.tree
    return None


def revert_manifest(latest: Version, drop: set[str]) -> Manifest:
    return without(latest.manifest, drop)
