"""Invariant 1, the one door: every mutating or content-handing service method writes exactly one audit
event in the same transaction as its change; a failure rolls both back; a denial is audited."""

from __future__ import annotations

import inspect
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from mlwarden.audit.log import AuditLog
from mlwarden.errors import AuthenticationError, PermissionDenied
from mlwarden.service.door import DOOR_KIND
from mlwarden.service.workspace import Workspace
from mlwarden.store.tables import audit_events, users
from tests.conftest import ADMIN_PASSWORD, Env
from tests.service.access_kit import StepClock

# How to call each marked method on a workspace where the admin also created user "alice".
CALLS: dict[str, Callable[[Workspace], Any]] = {
    "Workspace.login": lambda ws: ws.login("admin", ADMIN_PASSWORD),
    "UserService.add": lambda ws: ws.users.add("carol"),
    "UserService.disable": lambda ws: ws.users.disable("alice"),
    "UserService.set_password": lambda ws: ws.users.set_password("alice", "a-long-enough-password"),
    "TokenService.create": lambda ws: ws.tokens.create("t", user="alice", expires_in=timedelta(days=1)),
    "TokenService.revoke": lambda ws: ws.tokens.revoke(ws.tokens.list("alice")[0].id),
    "AuditService.log": lambda ws: ws.audit.log(),
    "AuditService.checkpoint": lambda ws: ws.audit.checkpoint(),
    "MfaService.enroll": lambda ws: _as_alice(ws, lambda alice: alice.mfa.enroll()),
    "MfaService.verify": lambda ws: ws.mfa.verify(_mfa_code(ws)),
    "MfaService.step_up": lambda ws: ws.mfa.step_up(_mfa_code(ws), "role.grant", "k"),
    "MfaService.disable": lambda ws: ws.mfa.disable(code=_mfa_code(ws)),
    # The sensitive ones find their TOTP step-up prepared (a step-up is an event of its own).
    "ProjectService.create": lambda ws: ws.projects.create("p2"),
    "RoleService.grant": lambda ws: ws.roles.grant("alice", "viewer", "fraud"),
    "RoleService.revoke": lambda ws: ws.roles.revoke("alice", "ml_engineer", "fraud"),
    "ApprovalService.approve": lambda ws: ws.approvals.approve(_REQUESTS[ws.root]),
    "ApprovalService.reject": lambda ws: ws.approvals.reject(_REQUESTS[ws.root]),
    "DatasetService.add": lambda ws: ws.data.add("tx", _rows(3), source="vendor-c", project="fraud"),
    "DatasetService.revert": lambda ws: ws.data.revert("tx", source="vendor-a", project="fraud"),
    "DatasetService.protect": lambda ws: ws.data.protect("tx", project="fraud"),
    "DatasetService.unprotect": lambda ws: ws.data.unprotect("tx", project="fraud"),
    "DatasetService.verify": lambda ws: ws.data.verify(project="fraud"),
    "DatasetService.export": lambda ws: ws.data.export("tx@1", ws.root / "tx.parquet", project="fraud"),
    "DatasetService.diff": lambda ws: ws.data.diff("tx@1", "tx@2", project="fraud", rows=5),
    "DatasetService.blame": lambda ws: ws.data.blame("tx", where="id > 0", project="fraud"),
    "QualityService.set_contract": lambda ws: ws.quality.set_contract("tx", {"columns": {"id": {}}}, project="fraud"),
    "QualityService.set_policy": lambda ws: ws.quality.set_policy("tx", {"drift": {"alpha": 0.05}}, project="fraud"),
    "QualityService.gate": lambda ws: ws.quality.gate("tx", project="fraud"),
    "QualityService.profile": lambda ws: ws.quality.profile("tx@1", project="fraud"),
    "QualityService.infer_contract": lambda ws: ws.quality.infer_contract("tx@1", project="fraud"),
    "QualityService.validate": lambda ws: ws.quality.validate(_rows(3), against="tx@1", project="fraud"),
    "TrackingService.start_run": lambda ws: ws.runs.start_run("fraud", "another", capture=False),
    "TrackingService.log_batch": lambda ws: ws.runs.log_batch(
        _RUNS[ws.root], params={"lr": "0.1"}, metrics=[("loss", 0.5, 0, "2026-01-01T00:00:00.000000Z")]
    ),
    "TrackingService.use_dataset": lambda ws: ws.runs.use_dataset(_RUNS[ws.root], "tx@2"),
    "TrackingService.end_run": lambda ws: ws.runs.end_run(_RUNS[ws.root]),
    "TrackingService.log_artifact": lambda ws: ws.runs.log_artifact(_RUNS[ws.root], b"weights", "model.bin"),
    "RegistryService.register": lambda ws: ws.models.register("other", _MODELS[ws.root], project="fraud"),
    "RegistryService.pull": lambda ws: ws.models.pull("m@1", ws.root.parent / uuid.uuid4().hex, project="fraud"),
    "RegistryService.load": lambda ws: ws.models.load("m@1", project="fraud"),
    "RegistryService.evaluate": lambda ws: ws.models.evaluate("m@1", "tx@2", project="fraud", label="id"),
    "RegistryService.set_alias": lambda ws: ws.models.set_alias("m@1", "champion", project="fraud"),
    "RegistryService.remove_alias": lambda ws: ws.models.remove_alias("m", "old", project="fraud"),
    "RegistryService.promote": lambda ws: ws.models.promote("m@1", "staging", project="fraud"),
    "RegistryService.rollback": lambda ws: ws.models.rollback("m", 1, project="fraud"),
    "RegistryService.set_policy": lambda ws: ws.models.set_policy(_POLICY, project="fraud"),
    "DefenseService.scan": lambda ws: ws.defense.scan("tx@2", project="fraud"),
    "DefenseService.forensics": lambda ws: ws.defense.forensics("tx@2", project="fraud"),
    "DefenseService.trust": lambda ws: ws.defense.trust("tx@2", project="fraud"),
    "DefenseService.untrust": lambda ws: ws.defense.untrust("tx", project="fraud"),
    "ScanService.allow": lambda ws: ws.scans.allow("mypkg.layers:Custom", reason="ours"),
    "ScanService.disallow": lambda ws: ws.scans.disallow("mypkg.layers:Reviewed"),
}


def marked_methods() -> dict[str, str]:
    """Every method marked @mutation or @access on the workspace and its services."""
    found: dict[str, str] = {}
    classes = [Workspace, *(type(v) for v in _service_types())]
    for cls in classes:
        for name, member in inspect.getmembers(cls, inspect.isfunction):
            kind = getattr(member, DOOR_KIND, None)
            if kind is not None:
                found[f"{cls.__name__}.{name}"] = kind
    return found


def _service_types() -> list[Any]:
    """Every `...Service` class of the service package, found by walking it: none can be forgotten here."""
    import importlib
    import pkgutil

    import mlwarden.service

    found = []
    for module_info in pkgutil.iter_modules(mlwarden.service.__path__):
        module = importlib.import_module(f"mlwarden.service.{module_info.name}")
        for name, cls in inspect.getmembers(module, inspect.isclass):
            if name.endswith("Service") and cls.__module__ == module.__name__:
                found.append(object.__new__(cls))
    return found


# Public methods that only read (authorized, never writing an event unless denied).
READS: dict[str, Callable[[Workspace], Any]] = {
    "UserService.list": lambda ws: ws.users.list(),
    "TokenService.list": lambda ws: ws.tokens.list(),
    "AuditService.verify": lambda ws: ws.audit.verify(),
    "AuditService.prove": lambda ws: ws.audit.prove(1),
    "AuditService.witness": lambda ws: ws.audit.witness(_witness_of(ws)),
    "StoreService.verify": lambda ws: ws.store.verify(),
    "MfaService.status": lambda ws: ws.mfa.status(),
    "ProjectService.list": lambda ws: ws.projects.list(),
    "RoleService.list": lambda ws: ws.roles.list("fraud"),
    "ApprovalService.list": lambda ws: ws.approvals.list("fraud"),
    "ApprovalService.show": lambda ws: ws.approvals.show(_REQUESTS[ws.root]),
    "ApprovalService.valid": lambda ws: ws.approvals.valid(_REQUESTS[ws.root], "sha256:" + "0" * 64),
    "Workspace.whoami": lambda ws: ws.whoami(),
    "DatasetService.list": lambda ws: ws.data.list(project="fraud"),
    "DatasetService.versions": lambda ws: ws.data.versions("tx", project="fraud"),
    "DatasetService.show": lambda ws: ws.data.show("tx@2", project="fraud"),
    "DatasetService.lineage": lambda ws: ws.data.lineage("tx", project="fraud"),
    "QualityService.contract": lambda ws: ws.quality.contract("tx", project="fraud"),
    "QualityService.policy": lambda ws: ws.quality.policy("tx", project="fraud"),
    "QualityService.documents": lambda ws: ws.quality.documents("tx", project="fraud"),
    "DefenseService.trusted": lambda ws: ws.defense.trusted("tx", project="fraud"),
    "RegistryService.list_models": lambda ws: ws.models.list_models(project="fraud"),
    "RegistryService.show": lambda ws: ws.models.show("m@1", project="fraud"),
    "RegistryService.verify": lambda ws: ws.models.verify("m@1", project="fraud"),
    "RegistryService.compare": lambda ws: ws.models.compare("m@1", "m@2", project="fraud"),
    "RegistryService.check": lambda ws: ws.models.check("m@2", "archived", project="fraud"),
    "RegistryService.policy": lambda ws: ws.models.policy(project="fraud"),
    "RegistryService.public_key": lambda ws: ws.models.public_key(),
    "TrackingService.list_runs": lambda ws: ws.runs.list_runs(project="fraud"),
    "TrackingService.show_run": lambda ws: ws.runs.show_run(_RUNS[ws.root]),
    "TrackingService.metric_history": lambda ws: ws.runs.metric_history(_RUNS[ws.root], "loss"),
    "TrackingService.compare_runs": lambda ws: ws.runs.compare_runs(_RUNS[ws.root], _RUNS[ws.root]),
    "ScanService.allowlist": lambda ws: ws.scans.allowlist(),
    "ScanService.policy": lambda ws: ws.scans.policy(),
    "ScanService.scan": lambda ws: ws.scans.scan([ws.root / ".mlwarden" / "config.toml"]),
}


def _rows(n: int, start: int = 0) -> Any:
    import pyarrow as pa

    return pa.table({"id": list(range(start, start + n)), "x": [i / 2 for i in range(start, start + n)]})


_MODELS: dict[Any, Path] = {}
_POLICY = {"staging": {"approvals": 0}}


def _prepare_models(ws: Workspace) -> None:
    """Model "m": version 1 (was in production) and 2 (in production, set in the table as if approved), a
    predictor of tx's id from x; alias "old"; and the step-ups rollback and set_policy consume."""
    import skops.io as sio
    from sklearn.dummy import DummyClassifier

    from mlwarden.access.policy import step_up_key
    from mlwarden.domain.events import Resource
    from mlwarden.registry.policy import policy_from_json
    from mlwarden.registry.refs import Stage
    from mlwarden.service.model_store import insert_stage, version_row

    path = ws.root.parent / "m.skops"
    sio.dump(DummyClassifier().fit(_rows(10).to_pandas()[["x"]], [0] * 10), path)
    _MODELS[ws.root] = path
    for _ in range(2):
        ws.models.register("m", path, project="fraud")
    ws.models.set_alias("m@2", "old", project="fraud")
    from mlwarden.service.promotion import insert_policy

    with ws._ctx.db.write() as conn:
        # External models: production must not require lineage here.
        insert_policy(conn, "fraud", policy_from_json({"production": {"require_lineage": False}}), "admin")
        one = version_row(conn, "fraud", "m", 1)
        for version, stage in ((1, Stage.PRODUCTION), (2, Stage.PRODUCTION), (1, Stage.ARCHIVED)):
            insert_stage(conn, one.model_id, version, stage, "admin")
    ws.mfa.step_up(_mfa_code(ws), "model.promote", step_up_key(one.resource(Stage.PRODUCTION)))
    policy = Resource("model_policy", "fraud", "fraud", attributes=(("digest", policy_from_json(_POLICY).digest),))
    ws.mfa.step_up(_mfa_code(ws), "model.policy", step_up_key(policy))


# start_run and load_model: ws.runs.start_run and ws.models.load, in CALLS
NOT_OPERATIONS = {"Workspace.close", "Workspace.start_run", "Workspace.load_model"}


def _witness_of(ws: Workspace) -> Any:
    folder = ws.root / "witness-for-test"
    if not folder.exists():
        ws.audit.checkpoint(export=folder)
    return folder


def test_every_marked_method_has_a_call_in_this_test() -> None:
    assert set(marked_methods()) == set(CALLS), "add the new door method to CALLS"


def test_every_public_service_method_is_classified() -> None:
    """A new method must be marked (and so audited) or declared a read here: none slips past the door."""
    public = set()
    for cls in [Workspace, *(type(v) for v in _service_types())]:
        for name, _member in inspect.getmembers(cls, inspect.isfunction):
            if not name.startswith("_"):
                public.add(f"{cls.__name__}.{name}")
    assert public == set(CALLS) | set(READS) | NOT_OPERATIONS


@pytest.mark.parametrize("method", sorted(READS))
def test_reads_write_no_event(admin: Workspace, method: str, clock: StepClock) -> None:
    _prepare(admin)
    _witness_of(admin)
    before = _event_count(admin)
    READS[method](admin)
    assert _event_count(admin) == before


def _event_count(ws: Workspace) -> int:
    with ws._ctx.db.read() as conn:
        return int(conn.execute(select(func.count()).select_from(audit_events)).scalar_one())


def _prepare(ws: Workspace) -> None:
    ws.users.add("alice")
    _ALICE_TOKENS[ws.root] = ws.tokens.create("first", user="alice").plaintext
    _prepare_mfa(ws)
    _prepare_access(ws)


_REQUESTS: dict[Any, str] = {}


def _prepare_access(ws: Workspace) -> None:
    """Project "fraud" where alice is an ml_engineer, a pending request by alice that needs an admin,
    and the admin's step-ups for the sensitive calls above."""
    from mlwarden.access.policy import step_up_key
    from mlwarden.access.roles import Role
    from mlwarden.domain.events import Resource
    from mlwarden.service.approvals import load_request, open_request
    from mlwarden.service.roles import binding_resource

    ws.projects.create("fraud")
    ws.roles.grant("alice", "ml_engineer", "fraud", totp=_mfa_code(ws))
    with ws._ctx.db.write() as conn:
        alice = conn.execute(select(users.c.id).where(users.c.name == "alice")).scalar_one()
        request = open_request(
            conn, kind="test.change", project="fraud", resource=Resource("model", "m", "fraud"),
            digest="sha256:" + "0" * 64, author_id=alice, required_role=Role.ADMIN,
        )  # fmt: skip
        approval_key = step_up_key(load_request(conn, request).resource())
    _REQUESTS[ws.root] = request
    _prepare_data(ws)
    ws.mfa.step_up(_mfa_code(ws), "scan.allow", step_up_key(Resource("scan_allowlist", "mypkg.layers:Reviewed")))
    ws.scans.allow("mypkg.layers:Reviewed", reason="reviewed")
    for action, key in (
        ("scan.allow", step_up_key(Resource("scan_allowlist", "mypkg.layers:Custom"))),
        ("data.unprotect", step_up_key(Resource("dataset", "fraud/tx", "fraud"))),
        ("role.grant", step_up_key(binding_resource("fraud", "alice", Role.VIEWER))),
        ("role.revoke", step_up_key(binding_resource("fraud", "alice", Role.ML_ENGINEER))),
        ("approval.approve", approval_key),
    ):
        ws.mfa.step_up(_mfa_code(ws), action, key)


def _prepare_data(ws: Workspace) -> None:
    """Dataset "tx" with two versions from two sources; the admin is data steward and (set directly in the
    table, as if granted by another admin) a project admin of "fraud"."""
    from sqlalchemy import insert

    from mlwarden.audit.clock import format_ts, utcnow
    from mlwarden.store.tables import role_bindings

    ws.roles.grant("admin", "data_steward", "fraud", totp=_mfa_code(ws))
    with ws._ctx.db.write() as conn:
        conn.execute(
            insert(role_bindings).values(
                user_id=ws.actor.user_id, project="fraud", role="admin", granted_at=format_ts(utcnow())
            )
        )
    ws.data.add("tx", _rows(5), source="vendor-a", project="fraud")
    ws.data.add("tx", _rows(5, start=5), source="vendor-b", project="fraud")
    _RUNS[ws.root] = ws.runs.start_run("fraud", "prepared", capture=False).id
    _prepare_models(ws)
    _prepare_trust(ws)


def _prepare_trust(ws: Workspace) -> None:
    """tx@1 trusted already (for untrust), and the step-up that trusting tx@2 consumes."""
    from mlwarden.access.policy import step_up_key
    from mlwarden.domain.events import Resource

    for ref in ("tx@1", "tx@2"):
        digest = ws.data.show(ref, project="fraud")["version"]["digest"]
        resource = Resource("dataset", "fraud/tx", "fraud", attributes=(("digest", digest),))
        ws.mfa.step_up(_mfa_code(ws), "data.trust", step_up_key(resource))
        if ref == "tx@1":
            ws.defense.trust(ref, project="fraud")


_RUNS: dict[Any, str] = {}


# MFA: the admin has a confirmed factor (on a test clock, one step past the code that confirmed it).
_ALICE_TOKENS: dict[Any, str] = {}
_ENROLLED: dict[Any, Any] = {}


def _prepare_mfa(ws: Workspace) -> None:
    _ENROLLED[ws.root] = ws.mfa.enroll()
    ws.mfa.verify(_mfa_code(ws))


def _mfa_code(ws: Workspace) -> str:
    """A fresh code: the (patched) MFA clock moves to the next 30 s step first."""
    import pyotp

    from mlwarden.service import mfa

    clock = mfa.now
    assert isinstance(clock, StepClock), "request the clock fixture"
    clock.advance()
    return pyotp.TOTP(_ENROLLED[ws.root].secret).at(clock.now)


def _as_alice(ws: Workspace, call: Callable[[Workspace], Any]) -> Any:
    from mlwarden.service.workspace import open_workspace

    with open_workspace(ws.root, token=_ALICE_TOKENS[ws.root]) as alice:
        return call(alice)


@pytest.mark.parametrize("method", sorted(CALLS))
def test_each_door_method_writes_exactly_one_event(admin: Workspace, method: str, clock: StepClock) -> None:
    _prepare(admin)
    before = _event_count(admin)
    CALLS[method](admin)
    assert _event_count(admin) == before + 1
    last = admin.audit.log()[-1]  # a query's own audit.read event is appended after its results are read
    assert last.seq == before
    assert last.record.outcome == "ok"


@pytest.mark.parametrize("method", sorted(CALLS))
def test_a_failure_after_the_change_rolls_back_change_and_event(
    admin: Workspace, method: str, monkeypatch: pytest.MonkeyPatch, clock: StepClock
) -> None:
    _prepare(admin)
    snapshot = _state(admin)

    def broken_append(self: AuditLog, conn: Any, records: Any) -> Any:
        raise RuntimeError("disk full while appending the audit event")

    monkeypatch.setattr(AuditLog, "append_many", broken_append)
    with pytest.raises(RuntimeError, match="disk full"):
        CALLS[method](admin)
    monkeypatch.undo()
    assert _state(admin) == snapshot


def _state(ws: Workspace) -> tuple[Any, ...]:
    """Every row of every table but the audit log's, and the log's length."""
    from mlwarden.store.tables import metadata

    with ws._ctx.db.read() as conn:
        rows = [
            sorted(map(tuple, conn.execute(select(table)).all()), key=repr)
            for name, table in sorted(metadata.tables.items())
            if not name.startswith("audit_")
        ]
        return (*rows, conn.execute(select(func.count()).select_from(audit_events)).scalar_one())


def test_denied_attempt_is_audited_with_reason_and_changes_nothing(
    env: Env, admin: Workspace, clock: StepClock
) -> None:
    _prepare(admin)
    alice_token = admin.tokens.create("laptop", user="alice").plaintext
    with env.open(alice_token) as alice:
        with pytest.raises(PermissionDenied, match="needs a workspace admin"):
            alice.users.add("mallory", admin=True)
    denied = admin.audit.log()[-1]
    assert (denied.record.actor, denied.record.action, denied.record.outcome) == ("alice", "user.add", "denied")
    assert denied.record.resource.id == "mallory"
    assert "workspace admin" in (denied.record.reason or "")
    assert "mallory" not in [u.name for u in admin.users.list()]


def test_user_cannot_touch_another_users_tokens(env: Env, admin: Workspace, clock: StepClock) -> None:
    _prepare(admin)
    admin.users.add("bob")
    bob_token = admin.tokens.create("b", user="bob").plaintext
    alice_token_id = admin.tokens.list("alice")[0].id
    with env.open(bob_token) as bob:
        with pytest.raises(PermissionDenied):
            bob.tokens.revoke(alice_token_id)
        with pytest.raises(PermissionDenied):
            bob.tokens.create("stolen", user="alice")
        with pytest.raises(PermissionDenied):
            bob.tokens.list("alice")
        own = bob.tokens.create("mine")
        bob.tokens.revoke(own.info.id)


def test_anonymous_can_only_log_in(env: Env) -> None:
    with env.open(token="") as anonymous:
        assert not anonymous.whoami().authenticated
        with pytest.raises(AuthenticationError):
            anonymous.users.add("eve")
        with pytest.raises(AuthenticationError):
            anonymous.audit.log()
    with env.open() as admin:
        events = admin.audit.log()
    assert any(e.record.action == "user.add" and e.record.outcome == "denied" for e in events)


def test_reads_that_hand_out_content_are_audited(admin: Workspace) -> None:
    admin.audit.log()
    admin.audit.log()
    reads = [e for e in admin.audit.log() if e.record.action == "audit.read"]
    assert len(reads) == 2  # the third query's own event is appended after its results are read
    assert reads[0].record.details["returned"] == reads[0].seq


def test_non_admins_cannot_probe_for_what_exists(env: Env, admin: Workspace, clock: StepClock) -> None:
    _prepare(admin)
    admin.users.add("bob")
    alice_token = admin.tokens.list("alice")[0].id
    messages = []
    with env.open(admin.tokens.create("b", user="bob").plaintext) as bob:
        for probe in (
            lambda: bob.tokens.revoke("0123456789ab"),  # no such token
            lambda: bob.tokens.revoke(alice_token),  # alice's token
            lambda: bob.tokens.list("nobody"),
            lambda: bob.tokens.list("alice"),
            lambda: bob.users.set_password("x" * (2 << 20), "a-long-enough-password"),  # a 2 MiB probe
        ):
            with pytest.raises(PermissionDenied) as caught:
                probe()
            messages.append(str(caught.value).split(":", 1)[1])
    assert messages[0] == messages[1] and messages[2] == messages[3]  # missing and not-yours look alike
    denied = [e for e in admin.audit.log() if e.record.outcome == "denied"]
    assert len(denied) == 5  # every probe audited, the oversized one too
    assert "not found (no token with id '0123456789ab')" in (denied[0].record.reason or "")
    assert "needs the user the resource belongs to" in (denied[1].record.reason or "")


def test_an_action_without_a_permission_rule_is_denied() -> None:
    from mlwarden.access.policy import WorkspacePolicy
    from mlwarden.domain.actions import Action
    from mlwarden.domain.events import SYSTEM, Actor, AuthMethod, Resource, UserId

    root = Actor(name="root", auth_method=AuthMethod.TOKEN, user_id=UserId("u1"), is_admin=True)
    empty = WorkspacePolicy(permissions={})
    for actor in (root, SYSTEM):
        decision = empty.decide(None, actor, Action.USER_ADD, Resource("user", "x"))  # type: ignore[arg-type]
        assert not decision.allowed and "deny by default" in decision.reason
