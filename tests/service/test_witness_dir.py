"""witness_dir: every checkpoint signed is exported after commit; a failed export never fails the change
that caused it, and is itself an audit event."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from mlwarden.service.config import WorkspacePaths, load_config, write_config
from mlwarden.service.workspace import Workspace
from tests.conftest import Env


def _configure(env: Env, witness_dir: str, every: int) -> None:
    paths = WorkspacePaths(env.root)
    config = dataclasses.replace(load_config(paths), witness_dir=witness_dir, checkpoint_every=every)
    write_config(paths, config)


def test_policy_checkpoints_reach_the_witness_folder(env: Env) -> None:
    _configure(env, "witness", every=3)
    with env.open() as ws:
        for i in range(7):
            ws.users.add(f"u{i}")
        files = sorted((env.root / "witness").glob("checkpoint-*.txt"))
        assert len(files) >= 2 and (env.root / "witness" / "vkey").is_file()
        report, _ = ws.audit.witness(env.root / "witness")
        assert report.ok


def test_a_failed_export_is_audited_and_does_not_fail_the_change(env: Env, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    _configure(env, str(blocker / "witness"), every=2)
    with env.open() as ws:
        for i in range(3):
            ws.users.add(f"v{i}")  # succeeds although its checkpoint cannot be exported
        assert {u.name for u in ws.users.list()} >= {"v0", "v1", "v2"}
        failures = [e for e in ws.audit.log() if e.record.action == "audit.publish"]
        assert failures and failures[0].record.outcome == "failed" and "witness" in str(failures[0].record.details)
        assert ws.audit.verify().ok


def test_witness_dir_is_relative_to_the_workspace_root(admin: Workspace, env: Env) -> None:
    _configure(env, "../outside-witness", every=1)
    with env.open() as ws:
        ws.users.add("w1")
    assert (env.root.parent / "outside-witness" / "vkey").is_file()
