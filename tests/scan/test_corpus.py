"""picklescan's own test corpus (../shared/corpora/picklescan), judged against its MANIFEST.tsv.

The files are scanned in place, never copied into this repository and never loaded.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mlwarden.scan import Verdict, scan_file

CORPUS = Path(__file__).resolve().parents[2].parent / "shared/corpora/picklescan"
MANIFEST = CORPUS / "MANIFEST.tsv"
FLAGGED = {Verdict.UNSAFE, Verdict.MALICIOUS}


def manifest() -> list[tuple[str, str]]:
    if not MANIFEST.is_file():
        return []
    rows = [line.split("\t") for line in MANIFEST.read_text(encoding="utf-8").splitlines()[1:] if line.strip()]
    return [(name, expected) for name, expected in rows]


ROWS = manifest()
pytestmark = pytest.mark.skipif(not ROWS, reason=f"picklescan corpus not found at {CORPUS}")


@pytest.mark.parametrize(("name", "expected"), ROWS or [("-", "-")], ids=[r[0] for r in ROWS] or ["absent"])
def test_manifest_verdict(name: str, expected: str) -> None:
    verdict = scan_file(CORPUS / name)
    if expected == "malicious":
        assert verdict.verdict in FLAGGED, verdict
    elif expected == "benign":
        assert verdict.verdict is Verdict.CLEAN, verdict
    else:
        assert verdict.verdict is Verdict(expected), verdict


def test_corpus_totals() -> None:
    counts = {kind: sum(1 for _, e in ROWS if e == kind) for kind in ("malicious", "benign")}
    assert counts["malicious"] >= 90 and counts["benign"] >= 10  # the manifest is what we think it is
    caught = sum(1 for name, e in ROWS if e == "malicious" and scan_file(CORPUS / name).verdict in FLAGGED)
    assert caught == counts["malicious"]
