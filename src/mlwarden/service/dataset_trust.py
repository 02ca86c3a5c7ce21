"""Which version of a dataset the poisoning defenses trust: rows, kept append-only, and reconciled with
the audit log (a trust mark written into the database is named by `audit verify`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, insert, select

from mlwarden.audit.clock import format_ts, utcnow
from mlwarden.audit.verify import Problem
from mlwarden.domain.actions import Action
from mlwarden.store.tables import dataset_trust, datasets, next_seq


@dataclass(frozen=True)
class Trusted:
    version: int
    digest: str
    actor: str
    at: str
    note: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "digest": self.digest, "actor": self.actor, "at": self.at, "note": self.note}


def trusted_version(conn: Connection, dataset_id: str) -> Trusted | None:
    query = select(dataset_trust).where(dataset_trust.c.dataset_id == dataset_id).order_by(dataset_trust.c.seq.desc())
    row = conn.execute(query.limit(1)).mappings().first()
    if row is None or row["version"] is None:
        return None
    return Trusted(int(row["version"]), row["digest"], row["actor"], row["at"], row["note"])


def insert_trust(
    conn: Connection, dataset_id: str, version: int | None, digest: str | None, actor: str, note: str | None
) -> None:
    conn.execute(
        insert(dataset_trust).values(
            dataset_id=dataset_id,
            seq=next_seq(conn, dataset_trust, dataset_trust.c.dataset_id == dataset_id),
            version=version,
            digest=digest,
            note=note,
            actor=actor,
            at=format_ts(utcnow()),
        )
    )


def reconcile_trust(conn: Connection) -> list[Problem]:
    """Each dataset's trusted version against the newest `data.trust` event about it."""
    from mlwarden.service.reconcile import LoggedRow, compare_logged, replay

    expected: dict[str, LoggedRow] = {}
    for seq, doc in replay(conn, [Action.DATA_TRUST]):
        expected[doc["resource_id"]] = LoggedRow(seq, {"digest": doc.get("digest_after")})
    expected = {k: r for k, r in expected.items() if r.values["digest"] is not None}
    names = {d: f"{p}/{n}" for d, p, n in conn.execute(select(datasets.c.id, datasets.c.project, datasets.c.name))}
    found: dict[str, dict[str, object]] = {}
    for dataset_id, name in names.items():
        trusted = trusted_version(conn, dataset_id)
        if trusted is not None:
            found[name] = {"digest": trusted.digest}
    return compare_logged("trusted version", found, expected)
