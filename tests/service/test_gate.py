"""The ingestion gate through the SDK: contracts, checks, drift, verdicts, quarantine and acceptance."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest

from mlwarden.errors import GateBlocked, PermissionDenied, UsageError
from mlwarden.quality.contract import ContractError
from mlwarden.quality.evidence import Evidence
from mlwarden.quality.interface import Check, Finding, GateStep
from mlwarden.service.workspace import Workspace
from tests.service.access_kit import Person
from tests.service.data_kit import PROJECT, frame

CONTRACT = {
    "version": 1,
    "rows": {"min": 10},
    "label": {"column": "label", "classes": [0, 1]},
    "columns": {
        "id": {"type": "int", "nullable": False, "unique": True},
        "amount": {"type": "float", "min": 0, "max": 1000, "finite": True},
        "merchant": {"type": "string", "regex": "^m[0-9]+$"},
        "online": {"type": "bool"},
        "at": {"type": "timestamp"},
        "label": {"type": "int", "allowed": [0, 1]},
    },
}


@pytest.fixture
def sam(data_team: dict[str, Person]) -> Workspace:
    return data_team["sam"].ws


def add(ws: Workspace, data: object, source: str = "vendor-a", **kw: object) -> object:
    return ws.data.add("tx", data, source=source, project=PROJECT, label_column="label", **kw)  # type: ignore[arg-type]


def test_a_clean_batch_is_accepted_and_its_verdict_recorded(sam: Workspace) -> None:
    first = add(sam, frame(500))
    assert first.verdict == "accepted"  # type: ignore[attr-defined]
    sam.quality.set_contract("tx", CONTRACT, project=PROJECT)
    second = add(sam, frame(500, seed=1, start=500))
    assert second.verdict == "accepted"  # type: ignore[attr-defined]
    report = sam.quality.gate("tx", project=PROJECT)
    assert report["verdict"] == "accepted"
    findings = report["ingestions"][1]["record"]["report"]["findings"]
    assert {f["name"] for f in findings if f["step"] == "check"} >= {"id.unique", "amount.max", "label.label_classes"}
    assert all(f["outcome"] in ("passed", "skipped") for f in findings), findings


@pytest.mark.parametrize(
    ("broken", "name"),
    [
        (lambda f: f.assign(amount=-5.0), "amount.min"),
        (lambda f: f.assign(amount=np.inf), "amount.max"),
        (lambda f: pl.from_pandas(f).with_columns(amount=pl.lit(float("nan"))), "amount.finite"),
        (lambda f: f.assign(merchant="evil"), "merchant.regex"),
        (lambda f: f.assign(label=7), "label.allowed"),
        (lambda f: f.assign(id=1), "id.unique"),
        (lambda f: f.head(5), "rows.min"),
        (lambda f: f.assign(id=pd.array([None] * len(f), dtype="Int64")), "id.not_null"),
    ],
)
def test_each_failing_check_rejects_with_counts_and_a_sample(sam: Workspace, broken: object, name: str) -> None:
    add(sam, frame(200))
    sam.quality.set_contract("tx", CONTRACT, project=PROJECT)
    with pytest.raises(GateBlocked):
        add(sam, broken(frame(50, seed=2, start=1000)))  # type: ignore[operator]
    assert len(sam.data.versions("tx", project=PROJECT)) == 1
    rejected = sam.quality.gate("tx", project=PROJECT)["recent_rejections"][-1]
    failed = {f["name"]: f for f in rejected["report"]["findings"] if f["outcome"] == "failed"}
    assert name in failed and name in rejected["report"]["deciding"]
    if name != "rows.min":
        assert failed[name]["failed_rows"] > 0 and failed[name]["sample"]


def test_a_drifted_batch_is_quarantined_then_accepted_by_an_approver(data_team: dict[str, Person]) -> None:
    sam, bob = data_team["sam"], data_team["bob"]
    add(sam.ws, frame(3000))
    drifted = frame(3000, seed=5, start=3000).assign(amount=lambda f: f["amount"] + 30)
    change = add(sam.ws, drifted, source="vendor-b")
    assert change.verdict == "quarantined" and change.accept_request  # type: ignore[attr-defined]
    report = sam.ws.quality.gate("tx", project=PROJECT)
    assert report["verdict"] == "quarantined"
    assert "drift.amount" in report["ingestions"][1]["record"]["report"]["deciding"]
    with pytest.raises(PermissionDenied):  # never by its author
        sam.ws.approvals.approve(change.accept_request, totp=sam.code())  # type: ignore[attr-defined]
    bob.ws.approvals.approve(change.accept_request, totp=bob.code())  # type: ignore[attr-defined]
    assert sam.ws.quality.gate("tx", project=PROJECT)["verdict"] == "accepted"
    assert data_team["root"].ws.audit.verify().ok


def test_a_quarantined_batch_is_dropped_by_a_revert(sam: Workspace) -> None:
    add(sam, frame(3000))
    change = add(sam, frame(3000, seed=5, start=3000).assign(amount=lambda f: f["amount"] * 3), source="vendor-b")
    assert change.verdict == "quarantined"  # type: ignore[attr-defined]
    reverted = sam.data.revert("tx", project=PROJECT, source="vendor-b")
    assert reverted.version is not None
    assert sam.quality.gate(reverted.version.ref, project=PROJECT)["verdict"] == "accepted"
    # the quarantined version is not a drift reference: the next clean batch is judged against version 1
    third = add(sam, frame(1000, seed=9, start=9000))
    assert third.verdict == "accepted"  # type: ignore[attr-defined]


def test_a_check_that_raises_fails_closed(sam: Workspace) -> None:
    add(sam, frame(100))
    broken = {"version": 1, "columns": {"merchant": {"min": 5}}}  # a number bound on a string column
    sam.quality.set_contract("tx", broken, project=PROJECT)
    with pytest.raises(GateBlocked, match="could not check"):
        add(sam, frame(100, seed=1, start=100))


def test_the_policy_decides_what_each_finding_does(sam: Workspace) -> None:
    add(sam, frame(3000))
    sam.quality.set_contract("tx", CONTRACT, project=PROJECT)
    policy = {"overrides": {"merchant.regex": "warn", "drift.*": "reject"}, "drift": {"columns": ["amount"]}}
    sam.quality.set_policy("tx", policy, project=PROJECT)
    assert add(sam, frame(100, seed=1, start=5000).assign(merchant="x")).verdict == "accepted"  # type: ignore[attr-defined]
    with pytest.raises(GateBlocked, match="drift|distribution"):
        add(sam, frame(3000, seed=5, start=9000).assign(amount=lambda f: f["amount"] + 30))


def test_bad_contracts_and_policies_are_refused(sam: Workspace, tmp_path: Path) -> None:
    add(sam, frame(10))
    for bad in (
        {"version": 2},
        {"columns": {"a": {"typo": 1}}},
        {"columns": {"a": {"min": 5, "max": 1}}},
        {"columns": {"a": {"regex": "("}}},
        {"columns": {"a": {"type": "float128"}}},
    ):
        with pytest.raises(ContractError):
            sam.quality.set_contract("tx", bad, project=PROJECT)
    for policy in ({"severity": {"drift": "explode"}}, {"drift": {"alpha": 2}}, {"drift": {"correction": "none"}}):
        with pytest.raises(ContractError):
            sam.quality.set_policy("tx", policy, project=PROJECT)
    (tmp_path / "c.yaml").write_text("columns: [unclosed", encoding="utf-8")
    with pytest.raises(UsageError, match="not valid YAML"):
        sam.quality.set_contract("tx", tmp_path / "c.yaml", project=PROJECT)


def test_inferred_contract_round_trips_and_accepts_its_own_data(sam: Workspace) -> None:
    data = frame(400)
    add(sam, data)
    inferred = sam.quality.infer_contract("tx@1", project=PROJECT)
    assert inferred.rule("merchant").allowed == tuple(sorted(data["merchant"].unique()))  # type: ignore[union-attr]
    assert inferred.label_classes == (0, 1)
    sam.quality.set_contract("tx", inferred.to_json(), project=PROJECT)
    assert sam.quality.contract("tx", project=PROJECT).to_json() == inferred.to_json()
    result = sam.quality.validate(data, against="tx@1", project=PROJECT)
    assert result["verdict"] == "accepted" and result["dry_run"]
    assert len(sam.data.versions("tx", project=PROJECT)) == 1  # a dry run ingests nothing


def test_profile_of_a_version_merges_its_batches(sam: Workspace) -> None:
    add(sam, frame(300))
    add(sam, frame(200, seed=1, start=300))
    profile = sam.quality.profile("tx@2", project=PROJECT)
    assert profile.rows == 500
    assert profile.column("id").minimum == 0 and profile.column("id").maximum == 499


def test_viewers_see_no_findings_and_only_stewards_set_policy(data_team: dict[str, Person]) -> None:
    add(data_team["sam"].ws, frame(10))
    with pytest.raises(PermissionDenied):
        data_team["vic"].ws.quality.gate("tx", project=PROJECT)
    with pytest.raises(PermissionDenied):
        data_team["alice"].ws.quality.set_policy("tx", {"overrides": {"*": "info"}}, project=PROJECT)


def test_a_verdict_forged_in_the_database_is_named_by_audit_verify(sam: Workspace, admin: Workspace) -> None:
    from sqlalchemy import insert

    from mlwarden.store.tables import dataset_gates

    add(sam, frame(3000))
    change = add(sam, frame(3000, seed=5, start=3000).assign(amount=lambda f: f["amount"] + 40), source="vendor-b")
    assert change.verdict == "quarantined"  # type: ignore[attr-defined]
    with admin._ctx.db.write() as conn:  # noqa: SLF001 - the attacker writes the table directly
        dataset_id = conn.execute(dataset_gates.select()).mappings().first()["dataset_id"]  # type: ignore[index]
        conn.execute(
            insert(dataset_gates).values(
                id="gate_forged", dataset_id=dataset_id, ingestion_id=change.ingestion.id,  # type: ignore[attr-defined]
                verdict="accepted", report="{}", actor="nobody", created_at="2099-01-01T00:00:00.000000Z",
            )
        )  # fmt: skip
    assert sam.quality.gate("tx", project=PROJECT)["verdict"] == "accepted"  # the forgery takes effect...
    report = admin.audit.verify()
    assert not report.ok and any("gate_forged" in str(p) for p in report.problems)  # ...and is named


def test_bad_inputs_give_findings_not_crashes(sam: Workspace, tmp_path: Path) -> None:
    add(sam, frame(500))
    batches = {
        "all-null column": frame(50, seed=1, start=1000).assign(amount=np.nan),
        "constant column": frame(50, seed=1, start=2000).assign(merchant="m1", amount=5.0),
        "single label class": frame(50, seed=1, start=3000).assign(label=1),
        "under 10 rows": frame(4, seed=1, start=4000),
        "nan and inf": pl.from_pandas(frame(50, seed=1, start=5000)).with_columns(
            amount=pl.Series([float("nan"), float("inf"), float("-inf"), 1.0, 2.0] * 10)
        ),
        "high-cardinality strings": frame(5000, seed=1, start=6000).assign(merchant=[f"x{i}" for i in range(5000)]),
    }
    for what, batch in batches.items():
        try:
            change = add(sam, batch, source="odd")
            verdict = change.verdict  # type: ignore[attr-defined]
        except GateBlocked:
            verdict = "rejected"
        assert verdict in ("accepted", "quarantined", "rejected"), what
        report = sam.quality.gate("tx", project=PROJECT)
        assert report["verdict"] in ("accepted", "quarantined"), what
    # mixed types in a CSV column: "abc" in the int column `id` is a broken contract, not a crash
    (tmp_path / "mixed.csv").write_text(
        "id,amount,merchant,online,at,label\n1,2.0,m1,true,2026-01-01 00:00:00,0\n"
        "abc,3.0,m2,false,2026-01-01 00:01:00,1\n"
    )
    with pytest.raises(GateBlocked, match="cannot read"):
        add(sam, tmp_path / "mixed.csv", source="odd")
    findings = sam.quality.gate("tx", project=PROJECT)["recent_rejections"][-1]["report"]["findings"]
    assert findings[0]["step"] == "contract" and findings[0]["outcome"] == "failed"


class _NoCheaters(Check):
    """A plugin check: amounts ending in .99 are suspicious."""

    def failing(self) -> pl.Expr:
        return (pl.col(self.column or "") * 100 % 100).round(0) == 99

    def describe(self) -> str:
        return "no .99 prices"


class _Exploding(GateStep):
    step = "detector"

    def run(self, evidence: Evidence) -> list[Finding]:
        raise RuntimeError("the detector broke")


class _EntryPoint:
    def __init__(self, name: str, target: object) -> None:
        self.name, self._target = name, target

    def load(self) -> object:
        return self._target


def test_plugins_register_by_entry_point_and_a_broken_detector_fails_closed(
    sam: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlwarden.defense import gate
    from mlwarden.quality import checks

    def entry_points(group: str) -> list[_EntryPoint]:
        return {
            "mlwarden.checks": [_EntryPoint("no_cheaters", _NoCheaters), _EntryPoint("min", _NoCheaters)],
            "mlwarden.detectors": [_EntryPoint("exploding", _Exploding)],
        }.get(group, [])

    monkeypatch.setattr(checks, "entry_points", entry_points)
    monkeypatch.setattr(gate, "entry_points", lambda group: [])
    checks.registry.cache_clear()
    try:
        assert checks.registry()["min"].__module__ == "mlwarden.quality.builtin_checks"  # no shadowing
        add(sam, frame(100))
        sam.quality.set_contract("tx", {"checks": [{"check": "no_cheaters", "column": "amount"}]}, project=PROJECT)
        with pytest.raises(GateBlocked, match="no .99 prices"):
            add(sam, frame(20, seed=3, start=100).assign(amount=9.99))
        monkeypatch.setattr(gate, "entry_points", entry_points)
        with pytest.raises(GateBlocked, match="the detector broke"):
            add(sam, frame(20, seed=3, start=200))
    finally:
        checks.registry.cache_clear()


def test_a_pinned_reference_is_what_drift_compares_with(sam: Workspace) -> None:
    add(sam, frame(3000))
    moved = frame(3000, seed=5, start=3000).assign(amount=lambda f: f["amount"] + 30)
    change = add(sam, moved, source="vendor-b", replace=True)  # version 2: the moved rows alone
    assert change.verdict == "quarantined"  # type: ignore[attr-defined]
    sam.quality.set_policy("tx", {"drift": {"reference": 2}}, project=PROJECT)  # pin the moved version
    again = add(sam, frame(3000, seed=6, start=9000).assign(amount=lambda f: f["amount"] + 30), source="vendor-b")
    record = sam.quality.gate("tx", project=PROJECT)["ingestions"][-1]["record"]["report"]
    assert record["reference_version"] == 2 and "drift.amount" not in record["deciding"]
    assert again.verdict == "accepted"  # type: ignore[attr-defined]  # the batch itself passed...
    assert sam.quality.gate("tx", project=PROJECT)["verdict"] == "quarantined"  # ...the version holds version 2's


def test_a_batch_mlwarden_itself_ingests_cannot_be_quarantined_without_a_user(tmp_path: Path) -> None:
    """The workspace `init` returns acts as mlwarden itself: a quarantine needs a user to author its accept
    request, so the batch is refused with a clear error and nothing is stored (it once hit a foreign key)."""
    from mlwarden.service.init import init_workspace
    from tests.service.data_kit import frame

    ws = init_workspace(tmp_path / "ws", admin_password="a-long-password-1").workspace
    try:
        ws.projects.create("p")
        ws.data.add("tx", frame(3000), source="a", project="p")
        shifted = frame(3000, seed=5, start=3000).assign(amount=lambda f: f["amount"] + 40)
        with pytest.raises(UsageError, match="only a user can author"):
            ws.data.add("tx", shifted, source="b", project="p")
        assert [v.number for v in ws.data.versions("tx", project="p")] == [1]
        assert ws.audit.verify().ok
    finally:
        ws.close()
