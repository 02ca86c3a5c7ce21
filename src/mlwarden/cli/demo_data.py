"""The data steps of `mlwarden demo`: three sources feed a real data set, one of them poisoned; diff and
blame trace the poison to its source, a revert removes it, and a segment changed on disk is caught.

The data set is the Wisconsin breast cancer data bundled with scikit-learn (569 rows, 30 features, a
binary label). Two clinics send clean rows; a third-party labeler sends rows whose labels it flipped.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.text import Text

from mlwarden.cli.render import Output
from mlwarden.service.workspace import Workspace, open_workspace

if TYPE_CHECKING:
    import pandas as pd

PROJECT = "fraud"
DATASET = "diagnosis"


def _sources() -> dict[str, pd.DataFrame]:
    from sklearn.datasets import load_breast_cancer

    bunch: Any = load_breast_cancer(as_frame=True)
    frame = bunch.frame.rename(columns=lambda c: str(c).replace(" ", "_"))
    frame = frame.sample(frac=1.0, random_state=7).reset_index(drop=True)  # the clinics see the same population
    poisoned = frame.iloc[500:].copy()
    poisoned["target"] = 1 - poisoned["target"]  # the labeler flipped every label it sent
    return {"clinic-a": frame.iloc[:250], "clinic-b": frame.iloc[250:500], "labeler-x": poisoned}


def ingest(out: Output, steward: Workspace) -> list[str]:
    """Each source's batch becomes a version; returns the version digests."""
    digests = []
    for source, rows in _sources().items():
        change = steward.data.add(DATASET, rows, source=source, project=PROJECT, label_column="target")
        version = change.version
        assert version is not None  # noqa: S101 - the demo dataset is not protected
        digests.append(str(version.digest))
        out.line(f"  {version.ref}: +{len(rows)} rows from {source:<9} -> {version.rows} rows, {change.verdict}")
    return digests


def gate(out: Output, steward: Workspace) -> int:
    """The gate: labeler-x's batch was quarantined (its labels moved); a batch that breaks the contract
    inferred from the clinics' data is rejected, with the failing rows named."""
    from mlwarden.errors import GateBlocked

    report = steward.quality.gate(DATASET, project=PROJECT)
    quarantined = [b for b in report["ingestions"] if b["verdict"] == "quarantined"]
    for batch in quarantined:
        deciding = batch["record"]["report"]["deciding"]
        out.line(
            f"  {batch['source']}'s batch: quarantined by {', '.join(deciding)}: not a training input until accepted"
        )
    contract = steward.quality.infer_contract(f"{DATASET}@2", project=PROJECT)
    steward.quality.set_contract(DATASET, contract.to_json(), project=PROJECT)
    classes = contract.label_classes
    out.line(f"  contract inferred from {DATASET}@2 ({len(contract.columns)} columns, label classes {classes})")
    broken = _sources()["clinic-a"].head(20).assign(target=5)
    try:
        steward.data.add(DATASET, broken, source="scraper-z", project=PROJECT)
    except GateBlocked as blocked:
        out.line(Text(f"  scraper-z's batch: {blocked.message[:150]}", style="green"))
        caught = True
    else:
        out.line(Text("  scraper-z's batch with label 5 was accepted: MISSED", style="bold red"))
        caught = False
    return 0 if caught and [b["source"] for b in quarantined] == ["labeler-x"] else 1


def forensics(out: Output, steward: Workspace) -> int:
    """The label distribution moved: diff says which source brought the change, blame names the rows."""
    before = steward.data.diff(f"{DATASET}@1", f"{DATASET}@2", project=PROJECT)["columns"]["added"]["target"]
    diff = steward.data.diff(f"{DATASET}@2", f"{DATASET}@3", project=PROJECT)
    label = diff["columns"]["added"]["target"]
    out.line(f"diff @2 -> @3: +{diff['added']} rows, all from {[s['source'] for s in diff['by_source']]}")
    out.line(
        f"  mean label of the rows it added: {label['mean']:.2f}; of clinic-b's rows (@1 -> @2): {before['mean']:.2f}"
    )
    where = "target = 0 AND mean_radius < 10"  # target 0 is malignant: tiny tumours rarely are
    blamed = steward.data.blame(DATASET, project=PROJECT, where=where, limit=3)
    sources = {row["source"] for row in blamed["rows"]}
    out.line(f"blame --where '{where}': {blamed['matched']} rows, from {sorted(sources)}")
    for row in blamed["rows"]:
        out.line(f"  row {row['position']} {row['row_digest'][:23]}… by {row['actor']} at {row['ingested_at']}")
    return (0 if sources == {"labeler-x"} else 1) + _defend(out, steward)


def _defend(out: Output, steward: Workspace) -> int:
    """Without knowing what to look for: the detectors rank the sources and propose the revert."""
    found = steward.defense.forensics(f"{DATASET}@3", project=PROJECT)
    ranked = ", ".join(f"{r['group']} {r['flagged']}/{r['rows']}" for r in found["ranking"])
    out.line(f"defend forensics (flagged rows per source): {ranked}")
    what_if = found.get("what_if", {})
    if "gain_without" in what_if:
        out.line(
            f"  without {what_if['dropped']}: accuracy {what_if['accuracy_with']:.3f}"
            f" -> {what_if['accuracy_without']:.3f} on the other sources' held-out rows"
        )
    ok = found["suspected"][:1] == ["labeler-x"]
    out.line(
        Text(f"  suspected: {found['suspected']}; proposed: {found['revert']}", style="green" if ok else "bold red")
    )
    return 0 if ok else 1


def revert(out: Output, steward: Workspace, digests: list[str]) -> int:
    change = steward.data.revert(DATASET, project=PROJECT, source="labeler-x", note="label-flip poisoning")
    version = change.version
    assert version is not None  # noqa: S101 - the demo dataset is not protected
    same = str(version.digest) == digests[1]
    out.line(f"revert --source labeler-x -> {version.ref}: {version.rows} rows, undid {version.undid}")
    out.line(
        Text(
            f"its digest equals version 2's: {'yes' if same else 'NO'} (the same rows give the same digest)",
            style="green" if same else "bold red",
        )
    )
    return 0 if same else 1


def tampered_segment(out: Output, root: Path, base: Path, token: str) -> int:
    """Someone with access to the blob folder edits clinic-a's stored rows."""
    copy = base / "tampered-rows"
    shutil.copytree(root, copy)
    with open_workspace(copy, token=token, client="demo") as ws:
        segment = ws.data.show(f"{DATASET}@1", project=PROJECT)["ingestions"][0]["segment"]
        path = copy / ".mlwarden" / "blobs" / "sha256" / segment[7:9] / segment[9:]
        os.chmod(path, 0o644)
        data = bytearray(path.read_bytes())
        data[len(data) // 3] ^= 0x20
        path.write_bytes(bytes(data))
        report = ws.data.verify(project=PROJECT)
    caught = not report.ok
    out.line(Text(f"data verify {'caught it' if caught else 'MISSED it'}:", style="green" if caught else "bold red"))
    for problem in report.problems[:3]:
        out.line(f"  - {problem.item}: {problem.problem}")
    return 0 if caught else 1
