"""`defend scan` and `defend forensics`: a source that flipped labels is ranked first and its revert
proposed; clean sources are not suspected; rows are handed out only to those who may export them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlwarden.errors import PermissionDenied, UsageError
from tests.service.access_kit import Person
from tests.service.data_kit import PROJECT


def batch(n: int, seed: int, flip: float = 0.0) -> pd.DataFrame:
    from sklearn.datasets import make_classification

    X, y = make_classification(n_samples=n, n_features=6, n_informative=4, random_state=seed, class_sep=1.5)  # noqa: N806
    rng = np.random.default_rng(seed)
    flipped = rng.random(n) < flip
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(6)])
    frame["label"] = np.where(flipped, 1 - y, y)
    return frame


@pytest.fixture
def poisoned(data_team: dict[str, Person]) -> dict[str, Person]:
    """Dataset "pts": vendor-a and vendor-b clean, then vendor-c with 35% of its labels flipped."""
    sam = data_team["sam"].ws
    data = batch(1200, seed=3)
    sam.data.add("pts", data[:400], source="vendor-a", project=PROJECT, label_column="label")
    sam.data.add("pts", data[400:800], source="vendor-b", project=PROJECT)
    flipped = data[800:].copy()
    rng = np.random.default_rng(1)
    hit = rng.random(len(flipped)) < 0.35
    flipped.loc[hit, "label"] = 1 - flipped.loc[hit, "label"]
    sam.data.add("pts", flipped, source="vendor-c", project=PROJECT)
    return data_team


def test_forensics_ranks_the_flipping_source_first_and_proposes_its_revert(poisoned: dict[str, Person]) -> None:
    found = poisoned["alice"].ws.defense.forensics("pts@3", project=PROJECT)
    assert found["ranking"][0]["group"] == "vendor-c" and found["suspected"] == ["vendor-c"]
    assert "--source vendor-c" in found["revert"] and "data revert pts" in found["revert"]
    assert found["what_if"]["dropped"] == "vendor-c" and found["what_if"]["test_rows"] > 0
    by_ingestion = poisoned["alice"].ws.defense.forensics("pts@3", project=PROJECT, by="ingestion")
    assert by_ingestion["ranking"][0]["source"] == "vendor-c" and "--ingestion" in by_ingestion["revert"]


def test_scan_lists_suspicious_rows_with_provenance(poisoned: dict[str, Person]) -> None:
    found = poisoned["alice"].ws.defense.scan("pts@3", project=PROJECT, limit=20)
    assert found["suspected_sources"] == ["vendor-c"] and len(found["rows"]) == 20
    sources = [row["source"] for row in found["rows"]]
    assert sources.count("vendor-c") >= 14, sources
    first = found["rows"][0]
    assert first["row_digest"].startswith("sha256:") and first["detector"] and first["reason"]
    assert {d["name"] for d in found["detectors"]} >= {"confident_labels", "knn_labels", "reference_outliers"}


def test_clean_sources_are_not_suspected(poisoned: dict[str, Person]) -> None:
    found = poisoned["alice"].ws.defense.forensics("pts@2", project=PROJECT)
    assert found["suspected"] == [] and found["revert"] is None and "what_if" not in found


def test_rows_are_handed_out_only_to_who_may_export_them_and_audited(poisoned: dict[str, Person]) -> None:
    with pytest.raises(PermissionDenied):
        poisoned["vic"].ws.defense.scan("pts@3", project=PROJECT)
    poisoned["alice"].ws.defense.scan("pts@3", project=PROJECT, limit=1)
    exports = [e for e in poisoned["root"].ws.audit.log() if e.record.action == "data.export"]
    assert exports[-1].record.details["what"] == "defend scan"


def test_bad_arguments(poisoned: dict[str, Person]) -> None:
    alice = poisoned["alice"].ws
    with pytest.raises(UsageError, match="--by"):
        alice.defense.forensics("pts@3", project=PROJECT, by="actor")
    with pytest.raises(UsageError, match="no column"):
        alice.defense.scan("pts@3", project=PROJECT, label_column="nope")
    with pytest.raises(UsageError, match="limit"):
        alice.defense.scan("pts@3", project=PROJECT, limit=-1)


def test_a_trusted_version_is_the_reference_and_retraining_detectors_run(poisoned: dict[str, Person]) -> None:
    sam, alice = poisoned["sam"], poisoned["alice"].ws
    with pytest.raises(PermissionDenied, match="TOTP"):
        sam.ws.defense.trust("pts@2", project=PROJECT)
    marked = sam.ws.defense.trust("pts@2", project=PROJECT, totp=sam.code(), note="two audited vendors")
    assert marked["version"] == 2 and alice.defense.trusted("pts", project=PROJECT)["note"] == "two audited vendors"
    found = alice.defense.forensics("pts@3", project=PROJECT)
    assert found["trusted"] == "pts@2" and found["suspected"] == ["vendor-c"]
    runs = {d["name"] for d in alice.defense.scan("pts@3", project=PROJECT, limit=1)["detectors"]}
    assert {"provenance", "roni"} <= runs
    sam.ws.defense.untrust("pts", project=PROJECT)
    assert alice.defense.trusted("pts", project=PROJECT) is None
    assert poisoned["root"].ws.audit.verify().ok


def test_only_an_accepted_version_is_trusted_and_a_forged_mark_is_named(poisoned: dict[str, Person]) -> None:
    from sqlalchemy import insert, text

    from mlwarden.store.tables import dataset_trust

    sam, root, alice = poisoned["sam"], poisoned["root"].ws, poisoned["alice"].ws
    shifted = batch(400, seed=8).assign(f0=lambda f: f["f0"] + 6)
    assert sam.ws.data.add("pts", shifted, source="vendor-z", project=PROJECT).verdict == "quarantined"
    with pytest.raises(PermissionDenied, match="quarantined"):
        sam.ws.defense.trust("pts@4", project=PROJECT, totp=sam.code())
    with pytest.raises(PermissionDenied):  # an engineer does not decide what the defenses trust
        alice.defense.trust("pts@1", project=PROJECT, totp=poisoned["alice"].code())
    with root._ctx.db.write() as conn:  # noqa: SLF001 - an insider marks the poisoned version trusted
        dataset_id = conn.execute(text("SELECT id FROM datasets WHERE name = 'pts'")).scalar()
        row = {"dataset_id": dataset_id, "seq": 1, "version": 4, "digest": "sha256:" + "1" * 64}
        conn.execute(insert(dataset_trust).values(**row, actor="sam", at="2026-01-01"))
    problems = [p.message for p in root.audit.verify().problems]
    assert any("trusted version 'fraud/pts'" in m for m in problems), problems
