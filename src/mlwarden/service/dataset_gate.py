"""The ingestion gate as the data service runs it: watch the batch while it is staged, then judge it.

While ``ingest.stage`` reads a batch, a ``Watch`` sees every conformed record batch: it profiles it,
runs the contract's checks and keeps a uniform sample. Then the batch is judged: the contract's and
checks' findings, and drift against a sample of the reference version (the latest accepted one, or
the one the policy pins). The profile and the sample go to the blob store; the verdict, its findings
and their digests become the ingestion's gate record, in the ingestion's transaction.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import polars as pl
import pyarrow as pa

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
from mlwarden.quality.profile import Profile, Profiler
from mlwarden.quality.sample import BATCH_ROWS, STORED_ROWS, BottomK, merge_samples, seed_for, without_key
from mlwarden.service.dataset_store import Dataset, Version
from mlwarden.service.door import Applied
from mlwarden.service.gate_store import ACCEPT_KIND, GateRecord, first_records, latest_records
from mlwarden.store.blobs import BlobStore

if TYPE_CHECKING:
    from sqlalchemy import Connection


@dataclass(frozen=True)
class Reference:
    """The version drift is measured against, and a uniform sample of its rows (None: no such version)."""

    number: int | None
    sample: pl.DataFrame | None


class Watch:
    """Sees each conformed record batch of one ingestion (``ingest.stage``'s observer)."""

    def __init__(self, contract: Contract, ingestion: str) -> None:
        self.contract = contract
        self.ingestion = ingestion
        self._sampler = BottomK(BATCH_ROWS, seed_for(ingestion))
        self._started: _Started | None = None

    def start(self, schema: Schema) -> None:
        checks, static = compile_checks(self.contract, schema)
        self._started = _Started(schema, static, CheckRunner(checks, self.contract), Profiler(schema))

    def add(self, batch: pa.RecordBatch) -> None:
        started = self._state()
        started.runner.add(batch)
        started.profiler.add(batch)
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
        sample = self._sampler.frame()
        evidence = None
        if sample is not None:
            current = without_key(sample)
            evidence = Evidence(started.schema, dataset_label, current, self.rows, reference.sample, reference.number)
        return judge_batch([*started.static, *started.runner.findings()], evidence, policy)

    def profile(self) -> Profile:
        return self._state().profiler.result()

    def stored_sample(self) -> pl.DataFrame | None:
        sample = self._sampler.frame()
        return sample.head(STORED_ROWS) if sample is not None else None


@dataclass
class _Started:
    schema: Schema
    static: list[Finding]
    runner: CheckRunner
    profiler: Profiler


def unreadable(message: str) -> Judgement:
    """The verdict on a batch that could not be read as the dataset's columns (a broken contract)."""
    finding = Finding("contract", "read", Outcome.FAILED, message)
    from mlwarden.defense.policy import DEFAULT_POLICY, judge

    return judge([finding], DEFAULT_POLICY)


def store_evidence(blobs: BlobStore, watch: Watch) -> tuple[Digest, Digest | None]:
    """Put the batch's profile (JSON) and its stored sample (Parquet) in the blob store."""
    profile = json.dumps(watch.profile().to_json(), sort_keys=True, separators=(",", ":")).encode()
    profile_digest = blobs.put_bytes(profile)
    sample = watch.stored_sample()
    if sample is None:
        return profile_digest, None
    buffer = io.BytesIO()
    sample.write_parquet(buffer, compression="zstd")
    return profile_digest, blobs.put_bytes(buffer.getvalue())


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
) -> pl.DataFrame | None:
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
            parts.append(pl.read_parquet(io.BytesIO(blobs.get_bytes(record.sample))))
        else:
            parts.append(_sample_piece(blobs, dataset.schema, version, piece, segments))
    merged = merge_samples(parts, STORED_ROWS)
    return without_key(merged) if merged is not None else None


def _sample_piece(
    blobs: BlobStore, schema: Schema, version: Version, piece: Any, segments: dict[str, Digest]
) -> pl.DataFrame:
    sampler = BottomK(STORED_ROWS, seed_for(piece.ingestion))
    view = VersionView(schema, version.manifest, segments)
    for chunk in iter_pieces(blobs, view, (piece,)):
        sampler.add(chunk.batch)
    frame = sampler.frame()
    return frame if frame is not None else pl.DataFrame()


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
    if record.profile:
        details["profile"] = str(record.profile)
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
            author_id=str(actor.user_id),
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


def _accept_approved(conn: Connection, request: Any) -> dict[str, DetailValue]:
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
        None, None, request.id, "approval", format_ts(utcnow()),
    )  # fmt: skip
    insert_gate(conn, dataset, accepted)
    return {"gate": accepted.id, "verdict": Verdict.ACCEPTED, "ingestion": first.ingestion}


def _register() -> None:
    from mlwarden.service import approvals

    approvals.on_approved(ACCEPT_KIND, _accept_approved)


_register()


def version_profile(conn: Connection, blobs: BlobStore, dataset: Dataset, version: Version) -> Profile:
    """The merge of the profiles of the version's ingestions (profiled from their rows where none was
    stored: ingestions from before the gate, or pieces of one)."""
    from mlwarden.quality.profile import Profiler
    from mlwarden.service.dataset_store import ingestions_of

    records = first_records(conn, dataset, {p.ingestion for p in version.manifest})
    segments = {i.id: i.segment for i in ingestions_of(conn, dataset).values()}
    merged: Profile | None = None
    for piece in version.manifest:
        record = records.get(piece.ingestion)
        if piece.start == 0 and record is not None and record.profile and record.report.get("rows") == piece.stop:
            part = Profile.from_json(json.loads(blobs.get_bytes(record.profile)))
        else:
            profiler = Profiler(dataset.schema)
            for chunk in iter_pieces(blobs, VersionView(dataset.schema, version.manifest, segments), (piece,)):
                profiler.add(chunk.batch)
            part = profiler.result()
        merged = part if merged is None else merged.merge(part)
    if merged is None:
        from mlwarden.quality.profile import profile_batches

        return profile_batches([], dataset.schema)
    return merged
