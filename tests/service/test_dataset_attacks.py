"""Attacks on datasets: unreviewed changes to protected data, tampering with stored rows or with the
metadata behind mlwarden's back, and a crash half-way through an ingestion."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from mlwarden.errors import IntegrityError, PermissionDenied, UsageError
from mlwarden.service.workspace import Workspace
from tests.conftest import Env
from tests.service.access_kit import Person
from tests.service.data_kit import PROJECT, frame


def segment_path(ws: Workspace, version: str = "tx") -> Path:
    digest = ws.data.show(version, project=PROJECT)["ingestions"][-1]["segment"]
    hex_ = digest.removeprefix("sha256:")
    return ws.root / ".mlwarden" / "blobs" / "sha256" / hex_[:2] / hex_[2:]


def overwrite(path: Path, data: bytes) -> None:
    os.chmod(path, 0o644)
    path.write_bytes(data)


@pytest.fixture
def protected(data_team: dict[str, Person]) -> dict[str, Person]:
    sam = data_team["sam"].ws
    sam.data.add("tx", frame(20), source="vendor-a", project=PROJECT)
    sam.data.protect("tx", project=PROJECT)
    return data_team


def test_a_protected_dataset_changes_only_through_an_approved_request(protected: dict[str, Person]) -> None:
    sam, bob = protected["sam"], protected["bob"]
    change = sam.ws.data.add("tx", frame(5, start=20), source="vendor-b", project=PROJECT)
    assert change.version is None and change.approval_request is not None
    assert [v.number for v in sam.ws.data.versions("tx", project=PROJECT)] == [1]
    with pytest.raises(PermissionDenied):
        sam.ws.approvals.approve(change.approval_request, totp=sam.code())  # never one's own change
    bob.ws.approvals.approve(change.approval_request, totp=bob.code())
    versions = sam.ws.data.versions("tx", project=PROJECT)
    assert [v.number for v in versions] == [1, 2]
    assert str(versions[1].digest) == change.digest and versions[1].approval_request == change.approval_request
    assert versions[1].actor == "sam"  # the author is the one who ingested; the approver is in the request
    assert sam.ws.data.verify(project=PROJECT).ok


def test_reverts_of_protected_data_need_approval_too(protected: dict[str, Person]) -> None:
    sam, bob = protected["sam"], protected["bob"]
    pending = sam.ws.data.add("tx", frame(5, start=20), source="vendor-b", project=PROJECT)
    bob.ws.approvals.approve(pending.approval_request or "", totp=bob.code())
    revert = sam.ws.data.revert("tx", project=PROJECT, source="vendor-b")
    assert revert.version is None and revert.approval_request
    protected["dan"].ws.approvals.approve(revert.approval_request, totp=protected["dan"].code())
    assert sam.ws.data.versions("tx", project=PROJECT)[-1].kind == "revert"


def test_a_superseded_request_cannot_be_approved(protected: dict[str, Person]) -> None:
    sam, bob = protected["sam"], protected["bob"]
    first = sam.ws.data.add("tx", frame(5, start=20), source="vendor-b", project=PROJECT)
    second = sam.ws.data.add("tx", frame(6, start=30), source="vendor-c", project=PROJECT)
    with pytest.raises(PermissionDenied, match="superseded"):
        bob.ws.approvals.approve(first.approval_request or "", totp=bob.code())
    bob.ws.approvals.approve(second.approval_request or "", totp=bob.code())
    assert sam.ws.data.show("tx", project=PROJECT)["version"]["digest"] == second.digest


def test_an_approval_for_a_dataset_that_moved_on_is_refused(protected: dict[str, Person], env: Env) -> None:
    sam, bob, root, carol = (protected[n] for n in ("sam", "bob", "root", "carol"))
    pending = sam.ws.data.add("tx", frame(5, start=20), source="vendor-b", project=PROJECT)
    request = root.ws.roles.grant("admin", "admin", PROJECT, totp=root.code()).approval_request
    carol.ws.approvals.approve(request or "", totp=carol.code())
    with pytest.raises(PermissionDenied):
        sam.ws.data.unprotect("tx", project=PROJECT)  # stewards may not lift protection
    with pytest.raises(PermissionDenied, match="step-up"):
        root.ws.data.unprotect("tx", project=PROJECT)  # admins only with a fresh TOTP code
    root.ws.data.unprotect("tx", project=PROJECT, totp=root.code())
    sam.ws.data.add("tx", frame(3, start=90), source="vendor-c", project=PROJECT)
    with pytest.raises(PermissionDenied, match="changed since request"):
        bob.ws.approvals.approve(pending.approval_request or "", totp=bob.code())
    assert [v.number for v in sam.ws.data.versions("tx", project=PROJECT)] == [1, 2]


def test_protect_bounds(data_team: dict[str, Person]) -> None:
    sam = data_team["sam"].ws
    sam.data.add("tx", frame(2), source="a", project=PROJECT)
    with pytest.raises(UsageError):
        sam.data.protect("tx", project=PROJECT, approvals=0)
    assert sam.data.protect("tx", project=PROJECT, approvals=2).required_approvals == 2


# -- tampering with stored rows ----------------------------------------------------------------------


@pytest.fixture
def sam(data_team: dict[str, Person]) -> Workspace:
    ws = data_team["sam"].ws
    ws.data.add("tx", frame(50), source="vendor-a", project=PROJECT)
    ws.data.add("tx", frame(20, start=50, seed=5), source="vendor-b", project=PROJECT)
    return ws


def problems(ws: Workspace) -> list[str]:
    report = ws.data.verify(project=PROJECT)
    return [f"{p.item}: {p.problem}" for p in report.problems]


def test_a_modified_segment_is_found_and_export_refuses_it(sam: Workspace, tmp_path: Path) -> None:
    path = segment_path(sam)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    overwrite(path, bytes(data))
    found = problems(sam)
    assert any("was modified" in p for p in found) and any("tx@2" in p for p in found)
    with pytest.raises(IntegrityError):
        sam.data.export("tx", tmp_path / "out.parquet", project=PROJECT)
    assert not (tmp_path / "out.parquet").exists()
    assert sam.data.export("tx@1", tmp_path / "v1.parquet", project=PROJECT)["rows"] == 50  # untouched rows


def test_a_deleted_segment_is_found(sam: Workspace) -> None:
    segment_path(sam).unlink()
    assert any("is missing" in p for p in problems(sam))


def test_a_swapped_segment_is_found(sam: Workspace) -> None:
    first = segment_path(sam, "tx@1")
    overwrite(segment_path(sam), first.read_bytes())  # vendor-b's rows replaced by a copy of vendor-a's
    assert any("was modified" in p for p in problems(sam))


def test_verify_is_recorded_with_its_result(sam: Workspace, data_team: dict[str, Person]) -> None:
    segment_path(sam).unlink()
    sam.data.verify(project=PROJECT)
    event = [e.record for e in data_team["root"].ws.audit.log() if e.record.action == "data.verify"][-1]
    assert event.actor == "sam" and event.details["problems"] == 2


@pytest.mark.parametrize("statement", ["UPDATE dataset_versions SET row_count = 1", "DELETE FROM dataset_ingestions"])
def test_versions_and_ingestions_are_append_only(sam: Workspace, statement: str) -> None:
    with pytest.raises(DBAPIError, match="immutable"), sam._ctx.db.write() as conn:
        conn.execute(text(statement))


def drop_append_only_triggers(ws: Workspace) -> None:
    with ws._ctx.db.write() as conn:
        for table in ("dataset_ingestions", "dataset_versions"):
            if conn.dialect.name == "postgresql":
                conn.execute(text(f"DROP TRIGGER {table}_append_only ON {table}"))
            else:
                conn.execute(text(f"DROP TRIGGER {table}_no_update"))


def test_metadata_rewritten_behind_mlwardens_back_is_found(sam: Workspace) -> None:
    other = sam.data.show("tx@1", project=PROJECT)["ingestions"][0]["segment"]
    drop_append_only_triggers(sam)
    with sam._ctx.db.write() as conn:
        conn.execute(text("UPDATE dataset_ingestions SET segment = :s WHERE source = 'vendor-b'"), {"s": other})
        conn.execute(text("UPDATE dataset_versions SET digest = :d WHERE number = 1"), {"d": "sha256:" + "0" * 64})
    found = problems(sam)
    assert any("do not match the fingerprints recorded" in p for p in found)
    assert any(p.startswith("tx@1:") and "recorded digest" in p for p in found)


# -- a crash half-way through an ingestion ------------------------------------------------------------


def test_sigkill_during_ingest_leaves_no_version_and_verify_clean(
    data_team: dict[str, Person], env: Env, tmp_path: Path
) -> None:
    """The child is killed while it reads (its progress callback says so): segment half-written."""
    sam = data_team["sam"]
    sam.ws.data.add("tx", frame(10), source="vendor-a", project=PROJECT)
    big = tmp_path / "big.csv"
    frame(200_000, seed=3).to_csv(big, index=False)
    token = sam.ws.tokens.create("crash-test").plaintext
    ready = tmp_path / "ready"
    script = textwrap.dedent(
        f"""
        import time
        from pathlib import Path
        from mlwarden.service.workspace import open_workspace
        ws = open_workspace({str(env.root)!r}, token={token!r})
        def progress(n):
            Path({str(ready)!r}).touch()
            time.sleep(0.05)
        ws.data.add("tx", {str(big)!r}, source="vendor-x", project={PROJECT!r}, progress=progress)
        """
    )
    child = subprocess.Popen([sys.executable, "-c", script])
    try:
        for _ in range(600):
            if ready.exists() or child.poll() is not None:
                break
            subprocess.run(["sleep", "0.05"], check=True)
        assert ready.exists(), "the child never started reading"
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait(timeout=60)
    assert child.returncode == -signal.SIGKILL
    assert [v.number for v in sam.ws.data.versions("tx", project=PROJECT)] == [1]
    assert sam.ws.data.verify(project=PROJECT).ok
    assert data_team["root"].ws.audit.verify().ok


# -- the log against the tables -----------------------------------------------------------------------


def state_problems(ws: Workspace) -> list[str]:
    return [p.message for p in ws.audit.verify().problems if p.kind == "state"]


def test_the_log_accounts_for_every_version_ingestion_and_protection(protected: dict[str, Person]) -> None:
    sam, bob, root = protected["sam"], protected["bob"], protected["root"]
    pending = sam.ws.data.add("tx", frame(5, start=20), source="vendor-b", project=PROJECT)
    bob.ws.approvals.approve(pending.approval_request or "", totp=bob.code())
    revert = sam.ws.data.revert("tx", project=PROJECT, source="vendor-b")
    bob.ws.approvals.approve(revert.approval_request or "", totp=bob.code())
    sam.ws.data.add("other", frame(3), source="a", project=PROJECT)
    assert state_problems(root.ws) == []


@pytest.mark.parametrize(
    ("tamper", "expected"),
    [
        ("UPDATE datasets SET protected = false", "'fraud/tx': protected in the database differs"),
        ("UPDATE dataset_versions SET digest = 'sha256:' || '{zeros}'", "'fraud/tx@1': digest in the database differs"),
        ("UPDATE dataset_ingestions SET source = 'trusted-vendor'", "source in the database differs"),
        ("UPDATE dataset_versions SET manifest = '[]'", "manifest in the database differs"),
    ],
)
def test_metadata_edits_without_events_are_named_by_audit_verify(
    protected: dict[str, Person], tamper: str, expected: str
) -> None:
    root = protected["root"].ws
    drop_append_only_triggers(root)
    with root._ctx.db.write() as conn:
        conn.execute(text(tamper.replace("{zeros}", "0" * 64)))
    assert any(expected in p for p in state_problems(root)), state_problems(root)


def test_a_version_inserted_without_an_event_is_named(sam: Workspace, data_team: dict[str, Person]) -> None:
    root = data_team["root"].ws
    with root._ctx.db.write() as conn:
        conn.execute(
            text(
                "INSERT INTO dataset_versions "
                "(dataset_id, number, digest, kind, row_count, tree, manifest, actor, created_at) "
                "SELECT dataset_id, 3, digest, 'revert', row_count, tree, manifest, 'sam', created_at "
                "FROM dataset_versions WHERE number = 1"
            )
        )
    assert any("'fraud/tx@3' is in the database but no audit event created it" in p for p in state_problems(root))


# -- large inputs stream ------------------------------------------------------------------------------

_RSS_PROBE = """
import resource, sys
from mlwarden.data import readers
from mlwarden.service.workspace import open_workspace
readers.BLOCK_SIZE = 1 << 20  # small blocks: the reader's read-ahead fills up within the smaller file
with open_workspace(sys.argv[1], token=sys.argv[2]) as ws:
    ws.data.add(sys.argv[3], sys.argv[4], source="big", project="fraud")
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
"""


def _peak_mib(env: Env, token: str, dataset: str, path: Path) -> int:
    done = subprocess.run(
        [sys.executable, "-c", _RSS_PROBE, str(env.root), token, dataset, str(path)],
        check=True, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    return int(done.stdout.strip().splitlines()[-1])


def _write_csv(path: Path, chunks: int) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    rng = np.random.default_rng(0)
    with pa_csv.CSVWriter(str(path), pa.schema([("id", pa.int64()), ("x", pa.float64()), ("s", pa.string())])) as out:
        for chunk in range(chunks):
            n = 200_000
            ids = np.arange(chunk * n, (chunk + 1) * n)
            out.write_table(pa.table({"id": ids, "x": rng.normal(size=n), "s": [f"row-{i:012d}" for i in ids]}))


@pytest.mark.slow
def test_a_large_csv_is_ingested_in_bounded_memory(data_team: dict[str, Person], env: Env, tmp_path: Path) -> None:
    """Peak memory does not grow with the file: three times the rows (60 MB more of CSV than the smaller
    file) cost less than a quarter of that in peak memory. (It grows with the read block: the CSV reader
    keeps a few blocks ahead; the probe uses 1 MB blocks so that this fills up within the smaller file.)"""
    token = data_team["sam"].ws.tokens.create("rss").plaintext
    smaller, bigger = tmp_path / "smaller.csv", tmp_path / "bigger.csv"
    _write_csv(smaller, 5)
    _write_csv(bigger, 15)
    grown_mib = (bigger.stat().st_size - smaller.stat().st_size) / 2**20
    assert grown_mib > 60
    peaks = [_peak_mib(env, token, name, path) for name, path in (("smaller", smaller), ("bigger", bigger))]
    assert peaks[1] - peaks[0] < grown_mib / 4, peaks
    assert data_team["sam"].ws.data.show("bigger", project=PROJECT)["version"]["rows"] == 3_000_000
