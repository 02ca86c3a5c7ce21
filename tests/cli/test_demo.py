"""`mlwarden demo` is the main job: it must run end to end, show every attack caught, and stay quick."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from mlwarden.cli import main


def test_demo_runs_and_every_control_catches_its_attack(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    started = time.perf_counter()
    assert main(["demo", "--keep", str(tmp_path / "demo")]) == 0
    out = capsys.readouterr().out
    assert "every control behaved as expected" in out
    assert out.count("caught it") >= 4 and "MISSED" not in out
    assert "refused (nobody approves what they authored)" in out and "request approved" in out
    assert time.perf_counter() - started < 60
    assert (tmp_path / "demo" / "witness" / "vkey").is_file()  # --keep leaves the workspace to explore
