"""The scanner's workspace allow-list: admins only, with a step-up, audited, reconciled; scans use it."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import insert

from mlwarden.errors import AlreadyExists, NotFound, PermissionDenied, UsageError
from mlwarden.scan import Verdict, scan_path
from mlwarden.store.tables import scan_allowlist
from tests.service.access_kit import Person

# A protocol-0 pickle that calls mypkg.layers.Custom() — a team's own class, unknown to the packaged list.
CUSTOM = b"cmypkg.layers\nCustom\n(tR."


@pytest.fixture
def model(tmp_path: Path) -> Path:
    path = tmp_path / "model.pkl"
    path.write_bytes(CUSTOM)
    return path


def test_an_allowed_global_makes_its_pickles_clean_in_this_workspace_only(
    data_team: dict[str, Person], model: Path
) -> None:
    root = data_team["root"]
    assert root.ws.scans.scan([model]).verdict is Verdict.UNSAFE
    entry = root.ws.scans.allow("mypkg.layers.Custom", reason="our layer, reviewed", totp=root.code())
    assert (entry.name, entry.role) == ("mypkg.layers:Custom", "call")
    assert root.ws.scans.scan([model]).verdict is Verdict.CLEAN
    assert data_team["sam"].ws.scans.scan([model]).verdict is Verdict.CLEAN  # the workspace's list, for everyone
    assert scan_path([model]).verdict is Verdict.UNSAFE  # the packaged list is unchanged
    root.ws.scans.disallow("mypkg.layers:Custom")
    assert root.ws.scans.scan([model]).verdict is Verdict.UNSAFE
    events = [e.record for e in root.ws.audit.log() if e.record.action.startswith("scan.")]
    assert [(e.action, e.actor, e.resource.id) for e in events] == [
        ("scan.allow", "admin", "mypkg.layers:Custom"),
        ("scan.disallow", "admin", "mypkg.layers:Custom"),
    ]
    assert events[0].details == {"role": "call", "reason": "our layer, reviewed"}


def test_only_admins_with_a_step_up_may_allow(data_team: dict[str, Person]) -> None:
    root, sam = data_team["root"], data_team["sam"]
    with pytest.raises(PermissionDenied, match="step-up"):
        root.ws.scans.allow("mypkg:Thing", reason="x")
    with pytest.raises(PermissionDenied):
        sam.ws.scans.allow("mypkg:Thing", reason="x", totp=sam.code())
    with pytest.raises(PermissionDenied):
        sam.ws.scans.disallow("mypkg:Thing")
    assert root.ws.scans.allowlist() == []


def test_bad_requests(data_team: dict[str, Person]) -> None:
    root = data_team["root"]
    for name in ("nomodule", "os:", "a b:c", "mod:1abc"):
        with pytest.raises(UsageError):
            root.ws.scans.allow(name, reason="x", totp=root.code())
    with pytest.raises(UsageError, match="unknown role"):
        root.ws.scans.allow("mypkg:Thing", role="everything", reason="x", totp=root.code())
    with pytest.raises(UsageError, match="say why"):
        root.ws.scans.allow("mypkg:Thing", reason=" ", totp=root.code())
    root.ws.scans.allow("mypkg:Thing", role="class", reason="x", totp=root.code())
    with pytest.raises(AlreadyExists):
        root.ws.scans.allow("mypkg:Thing", reason="again", totp=root.code())
    with pytest.raises(NotFound):
        root.ws.scans.disallow("mypkg:Other")


def test_an_entry_inserted_behind_the_logs_back_is_named_by_audit_verify(data_team: dict[str, Person]) -> None:
    root = data_team["root"].ws
    with root._ctx.db.write() as conn:
        conn.execute(
            insert(scan_allowlist).values(
                global_name="os:system", role="call", reason="", added_by="x", added_at="2026-01-01T00:00:00Z"
            )
        )
    problems = [p.message for p in root.audit.verify().problems if p.kind == "state"]
    assert any("'os:system' is in the database but no audit event created it" in p for p in problems)
