"""`data verify`: re-hash every segment and recompute every version digest from the rows themselves.

It catches what was changed outside mlwarden: a segment blob modified, deleted or swapped for another
(the blob no longer matches its digest, or its rows no longer match the fingerprints recorded at
ingestion), and a version whose recorded digest its rows do not give. Unreferenced blobs (left by an
ingestion that crashed before committing) are not damage and are not reported.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from mlwarden.data.fingerprint import row_digests
from mlwarden.data.segments import read_segment
from mlwarden.data.sha import DIGEST_SIZE, Digests
from mlwarden.data.tree import TreeState
from mlwarden.data.versions import version_digest
from mlwarden.errors import IntegrityError, NotFound
from mlwarden.service.dataset_reads import Snapshot
from mlwarden.service.dataset_store import Ingestion, Version
from mlwarden.store.blobs import BlobStore


@dataclass(frozen=True)
class IntegrityProblem:
    project: str
    dataset: str
    item: str  # an ingestion id, or NAME@N for a version
    problem: str


@dataclass(frozen=True)
class IntegrityReport:
    datasets: int = 0
    ingestions: int = 0
    versions: int = 0
    rows: int = 0
    problems: tuple[IntegrityProblem, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "datasets": self.datasets,
            "ingestions": self.ingestions,
            "versions": self.versions,
            "rows_rehashed": self.rows,
            "problems": [p.__dict__ for p in self.problems],
        }


def check_datasets(blobs: BlobStore, snapshots: Iterable[Snapshot]) -> IntegrityReport:
    totals = IntegrityReport()
    problems: list[IntegrityProblem] = []
    for snapshot in snapshots:
        found = _check_one(blobs, snapshot, problems)
        totals = IntegrityReport(
            totals.datasets + 1,
            totals.ingestions + len(snapshot.ingestions),
            totals.versions + len(snapshot.history),
            totals.rows + found,
        )
    return IntegrityReport(totals.datasets, totals.ingestions, totals.versions, totals.rows, tuple(problems))


def _check_one(blobs: BlobStore, snapshot: Snapshot, problems: list[IntegrityProblem]) -> int:
    dataset = snapshot.dataset

    def report(item: str, problem: str) -> None:
        problems.append(IntegrityProblem(dataset.project, dataset.name, item, problem))

    digests: dict[str, Digests] = {}
    for ingestion in snapshot.ingestions.values():
        problem, rows = _segment_digests(blobs, snapshot, ingestion)
        if problem:
            report(ingestion.id, problem)
        else:
            digests[ingestion.id] = rows
    for version in snapshot.history:
        problem = _version_problem(snapshot, version, digests)
        if problem:
            report(version.ref, problem)
    return sum(len(d) for d in digests.values())


def _segment_digests(blobs: BlobStore, snapshot: Snapshot, ingestion: Ingestion) -> tuple[str | None, Digests]:
    schema = snapshot.dataset.schema
    empty = np.empty((0, DIGEST_SIZE), dtype=np.uint8)
    try:
        parts = [row_digests(batch, schema) for batch in read_segment(blobs, ingestion.segment, schema)]
    except NotFound:
        return f"segment blob {ingestion.segment} is missing", empty
    except IntegrityError:
        return f"segment blob {ingestion.segment} was modified: its content no longer matches its digest", empty
    except (pa.ArrowException, OSError) as exc:
        return f"segment blob {ingestion.segment} is unreadable: {str(exc)[:200]}", empty
    rows = np.concatenate(parts) if parts else empty
    if len(rows) != ingestion.rows or TreeState().extend(rows).root().hex() != ingestion.segment_root:
        return f"the rows of segment {ingestion.segment} do not match the fingerprints recorded at ingestion", empty
    return None, rows


def _version_problem(snapshot: Snapshot, version: Version, digests: dict[str, Digests]) -> str | None:
    missing = sorted({p.ingestion for p in version.manifest} - digests.keys())
    if missing:
        return "cannot be recomputed: damaged or unknown ingestion(s) " + ", ".join(missing)
    tree = TreeState()
    for piece in version.manifest:
        tree = tree.extend(digests[piece.ingestion][piece.start : piece.stop])
    if tree != version.tree or version_digest(snapshot.dataset.schema, tree) != version.digest:
        return f"its rows do not give its recorded digest {version.digest}"
    return None
