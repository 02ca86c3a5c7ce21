"""The model registry end to end: train on accepted data, register (signed), evaluate, promote to staging
(automatic) and production (an approver with TOTP, never the author), roll back; and the attacks."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import text

from mlwarden.errors import GateBlocked, IntegrityError, NotFound, PermissionDenied, UsageError
from mlwarden.service.workspace import Workspace
from tests.service.access_kit import Person
from tests.service.data_kit import PROJECT

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def model_frame(n: int, seed: int = 0, flip: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(0, 1, n), rng.normal(0, 1, n)
    label = (x1 + 0.5 * x2 > 0).astype(np.int64)
    flipped = rng.random(n) < flip
    return pd.DataFrame({"x1": x1, "x2": x2, "label": np.where(flipped, 1 - label, label)})


def train(ws: Workspace, ref: str, *, c: float = 1.0) -> str:
    """A run that trains a logistic regression on ``ref`` and logs it (model.skops); its id."""
    from sklearn.linear_model import LogisticRegression

    from mlwarden.tracking.sklearn import log_model

    with ws.start_run(PROJECT, "train") as run:
        run.use_dataset(ref)
        data = model_frame(400, seed=1)
        X, y = data[["x1", "x2"]], data["label"]  # noqa: N806
        log_model(run, LogisticRegression(C=c).fit(X, y), X, y)
    return run.id


@pytest.fixture
def team(data_team: dict[str, Person]) -> Iterator[dict[str, Person]]:
    data_team["sam"].ws.data.add("points", model_frame(600), source="lab", project=PROJECT, label_column="label")
    yield data_team


def test_train_register_promote_approve_with_totp_and_roll_back(team: dict[str, Person]) -> None:
    alice, bob, dan, root = team["alice"], team["bob"], team["dan"], team["root"].ws
    made = alice.ws.models.register("scorer", "model.skops", run=train(alice.ws, "points@1"), project=PROJECT)
    assert made["version"] == 1 and made["scan"] == "clean" and made["format"] == "skops" and not made["external"]
    shown = alice.ws.models.show("scorer@1", project=PROJECT)
    assert shown["signature"] == {"status": "valid", "problems": []} and shown["stage"] == "development"
    assert shown["inputs"][0]["dataset"] == "points" and shown["metrics"]["accuracy"] > 0.9
    measured = alice.ws.models.evaluate("scorer@1", "points@1", project=PROJECT)
    assert measured["metrics"]["accuracy"] > 0.9

    assert alice.ws.models.promote("scorer@1", "staging", project=PROJECT)["status"] == "moved"
    with pytest.raises(PermissionDenied, match="TOTP"):
        alice.ws.models.promote("scorer@1", "production", project=PROJECT)
    pending = alice.ws.models.promote("scorer@1", "production", project=PROJECT, totp=alice.code())
    assert pending["status"] == "pending" and alice.ws.models.show("scorer@1", project=PROJECT)["stage"] == "staging"
    with pytest.raises(PermissionDenied):  # the author never approves her own promotion
        alice.ws.approvals.approve(pending["request"], totp=alice.code())
    bob.ws.approvals.approve(pending["request"], totp=bob.code())
    assert alice.ws.models.show("scorer@production", project=PROJECT)["version"] == 1
    model = alice.ws.load_model("scorer@production", project=PROJECT)
    assert list(model.predict(pd.DataFrame({"x1": [3.0, -3.0], "x2": [0.0, 0.0]}))) == [1, 0]

    alice.ws.models.register("scorer", "model.skops", run=train(alice.ws, "points@1", c=0.5), project=PROJECT)
    alice.ws.models.promote("scorer@2", "staging", project=PROJECT)
    second = alice.ws.models.promote("scorer@2", "production", project=PROJECT, totp=alice.code())
    dan.ws.approvals.approve(second["request"], totp=dan.code())
    stages = {v["version"]: v["stage"] for v in alice.ws.models.show("scorer", project=PROJECT)["versions"]}
    assert stages == {1: "archived", 2: "production"}

    back = alice.ws.models.rollback("scorer", 1, project=PROJECT, totp=alice.code())
    assert back["status"] == "pending" and back["approvals_needed"] == 1
    bob.ws.approvals.approve(back["request"], totp=bob.code())
    stages = {v["version"]: v["stage"] for v in alice.ws.models.show("scorer", project=PROJECT)["versions"]}
    assert stages == {1: "production", 2: "archived"}
    actions = [e.record.action for e in root.audit.log()]
    assert actions.count("model.promote") == 6 and root.audit.verify().ok  # one of them the denied attempt


def _swap_blob(ws: Workspace, ref: str) -> None:
    """An insider rewrites the model's stored bytes (the blob keeps its name)."""
    from mlwarden.domain.digests import Digest

    entry = ws.models.show(ref, project=PROJECT)["files"][0]
    path = ws._ctx.blobs.path_of(Digest("sha256", entry["sha256"]))  # noqa: SLF001
    path.chmod(0o644)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _to_staging(alice: Person, name: str = "scorer") -> dict[str, Any]:
    made = alice.ws.models.register(name, "model.skops", run=train(alice.ws, "points@1"), project=PROJECT)
    alice.ws.models.promote(f"{name}@{made['version']}", "staging", project=PROJECT)
    return made


def test_a_blob_swapped_after_the_request_is_refused_at_approval_load_and_verify(team: dict[str, Person]) -> None:
    alice, bob = team["alice"], team["bob"]
    _to_staging(alice)
    pending = alice.ws.models.promote("scorer@1", "production", project=PROJECT, totp=alice.code())
    _swap_blob(alice.ws, "scorer@1")
    with pytest.raises(PermissionDenied, match="signature|file"):
        bob.ws.approvals.approve(pending["request"], totp=bob.code())
    assert alice.ws.models.show("scorer@1", project=PROJECT)["stage"] == "staging"
    checked = alice.ws.models.verify("scorer@1", project=PROJECT)
    assert not checked["ok"] and any("model.skops" in p for p in checked["problems"])
    with pytest.raises(IntegrityError, match="refusing"):
        alice.ws.load_model("scorer@1", project=PROJECT)
    with pytest.raises(IntegrityError):
        alice.ws.models.pull("scorer@1", alice.ws.root.parent / "pulled", project=PROJECT)
    assert not (alice.ws.root.parent / "pulled").exists()


def test_the_same_bytes_under_another_name_do_not_inherit_approvals(team: dict[str, Person]) -> None:
    alice, bob = team["alice"], team["bob"]
    run = train(alice.ws, "points@1")
    for name in ("scorer", "copycat"):
        alice.ws.models.register(name, "model.skops", run=run, project=PROJECT)
        alice.ws.models.promote(f"{name}@1", "staging", project=PROJECT)
    first = alice.ws.models.promote("scorer@1", "production", project=PROJECT, totp=alice.code())
    bob.ws.approvals.approve(first["request"], totp=bob.code())
    other = alice.ws.models.promote("copycat@1", "production", project=PROJECT, totp=alice.code())
    assert other["status"] == "pending" and other["request"] != first["request"]
    assert alice.ws.models.show("copycat@1", project=PROJECT)["stage"] == "staging"


def test_a_stale_approval_for_changed_content_is_refused(team: dict[str, Person]) -> None:
    alice, bob, root = team["alice"], team["bob"], team["root"].ws
    _to_staging(alice)
    pending = alice.ws.models.promote("scorer@1", "production", project=PROJECT, totp=alice.code())
    other = "sha256:" + "0" * 64
    with root._ctx.db.write() as conn:  # noqa: SLF001 - an insider drops the guard and rewrites the row
        if conn.dialect.name == "sqlite":
            conn.execute(text("DROP TRIGGER model_versions_no_update"))
        else:
            conn.execute(text("DROP TRIGGER model_versions_append_only ON model_versions"))
        conn.execute(text("UPDATE model_versions SET digest = :digest"), {"digest": other})
    with pytest.raises(PermissionDenied, match="stale|changed|digest"):
        bob.ws.approvals.approve(pending["request"], totp=bob.code())
    assert alice.ws.models.show("scorer@1", project=PROJECT)["stage"] == "staging"


def test_only_engineers_promote_and_register(team: dict[str, Person]) -> None:
    alice, bob, vic = team["alice"], team["bob"], team["vic"]
    _to_staging(alice)
    with pytest.raises(PermissionDenied):
        bob.ws.models.promote("scorer@1", "production", project=PROJECT, totp=bob.code())
    with pytest.raises(PermissionDenied):
        vic.ws.models.promote("scorer@1", "archived", project=PROJECT)
    with pytest.raises(PermissionDenied):
        vic.ws.models.register("mine", "model.skops", run="run_x", project=PROJECT)
    with pytest.raises(PermissionDenied):  # a viewer reads versions, never the model's bytes
        vic.ws.load_model("scorer@1", project=PROJECT)


def test_a_run_that_used_a_quarantined_version_cannot_be_registered(team: dict[str, Person]) -> None:
    from sqlalchemy import insert

    from mlwarden.store.tables import run_inputs

    sam, alice, root = team["sam"].ws, team["alice"], team["root"].ws
    shifted = model_frame(600, seed=9).assign(x1=lambda f: f["x1"] + 3)
    change = sam.data.add("points", shifted, source="vendor-z", project=PROJECT)
    assert change.verdict == "quarantined"
    run = train(alice.ws, "points@1")
    version = sam.data.show("points@2", project=PROJECT)["version"]
    with root._ctx.db.write() as conn:  # noqa: SLF001 - the run "used" the quarantined version
        dataset_id = conn.execute(text("SELECT id FROM datasets WHERE name = 'points'")).scalar()
        conn.execute(insert(run_inputs).values(run_id=run, dataset_id=dataset_id, version=2, digest=version["digest"]))
    with pytest.raises(PermissionDenied, match="quarantined"):
        alice.ws.models.register("scorer", "model.skops", run=run, project=PROJECT)


def test_policy_requirements_block_with_reasons(team: dict[str, Person], tmp_path: Path) -> None:
    alice, root = team["alice"], team["root"].ws
    policy = tmp_path / "promotion.yaml"
    policy.write_text("staging:\n  evaluations:\n    - {metric: accuracy, min: 0.99, dataset: points}\n")
    root_person = team["root"]
    root.models.set_policy(policy, project=PROJECT, totp=root_person.code())
    made = alice.ws.models.register("scorer", "model.skops", run=train(alice.ws, "points@1"), project=PROJECT)
    with pytest.raises(GateBlocked, match="no accuracy measured"):
        alice.ws.models.promote("scorer@1", "staging", project=PROJECT)
    alice.ws.models.evaluate("scorer@1", "points", project=PROJECT)
    with pytest.raises(GateBlocked, match=r"needs >= 0.99"):
        alice.ws.models.promote("scorer@1", "staging", project=PROJECT)
    checked = alice.ws.models.check("scorer@1", "staging", project=PROJECT)
    assert not checked["ok"] and {r["name"] for r in checked["requirements"]} >= {"signature", "scan", "training_data"}
    assert made["version"] == 1
    with pytest.raises(UsageError, match="unknown key"):
        root.models.set_policy({"production": {"aprovals": 2}}, project=PROJECT, totp=root_person.code())
    with pytest.raises(UsageError, match="at least 1"):
        root.models.set_policy({"production": {"approvals": 0}}, project=PROJECT, totp=root_person.code())
    with pytest.raises(PermissionDenied, match="TOTP"):
        root.models.set_policy({"staging": {}}, project=PROJECT)
    with pytest.raises(PermissionDenied):
        alice.ws.models.set_policy({"staging": {}}, project=PROJECT)


def test_an_external_model_has_no_lineage_and_production_requires_it(team: dict[str, Person], tmp_path: Path) -> None:
    import skops.io as sio
    from sklearn.linear_model import LogisticRegression

    alice = team["alice"]
    data = model_frame(200)
    path = tmp_path / "pretrained.skops"
    sio.dump(LogisticRegression().fit(data[["x1", "x2"]], data["label"]), path)
    made = alice.ws.models.register("vendor", path, project=PROJECT, source="https://example.org/model")
    assert made["external"] and made["run"] is None
    alice.ws.models.promote("vendor@1", "staging", project=PROJECT)
    with pytest.raises(GateBlocked, match="lineage"):
        alice.ws.models.promote("vendor@1", "production", project=PROJECT, totp=alice.code())


def test_a_malicious_model_is_never_registered_and_an_unsafe_one_never_promoted(
    team: dict[str, Person], tmp_path: Path
) -> None:
    alice = team["alice"]
    call = b"\x8c\x02os\x8c\x06system\x93\x8c\x02id\x85R."  # os.system("id"), never run: only scanned
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(b"\x80\x04\x95" + len(call).to_bytes(8, "little") + call)
    with pytest.raises(GateBlocked, match="malicious"):
        alice.ws.models.register("evil", evil, project=PROJECT)
    with pytest.raises(NotFound):
        alice.ws.models.show("evil", project=PROJECT)
    truncated = tmp_path / "odd.pkl"  # a frame longer than the stream: unsafe, not provably malicious
    truncated.write_bytes(b"\x80\x04\x95" + (len(call) + 9).to_bytes(8, "little") + call)
    assert alice.ws.models.register("odd", truncated, project=PROJECT)["scan"] == "unsafe"
    with pytest.raises(GateBlocked, match="scan"):
        alice.ws.models.promote("odd@1", "staging", project=PROJECT)
    from mlwarden.registry.loaders import ModelRefused

    with pytest.raises(ModelRefused, match="unsafe"):  # and it is never loaded
        alice.ws.load_model("odd@1", project=PROJECT)


def test_references_aliases_and_compare(team: dict[str, Person]) -> None:
    alice, vic = team["alice"], team["vic"]
    for c in (1.0, 0.001):
        alice.ws.models.register("scorer", "model.skops", run=train(alice.ws, "points@1", c=c), project=PROJECT)
        alice.ws.models.evaluate("scorer", "points@1", project=PROJECT)
    alice.ws.models.set_alias("scorer@1", "champion", project=PROJECT)
    assert vic.ws.models.show("scorer@champion", project=PROJECT)["version"] == 1
    assert vic.ws.models.show("scorer", project=PROJECT)["version"] == 2
    compared = vic.ws.models.compare("scorer@1", "scorer@2", project=PROJECT)
    assert compared["metrics"] and all(isinstance(r["degraded"], bool) for r in compared["metrics"])
    alice.ws.models.remove_alias("scorer", "champion", project=PROJECT)
    with pytest.raises(NotFound):
        vic.ws.models.show("scorer@champion", project=PROJECT)
    for bad in ("scorer@0", "../x", "scorer@Prod!"):
        with pytest.raises(UsageError):
            vic.ws.models.show(bad, project=PROJECT)


def test_audit_verify_names_registry_rows_changed_in_the_database(team: dict[str, Person]) -> None:
    from sqlalchemy import insert

    from mlwarden.store.tables import model_aliases, model_stages

    alice, root = team["alice"], team["root"].ws
    made = _to_staging(alice)
    alice.ws.models.set_alias("scorer@1", "champion", project=PROJECT)
    alice.ws.models.evaluate("scorer@1", "points@1", project=PROJECT)
    assert root.audit.verify().ok
    model_id = alice.ws.models.show("scorer@1", project=PROJECT)["history"][0]["model_id"]
    with root._ctx.db.write() as conn:  # noqa: SLF001 - an insider skips the approval
        conn.execute(
            insert(model_stages).values(
                model_id=model_id, seq=99, version=made["version"], stage="production", actor="alice", at="2026-01-01"
            )
        )
        conn.execute(
            insert(model_aliases).values(model_id=model_id, seq=99, alias="shadow", version=1, actor="x", at="t")
        )
    problems = [p.message for p in root.audit.verify().problems]
    assert any("model stage 'fraud/scorer@1'" in m and "stage" in m for m in problems), problems
    assert any("model alias 'fraud/scorer@shadow'" in m for m in problems), problems
