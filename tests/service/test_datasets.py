"""Datasets through the service: versions, provenance, references, diff, blame, revert, export, refusals."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

from mlwarden.errors import ContractMismatch, GateBlocked, InputError, NotFound, PermissionDenied, UsageError
from mlwarden.service.workspace import Workspace
from tests.service.access_kit import Person
from tests.service.data_kit import PROJECT, frame


def add(ws: Workspace, data: object, source: str, **kw: object) -> object:
    return ws.data.add("tx", data, source=source, project=PROJECT, **kw)  # type: ignore[arg-type]


@pytest.fixture
def sam(data_team: dict[str, Person]) -> Workspace:
    return data_team["sam"].ws


def test_versions_append_replace_and_keep_provenance(sam: Workspace, tmp_path: Path) -> None:
    first = add(sam, frame(100), "vendor-a", label_column="label")
    frame(30, start=100, seed=1).to_parquet(tmp_path / "b.parquet")
    second = add(sam, tmp_path / "b.parquet", "vendor-b", note="weekly drop")
    third = add(sam, frame(10, start=500, seed=2), "vendor-c", replace=True)
    versions = sam.data.versions("tx", project=PROJECT)
    assert [(v.number, v.kind, v.rows) for v in versions] == [(1, "add", 100), (2, "add", 130), (3, "replace", 10)]
    assert [v.digest for v in versions] == [first.version.digest, second.version.digest, third.version.digest]  # type: ignore[attr-defined]
    shown = sam.data.show("tx@2", project=PROJECT)
    assert [(i["source"], i["rows_in_version"], i["actor"]) for i in shown["ingestions"]] == [
        ("vendor-a", 100, "sam"),
        ("vendor-b", 30, "sam"),
    ]
    assert shown["ingestions"][1]["input_name"] == "b.parquet" and shown["ingestions"][1]["note"] == "weekly drop"
    assert shown["ingestions"][1]["input_digest"].startswith("sha256:")
    assert shown["dataset"]["label_column"] == "label"


def test_references_by_number_latest_and_digest(sam: Workspace) -> None:
    add(sam, frame(10), "a")
    second = add(sam, frame(5, start=10), "b")
    digest = str(second.version.digest)  # type: ignore[attr-defined]
    for ref in ("tx", "tx@2", f"tx@{digest}", digest):
        assert sam.data.show(ref, project=PROJECT)["version"]["version"] == 2
    for bad, error in (("tx@0", UsageError), ("tx@9", NotFound), ("../tx", UsageError), ("tx@x", UsageError)):
        with pytest.raises(error):
            sam.data.show(bad, project=PROJECT)


def test_duplicate_rows_keep_their_multiplicity_and_provenance(sam: Workspace) -> None:
    rows = frame(3)
    add(sam, rows, "a")
    add(sam, rows.iloc[[0]], "b")
    digest = sam.data.blame("tx", project=PROJECT, where="id = 0")["rows"][0]["row_digest"]
    found = sam.data.blame("tx", project=PROJECT, row_digest=digest)
    assert found["matched"] == 2
    assert [r["source"] for r in found["rows"]] == ["a", "b"]
    assert [r["position"] for r in found["rows"]] == [0, 3]


def test_a_changed_row_after_row_10000_shows_in_digest_diff_and_blame(sam: Workspace) -> None:
    clean = frame(12_000)
    add(sam, clean, "vendor-a")
    tampered = clean.copy()
    tampered.loc[11_000, "amount"] = 99_999.0
    second = sam.data.add("tx2", tampered, source="vendor-a", project=PROJECT)
    first = sam.data.show("tx", project=PROJECT)["version"]
    assert first["digest"] != str(second.version.digest)  # type: ignore[attr-defined]
    add(sam, tampered, "vendor-z", replace=True)
    diff = sam.data.diff("tx@1", "tx@2", project=PROJECT, rows=5)
    assert (diff["added"], diff["removed"], diff["unchanged"]) == (1, 1, 11_999)
    assert diff["added_rows"][0]["values"]["amount"] == 99_999.0 and diff["added_rows"][0]["position"] == 11_000
    assert diff["by_source"] == [
        {"source": "vendor-a", "added": 0, "removed": 1},
        {"source": "vendor-z", "added": 1, "removed": 0},
    ]
    blamed = sam.data.blame("tx", project=PROJECT, where="amount > 10000")
    assert blamed["matched"] == 1 and blamed["rows"][0]["source"] == "vendor-z"


def test_diff_reports_column_statistics_of_what_changed(sam: Workspace) -> None:
    add(sam, frame(50), "a")
    poisoned = frame(20, start=50, seed=3).assign(amount=1000.0)
    add(sam, poisoned, "b")
    stats = sam.data.diff("tx@1", "tx@2", project=PROJECT)["columns"]["added"]
    assert stats["amount"]["mean"] == 1000.0 and stats["amount"]["count"] == 20
    assert stats["merchant"]["distinct"] == 7


@pytest.mark.parametrize("how", ["source", "ingestion", "since", "to"])
def test_revert(sam: Workspace, how: str) -> None:
    add(sam, frame(40), "good")
    v1 = sam.data.show("tx", project=PROJECT)["version"]
    bad = add(sam, frame(10, start=40, seed=9), "bad")
    add(sam, frame(5, start=50, seed=4), "good")
    since = bad.ingestion.created_at  # type: ignore[attr-defined]
    args = {
        "source": {"source": "bad"},
        "ingestion": {"ingestion": bad.ingestion.id},  # type: ignore[attr-defined]
        "since": {"since": since},
        "to": {"to": 1},
    }[how]
    change = sam.data.revert("tx", project=PROJECT, note="poisoned", **args)  # type: ignore[arg-type]
    version = change.version
    assert version is not None and version.kind == "revert" and version.number == 4
    expected_rows = {"source": 45, "ingestion": 45, "since": 40, "to": 40}[how]
    assert version.rows == expected_rows
    assert version.undid is not None and version.undid["by"] == how and version.undid["from_version"] == 3
    assert bad.ingestion.id in version.undid["ingestions"]  # type: ignore[attr-defined]
    sources = {s["source"] for s in sam.data.lineage("tx", project=PROJECT)["sources"]}
    assert sources == {"good"}
    if how in ("since", "to"):
        assert str(version.digest) == v1["digest"]  # the same rows as version 1: the same digest
    assert sam.data.verify("tx", project=PROJECT).ok


def test_revert_that_changes_nothing_is_refused(sam: Workspace) -> None:
    add(sam, frame(10), "a")
    with pytest.raises(UsageError, match="nothing to revert"):
        sam.data.revert("tx", project=PROJECT, source="nobody")
    with pytest.raises(UsageError, match="exactly one"):
        sam.data.revert("tx", project=PROJECT, source="a", to=1)


def test_export_round_trips_to_the_same_digest_in_every_format(sam: Workspace, tmp_path: Path) -> None:
    rows = frame(200)
    rows.loc[3, "merchant"] = ""
    rows.loc[4, "merchant"] = None
    add(sam, rows, "a")
    digest = sam.data.show("tx", project=PROJECT)["version"]["digest"]
    for suffix in ("parquet", "csv", "jsonl", "arrow"):
        out = tmp_path / f"out.{suffix}"
        assert sam.data.export("tx", out, project=PROJECT)["rows"] == 200
        copy = sam.data.add(f"copy-{suffix}", out, source="export", project=PROJECT)
        assert str(copy.version.digest) == digest, suffix  # type: ignore[union-attr]


def test_export_refuses_unknown_formats(sam: Workspace, tmp_path: Path) -> None:
    add(sam, frame(5), "a")
    with pytest.raises(UsageError, match="cannot tell the format"):
        sam.data.export("tx", tmp_path / "out" / "x.xlsx", project=PROJECT)
    assert not (tmp_path / "out").exists()


def test_sdk_takes_polars_and_pyarrow_tables(sam: Workspace) -> None:
    rows = frame(20)
    a = add(sam, rows, "pandas")
    b = sam.data.add("tx-pl", pl.from_pandas(rows), source="polars", project=PROJECT)
    c = sam.data.add("tx-pa", pa.Table.from_pandas(rows, preserve_index=False), source="arrow", project=PROJECT)
    assert str(a.version.digest) == str(b.version.digest) == str(c.version.digest)  # type: ignore[attr-defined]


def test_a_batch_breaking_the_contract_leaves_nothing_behind(sam: Workspace, tmp_path: Path) -> None:
    add(sam, frame(10), "a")
    before = sam.data.versions("tx", project=PROJECT)
    blobs_before = sorted(p.name for p in (sam.root / ".mlwarden" / "blobs" / "sha256").rglob("*"))
    for bad in (frame(3).drop(columns="label"), frame(3).assign(extra=1), frame(3).assign(id="x")):
        with pytest.raises(GateBlocked, match="rejected"):  # the gate rejects it, and says so in the log
            add(sam, bad, "b")
    (tmp_path / "bad.csv").write_bytes(b"id,amount\n1,2,3\n")
    with pytest.raises(InputError):
        add(sam, tmp_path / "bad.csv", "b")
    assert sam.data.versions("tx", project=PROJECT) == before
    rejected = sam.quality.gate("tx", project=PROJECT)["recent_rejections"]
    assert [r["verdict"] for r in rejected] == ["rejected"] * 3
    assert all(r["report"]["findings"][0]["name"] == "read" for r in rejected)
    assert sorted(p.name for p in (sam.root / ".mlwarden" / "blobs" / "sha256").rglob("*")) == blobs_before
    assert sam.data.verify(project=PROJECT).ok


def test_bad_names_are_refused_before_anything_is_read(sam: Workspace, tmp_path: Path) -> None:
    for name in ("../escape", "a/b", "", "UPPER", "x" * 200, "name with space", "tx@1"):
        with pytest.raises(UsageError, match="invalid dataset name"):
            sam.data.add(name, frame(1), source="a", project=PROJECT)
    for source in ("", "a\nb", "x" * 129):
        with pytest.raises(UsageError, match="invalid source"):
            sam.data.add("tx", frame(1), source=source, project=PROJECT)


def test_label_column_must_exist_and_is_fixed(sam: Workspace) -> None:
    with pytest.raises(ContractMismatch, match="label column"):
        add(sam, frame(3), "a", label_column="nope")
    add(sam, frame(3), "a", label_column="label")
    with pytest.raises(UsageError, match="label column"):
        add(sam, frame(3), "a", label_column="amount")


def test_project_defaults_from_the_environment(sam: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(UsageError, match="name a project"):
        sam.data.add("tx", frame(1), source="a")
    monkeypatch.setenv("MLWARDEN_PROJECT", PROJECT)
    assert sam.data.add("tx", frame(1), source="a").version is not None


def test_list(sam: Workspace) -> None:
    add(sam, frame(3), "a")
    listed = sam.data.list(project=PROJECT)
    assert [(d["name"], d["latest"]["version"], d["latest"]["rows"]) for d in listed] == [("tx", 1, 3)]


def test_pandas_rows_in_any_column_order(sam: Workspace) -> None:
    rows = frame(5)
    add(sam, rows, "a")
    shuffled = rows[list(reversed(rows.columns))]
    assert isinstance(shuffled, pd.DataFrame)
    add(sam, shuffled, "b")
    diff = sam.data.diff("tx@1", "tx@2", project=PROJECT)
    assert diff["added"] == 5  # the same rows again: five more copies, by fingerprint


def test_roles(data_team: dict[str, Person], tmp_path: Path) -> None:
    sam, alice, vic, bob = (data_team[n].ws for n in ("sam", "alice", "vic", "bob"))
    add(alice, frame(5), "a")  # ml_engineer may ingest
    with pytest.raises(PermissionDenied):
        alice.data.revert("tx", project=PROJECT, source="a")  # but not revert
    assert vic.data.show("tx", project=PROJECT)["version"]["rows"] == 5  # viewers see metadata
    for call in (
        lambda: add(vic, frame(1), "v"),
        lambda: vic.data.export("tx", tmp_path / "x.parquet", project=PROJECT),
        lambda: vic.data.blame("tx", where="id > 0", project=PROJECT),
        lambda: vic.data.diff("tx@1", "tx@1", project=PROJECT),
        lambda: bob.data.protect("tx", project=PROJECT),
    ):
        with pytest.raises(PermissionDenied):
            call()
    assert not (tmp_path / "x.parquet").exists()
    outsider = data_team["root"].ws  # a workspace admin without a role in the project
    with pytest.raises(PermissionDenied):
        outsider.data.export("tx", tmp_path / "y.parquet", project=PROJECT)
    denied = [
        e.record for e in outsider.audit.log() if e.record.outcome == "denied" and e.record.action.startswith("data.")
    ]
    assert len(denied) >= 6
    assert sam.data.verify(project=PROJECT).ok


def test_every_change_and_hand_out_is_audited(sam: Workspace, data_team: dict[str, Person], tmp_path: Path) -> None:
    first = add(sam, frame(5), "a")
    sam.data.export("tx", tmp_path / "x.csv", project=PROJECT)
    sam.data.blame("tx", where="id = 1", project=PROJECT)
    events = [e.record for e in data_team["root"].ws.audit.log() if e.record.action.startswith("data.")]
    assert [(e.action, e.actor) for e in events] == [
        ("data.add", "sam"),
        ("data.export", "sam"),
        ("data.export", "sam"),
    ]
    assert events[0].digest_after == str(first.version.digest)  # type: ignore[attr-defined]
    assert events[0].details["source"] == "a" and events[0].details["added_rows"] == 5
    assert events[1].details["what"] == "export" and events[2].details["what"] == "blame"
    assert data_team["root"].ws.audit.verify().ok


def test_an_ingest_staged_while_another_lands_is_rebased_onto_it(
    data_team: dict[str, Person], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second ingest was staged against version 1; version 2 landed meanwhile: it becomes version 3,
    with its rows after version 2's and a digest recomputed over all of them."""
    import mlwarden.service.datasets as datasets_module

    sam, alice = data_team["sam"].ws, data_team["alice"].ws
    add(sam, frame(10), "a")
    original = datasets_module.stage
    landed: list[object] = []

    def stage_then_let_another_land(*args: object, **kwargs: object) -> object:
        staged = original(*args, **kwargs)  # type: ignore[arg-type]
        if not landed:
            landed.append(True)  # before the nested add, which is staged through here too
            add(alice, frame(5, start=10, seed=1), "b")
        return staged

    monkeypatch.setattr(datasets_module, "stage", stage_then_let_another_land)
    change = add(sam, frame(7, start=20, seed=2), "c")
    monkeypatch.undo()
    assert change.version.number == 3 and change.version.rows == 22  # type: ignore[attr-defined]
    shown = sam.data.show("tx", project=PROJECT)
    assert [(i["source"], i["rows_in_version"]) for i in shown["ingestions"]] == [("a", 10), ("b", 5), ("c", 7)]
    assert sam.data.verify(project=PROJECT).ok
