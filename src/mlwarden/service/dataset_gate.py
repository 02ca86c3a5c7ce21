"""The ingestion gate as the data service runs it: watch the batch while it is staged, then judge it.

While ``ingest.stage`` reads a batch, a ``Watch`` sees every conformed record batch: it runs the
contract's checks and keeps a uniform sample. Then the batch is judged: the contract's and
checks' findings, and drift against a sample of the reference version (the latest accepted one, or
the one the policy pins). The sample goes to the blob store; the verdict, its findings and the sample's
digest become the ingestion's gate record, in the ingestion's transaction.

Profiles are not made here: the gate does not need them, and they cost as much CPU as fingerprinting. A
version's profile is made on first request, from its ingestions' rows, and each ingestion's profile is
kept (``dataset_profiles``) so that later versions reuse it.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, replace
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from sqlalchemy import Connection, insert, select

from mlwarden.audit.clock import format_ts, utcnow
from mlwarden.data.rows import VersionView, iter_pieces
from mlwarden.data.schema import Schema
from mlwarden.defense.gate import judge_batch
from mlwarden.defense.policy import Judgement, Policy, Verdict
from mlwarden.domain.digests import Digest
from mlwarden.domain.events import Actor, DetailValue, Resource
from mlwarden.quality.checks import CheckRunner, compile_checks
from mlwarden.quality.contract import Contract
from mlwarden.quality.evidence import Evidence
from mlwarden.quality.interface import Finding, Outcome
from mlwarden.quality.profile import Profile
from mlwarden.quality.sample import BATCH_ROWS, STORED_ROWS, BottomK, merge_samples, seed_for, without_key
from mlwarden.service.dataset_store import Dataset, Version
from mlwarden.service.door import Applied
from mlwarden.service.gate_store import ACCEPT_KIND, GateRecord, first_records, latest_records
from mlwarden.store.blobs import BlobStore


@dataclass(frozen=True)
class Reference:
    """The version drift is measured against, and a uniform sample of its rows (None: no such version)."""

    number: int | None
    sample: pa.Table | None


class Watch:
    """Sees each conformed record batch of one ingestion (``ingest.stage``'s observer)."""

    def __init__(self, contract: Contract, ingestion: str) -> None:
        self.contract = contract
        self.ingestion = ingestion
        self._sampler = BottomK(BATCH_ROWS, seed_for(ingestion))
        self._started: _Started | None = None

    def start(self, schema: Schema) -> None:
        checks, static = compile_checks(self.contract, schema)
        self._started = _Started(schema, static, CheckRunner(checks, self.contract))

    def add(self, batch: pa.RecordBatch) -> None:
        started = self._state()
        started.runner.add(batch)
        self._sampler.add(batch)

    def _state(self) -> _Started:
        if self._started is None:
            raise RuntimeError("Watch.start() first: the schema is not known yet")
        return self._started

    @property
    def rows(self) -> int:
        return self._started.runner.rows if self._started else 0

    def judge(self, dataset_label: str | None, reference: Reference, policy: Policy) -> Judgement:
        started = self._state()
        sample = self._sampler.table()
        evidence = None
        if sample is not None:
            current = without_key(sample)
            evidence = Evidence(started.schema, dataset_label, current, self.rows, reference.sample, reference.number)
        return judge_batch([*started.static, *started.runner.findings()], evidence, policy)

    def stored_sample(self) -> pa.Table | None:
        sample = self._sampler.table()
        return sample.slice(0, STORED_ROWS) if sample is not None else None


@dataclass
class _Started:
    schema: Schema
    static: list[Finding]
    runner: CheckRunner


def unreadable(message: str) -> Judgement:
    """The verdict on a batch that could not be read as the dataset's columns (a broken contract)."""
    finding = Finding("contract", "read", Outcome.FAILED, message)
    from mlwarden.defense.policy import DEFAULT_POLICY, judge

    return judge([finding], DEFAULT_POLICY)


def store_evidence(blobs: BlobStore, watch: Watch) -> Digest | None:
    """Put the batch's stored sample (Parquet) in the blob store."""
    sample = watch.stored_sample()
    if sample is None:
        return None
    buffer = io.BytesIO()
    pq.write_table(sample, buffer, compression="zstd")
    return blobs.put_bytes(buffer.getvalue())


# -- the reference ---------------------------------------------------------------------------------------


def choose_reference(conn: Connection, dataset: Dataset, history: list[Version], pinned: int | None) -> Version | None:
    """The pinned version, or the latest whose every ingestion is accepted."""
    if pinned is not None:
        return next((v for v in history if v.number == pinned), None)
    ids = {p.ingestion for v in history for p in v.manifest}
    latest = latest_records(conn, dataset, ids)
    for version in sorted(history, key=lambda v: v.number, reverse=True):
        if all(latest[p.ingestion].verdict == Verdict.ACCEPTED for p in version.manifest if p.ingestion in latest):
            return version
    return None


def reference_sample(
    conn: Connection, blobs: BlobStore, dataset: Dataset, version: Version, segments: dict[str, Digest]
) -> pa.Table | None:
    """A uniform sample of ``version``'s rows: the merge of its ingestions' stored samples.

    An ingestion without one (made before the gate existed) or only partly in the version is sampled
    from its rows now, with the same seed, so the merge stays uniform.
    """
    records = first_records(conn, dataset, {p.ingestion for p in version.manifest})
    parts = []
    for piece in version.manifest:
        record = records.get(piece.ingestion)
        whole = piece.start == 0 and record is not None and record.report.get("rows") == piece.stop
        if whole and record is not None and record.sample is not None:
            parts.append(pq.ParquetFile(io.BytesIO(blobs.get_bytes(record.sample))).read())
        else:
            sampled = _sample_piece(blobs, dataset.schema, version, piece, segments)
            parts += [sampled] if sampled is not None else []
    merged = merge_samples(parts, STORED_ROWS)
    return without_key(merged) if merged is not None else None


def _sample_piece(
    blobs: BlobStore, schema: Schema, version: Version, piece: Any, segments: dict[str, Digest]
) -> pa.Table | None:
    sampler = BottomK(STORED_ROWS, seed_for(piece.ingestion))
    view = VersionView(schema, version.manifest, segments)
    for chunk in iter_pieces(blobs, view, (piece,)):
        sampler.add(chunk.batch)
    return sampler.table()


# -- what an ingest needs, read before staging -----------------------------------------------------------


@dataclass(frozen=True)
class AddBase:
    dataset: Dataset | None
    latest: Version | None
    contract: Contract
    policy: Policy
    reference: Reference


def add_base(conn: Connection, blobs: BlobStore, dataset: Dataset | None) -> AddBase:
    """The dataset, its latest version, its contract and policy, and the reference to judge drift by."""
    from mlwarden.defense.policy import DEFAULT_POLICY
    from mlwarden.service.dataset_store import ingestions_of, versions_of
    from mlwarden.service.gate_store import contract_of, policy_of

    if dataset is None:
        return AddBase(None, None, Contract(), DEFAULT_POLICY, Reference(None, None))
    history = versions_of(conn, dataset)
    policy = policy_of(conn, dataset)
    chosen = choose_reference(conn, dataset, history, policy.drift.reference)
    sample = None
    if chosen is not None:
        segments = {i.id: i.segment for i in ingestions_of(conn, dataset).values()}
        sample = reference_sample(conn, blobs, dataset, chosen, segments)
    reference = Reference(chosen.number if chosen else None, sample)
    return AddBase(dataset, history[-1] if history else None, contract_of(conn, dataset), policy, reference)


# -- recording verdicts ----------------------------------------------------------------------------------


def rejection_message(judgement: Judgement) -> str:
    deciding = [f for f in judgement.findings if f.name in judgement.deciding]
    shown = "; ".join(f.message for f in deciding[:3])
    more = f" (and {len(deciding) - 3} more)" if len(deciding) > 3 else ""
    return f"the ingestion gate rejected the batch: {shown}{more}"


def record_rejection(conn: Connection, dataset: Dataset | None, record: GateRecord) -> Applied[None]:
    """Inside the door: keep the rejected batch's record (when its dataset exists) and say so in the event."""
    from mlwarden.service.gate_store import insert_gate

    details = gate_details(record)
    if dataset is not None:
        insert_gate(conn, dataset, record)
    else:  # a new dataset's first batch: there is no dataset to keep a record under, only the event
        details["unrecorded_gate"] = details.pop("gate")
    return Applied(None, details=details)


def gate_details(record: GateRecord) -> dict[str, DetailValue]:
    details: dict[str, DetailValue] = {
        "gate": record.id,
        "verdict": record.verdict,
        "ingestion": record.ingestion,
        "deciding": ",".join(record.report.get("deciding", []))[:1000],
    }
    if record.sample:
        details["sample"] = str(record.sample)
    return details


def record_verdict(conn: Connection, actor: Actor, dataset: Dataset, record: GateRecord) -> dict[str, DetailValue]:
    """Keep an admitted batch's record; a quarantined one opens a request to accept it."""
    from mlwarden.service import approvals
    from mlwarden.service.gate_store import ACCEPT_KIND, insert_gate

    if record.verdict == Verdict.QUARANTINED:
        request_id = approvals.open_request(
            conn,
            kind=ACCEPT_KIND,
            project=dataset.project,
            resource=ingestion_resource(dataset, record.ingestion),
            digest=record.id,
            author_id=actor.user_id,
            required_count=dataset.required_approvals,
            payload={"dataset_id": dataset.id, "ingestion": record.ingestion, "gate": record.id},
        )
        record = replace(record, approval_request=request_id)
    insert_gate(conn, dataset, record)
    details = gate_details(record)
    if record.approval_request:
        details["accept_request"] = record.approval_request
    return details


def ingestion_resource(dataset: Dataset, ingestion: str) -> Resource:
    return Resource("dataset", f"{dataset.project}/{dataset.name}#{ingestion}", dataset.project)


def _accept_approved(conn: Connection, request: Any, _ctx: object) -> dict[str, DetailValue]:
    """An approver accepted a quarantined ingestion: a new record says so (the old one stays)."""
    from mlwarden.service.dataset_store import require_dataset
    from mlwarden.service.door import Refusal
    from mlwarden.service.gate_store import gate_records, insert_gate

    payload = request.payload
    name = request.resource_id.split("/", 1)[1].split("#", 1)[0]
    dataset = require_dataset(conn, request.project, name)
    records = gate_records(conn, dataset, [payload["ingestion"]])
    if not records or records[-1].id != request.digest or records[-1].verdict != Verdict.QUARANTINED:
        raise Refusal(f"ingestion {payload['ingestion']} is no longer the quarantined batch request {request.id} named")
    first = records[0]
    accepted = GateRecord(
        "gate_" + request.id.removeprefix("apr_"), first.ingestion, Verdict.ACCEPTED,
        {"accepted_by": request.id, "was": first.verdict, "rows": first.report.get("rows")},
        None, request.id, "approval", format_ts(utcnow()),
    )  # fmt: skip
    insert_gate(conn, dataset, accepted)
    return {"gate": accepted.id, "verdict": Verdict.ACCEPTED, "ingestion": first.ingestion}


def _register() -> None:
    from mlwarden.service import approvals

    approvals.on_approved(ACCEPT_KIND, _accept_approved)


_register()


def version_profile(conn: Connection, blobs: BlobStore, dataset: Dataset, version: Version) -> Profile:
    """The merge of the profiles of the version's ingestions, each profiled from its rows the first time
    and kept (a piece holding only part of an ingestion is profiled from its rows every time)."""
    from mlwarden.quality.profile import Profiler, profile_batches
    from mlwarden.service.dataset_store import ingestions_of
    from mlwarden.store.tables import dataset_profiles

    ingestions = ingestions_of(conn, dataset)
    segments = {i.id: i.segment for i in ingestions.values()}
    kept = dict(
        conn.execute(
            select(dataset_profiles.c.ingestion_id, dataset_profiles.c.profile).where(
                dataset_profiles.c.dataset_id == dataset.id
            )
        ).all()
    )
    merged: Profile | None = None
    view = VersionView(dataset.schema, version.manifest, segments)
    for piece in version.manifest:
        whole = piece.start == 0 and piece.stop == ingestions[piece.ingestion].rows
        if whole and piece.ingestion in kept:
            part = Profile.from_json(json.loads(blobs.get_bytes(Digest.parse(kept[piece.ingestion]))))
        else:
            profiler = Profiler(dataset.schema)
            for chunk in iter_pieces(blobs, view, (piece,)):
                profiler.add(chunk.batch)
            part = profiler.result()
            if whole:
                _keep_profile(conn, blobs, dataset, piece.ingestion, part)
        merged = part if merged is None else merged.merge(part)
    return merged if merged is not None else profile_batches([], dataset.schema)


def _keep_profile(conn: Connection, blobs: BlobStore, dataset: Dataset, ingestion: str, profile: Profile) -> None:
    from mlwarden.store.tables import dataset_profiles

    document = json.dumps(profile.to_json(), sort_keys=True, separators=(",", ":")).encode()
    conn.execute(
        insert(dataset_profiles).values(
            ingestion_id=ingestion,
            dataset_id=dataset.id,
            profile=str(blobs.put_bytes(document)),
            created_at=format_ts(utcnow()),
        )
    )
