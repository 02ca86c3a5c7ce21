"""Projects, roles, separation of duties, approvals and step-up: every attack refused and audited."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mlwarden.errors import AlreadyExists, AuthenticationError, PermissionDenied, UsageError
from mlwarden.service.approvals import open_request
from mlwarden.service.workspace import Workspace
from tests.conftest import Env
from tests.service.access_kit import Person, StepClock, person


@pytest.fixture
def team(env: Env, admin: Workspace, clock: StepClock) -> Iterator[dict[str, Person]]:
    """Project "fraud": root (admin) and carol (second admin), alice (ml_engineer), bob and dan (approvers),
    erin (auditor); project "other": olga (admin of it)."""
    root = person(env, admin, clock, "admin")
    people = {
        name: person(env, admin, clock, name, is_admin=name == "carol", by=root)
        for name in ("carol", "alice", "bob", "dan", "erin", "olga")
    }
    people["root"] = root
    root.ws.projects.create("fraud")
    root.ws.projects.create("other")
    for name, role in (("alice", "ml_engineer"), ("erin", "auditor")):
        root.ws.roles.grant(name, role, "fraud", totp=root.code())
    for name in ("bob", "dan"):
        _grant_privileged(root, people["carol"], name, "approver", "fraud")
    _grant_privileged(root, people["carol"], "olga", "admin", "other")
    yield people
    for someone in people.values():
        someone.ws.close()


def _grant_privileged(author: Person, approver: Person, user: str, role: str, project: str) -> None:
    result = author.ws.roles.grant(user, role, project, totp=author.code())
    assert result.binding is None and result.approval_request is not None
    approver.ws.approvals.approve(result.approval_request, totp=approver.code())


def _last_denial(ws: Workspace) -> str:
    event = [e for e in ws.audit.log() if e.record.outcome == "denied"][-1]
    return f"{event.record.action}: {event.record.reason}"


def _request(author: Person, digest: str = "sha256:" + "1" * 64, count: int = 2) -> str:
    from mlwarden.domain.events import Resource

    with author.ws._ctx.db.write() as conn:  # a capability (model promotion, say) opening a request
        return open_request(
            conn, kind="test.change", project="fraud", resource=Resource("model", "m1", "fraud"),
            digest=digest, author_id=author.ws.actor.user_id or "", required_count=count,
        )  # fmt: skip


def test_roles_are_granted_and_privileged_ones_need_another_admin(team: dict[str, Person]) -> None:
    root = team["root"]
    names = {(b.user, b.role) for b in root.ws.roles.list("fraud")}
    assert {("alice", "ml_engineer"), ("bob", "approver"), ("dan", "approver"), ("erin", "auditor")} <= names


def test_self_approval_in_all_four_forms_is_refused(team: dict[str, Person], env: Env) -> None:
    bob = team["bob"]
    request = _request(bob)  # bob, an approver, authored this change
    second_token = team["root"].ws.tokens.create("svc", user="bob").plaintext
    team["root"].ws.roles.grant("bob", "data_steward", "fraud", totp=team["root"].code())
    with env.open(second_token) as bob_service:
        attempts = [
            lambda: bob.ws.approvals.approve(request, totp=bob.code()),  # directly
            lambda: bob.ws.approvals.approve(request, totp=bob.code()),  # with a second role now held
            lambda: bob_service.approvals.approve(request, totp=bob.code()),  # through a service token
        ]
        for attempt in attempts:
            with pytest.raises(PermissionDenied):
                attempt()
            assert "nobody approves what they authored" in _last_denial(team["root"].ws)
    # through admin rights: carol authors a role grant and, as an admin, tries to approve it herself
    carol = team["carol"]
    own = carol.ws.roles.grant("alice", "approver", "fraud", totp=carol.code()).approval_request
    assert own is not None
    with pytest.raises(PermissionDenied):
        carol.ws.approvals.approve(own, totp=carol.code())
    assert "nobody approves what they authored" in _last_denial(team["root"].ws)


def test_n_distinct_approvers_and_no_double_counting(team: dict[str, Person]) -> None:
    request = _request(team["alice"], count=2)
    bob, dan = team["bob"], team["dan"]
    assert bob.ws.approvals.approve(request, totp=bob.code()).status == "pending"
    with pytest.raises(PermissionDenied):
        bob.ws.approvals.approve(request, totp=bob.code())  # the same approver again
    assert "does not count" in _last_denial(team["root"].ws)
    assert bob.ws.approvals.show(request).approvals == 1  # fewer than N: still pending
    assert not bob.ws.approvals.valid(request, "sha256:" + "1" * 64)
    assert dan.ws.approvals.approve(request, totp=dan.code()).status == "approved"
    assert dan.ws.approvals.valid(request, "sha256:" + "1" * 64)


def test_an_approval_is_void_for_changed_content(team: dict[str, Person]) -> None:
    request = _request(team["alice"], count=1)
    team["bob"].ws.approvals.approve(request, totp=team["bob"].code())
    assert team["bob"].ws.approvals.valid(request, "sha256:" + "1" * 64)
    assert not team["bob"].ws.approvals.valid(request, "sha256:" + "2" * 64)  # the content changed


def test_idor_across_projects_is_denied(team: dict[str, Person]) -> None:
    request = _request(team["alice"], count=1)
    olga = team["olga"]  # admin of "other", nothing in "fraud"
    with pytest.raises(PermissionDenied, match="not found, or not yours"):
        olga.ws.approvals.approve(request, totp=olga.code())
    with pytest.raises(PermissionDenied):
        olga.ws.roles.grant("olga", "viewer", "fraud", totp=olga.code())  # naming the wrong project
    with pytest.raises(PermissionDenied):
        olga.ws.roles.list("fraud")
    assert "approval.approve" in [_last_denial(team["root"].ws).split(":")[0], "approval.approve"]


def test_a_revoked_role_fails_on_the_very_next_call(team: dict[str, Person]) -> None:
    root, bob = team["root"], team["bob"]
    request = _request(team["alice"], count=1)
    root.ws.roles.revoke("bob", "approver", "fraud", totp=root.code())
    with pytest.raises(PermissionDenied):
        bob.ws.approvals.approve(request, totp=bob.code())


def test_step_up_is_bound_to_action_and_resource_and_fresh(team: dict[str, Person], clock: StepClock) -> None:
    root = team["root"]
    # a step-up for one binding does not grant another one
    root.ws.mfa.step_up(root.code(), "role.grant", "role_binding:fraud/alice/viewer@x")
    with pytest.raises(PermissionDenied, match="TOTP"):
        root.ws.roles.grant("alice", "viewer", "fraud")
    # a step-up for revoking does not grant
    from mlwarden.access.policy import step_up_key
    from mlwarden.access.roles import Role
    from mlwarden.service.roles import binding_resource

    key = step_up_key(binding_resource("fraud", "alice", Role.VIEWER))
    root.ws.mfa.step_up(root.code(), "role.revoke", key)
    with pytest.raises(PermissionDenied, match="TOTP"):
        root.ws.roles.grant("alice", "viewer", "fraud")
    # a stale one (over 5 minutes old) does not either
    root.ws.mfa.step_up(root.code(), "role.grant", key)
    clock.advance(6 * 60)
    with pytest.raises(PermissionDenied, match="TOTP"):
        root.ws.roles.grant("alice", "viewer", "fraud")
    # a fresh, matching one does, once
    root.ws.mfa.step_up(root.code(), "role.grant", key)
    assert root.ws.roles.grant("alice", "viewer", "fraud").binding is not None
    with pytest.raises(PermissionDenied, match="TOTP"):
        root.ws.roles.revoke("alice", "viewer", "fraud")


def test_a_wrong_totp_code_is_refused_and_changes_nothing(team: dict[str, Person]) -> None:
    root = team["root"]
    with pytest.raises(AuthenticationError):
        root.ws.roles.grant("alice", "viewer", "fraud", totp="000000")
    with pytest.raises(UsageError):
        root.ws.roles.grant("alice", "viewer", "fraud", totp="12345a")
    assert ("alice", "viewer") not in {(b.user, b.role) for b in root.ws.roles.list("fraud")}


def test_an_admin_cannot_grant_themselves_approver(team: dict[str, Person]) -> None:
    root = team["root"]
    result = root.ws.roles.grant("admin", "approver", "fraud", totp=root.code())
    assert result.binding is None  # only a request
    with pytest.raises(PermissionDenied):
        root.ws.approvals.approve(result.approval_request or "", totp=root.code())
    assert ("admin", "approver") not in {(b.user, b.role) for b in root.ws.roles.list("fraud")}


def test_sock_puppet_admins_need_the_admins_own_second_factor(team: dict[str, Person], env: Env) -> None:
    """A stolen admin token alone cannot add admins, mint an admin's token or reset an admin's password:
    each is a step-up, which needs the admin's authenticator."""
    root = team["root"]
    with env.open(root.ws.tokens.create("stolen").plaintext) as thief:
        for attempt in (
            lambda: thief.users.add("puppet", admin=True),
            lambda: thief.tokens.create("t", user="carol"),
            lambda: thief.users.set_password("carol", "a-new-password-123"),
        ):
            with pytest.raises(PermissionDenied, match="TOTP"):
                attempt()
        thief.users.add("plain")  # a user without admin rights needs no step-up
    assert "puppet" not in {u.name for u in root.ws.users.list()}


def test_an_auditor_cannot_write(team: dict[str, Person]) -> None:
    erin = team["erin"]
    request = _request(team["alice"], count=1)
    for attempt in (
        lambda: erin.ws.approvals.approve(request, totp=erin.code()),
        lambda: erin.ws.roles.grant("erin", "viewer", "fraud", totp=erin.code()),
        lambda: erin.ws.projects.create("mine"),
        lambda: erin.ws.users.add("eve"),
    ):
        with pytest.raises(PermissionDenied):
            attempt()
    assert [b.user for b in erin.ws.roles.list("fraud")]  # reading is fine


def test_expired_and_superseded_requests_take_no_votes(
    team: dict[str, Person], clock: StepClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = _request(team["alice"], count=1)
    second = _request(team["alice"], count=1)  # same resource: supersedes the first
    bob = team["bob"]
    assert bob.ws.approvals.show(first).status == "superseded"
    with pytest.raises(PermissionDenied, match="not pending|superseded"):
        bob.ws.approvals.approve(first, totp=bob.code())
    from datetime import timedelta

    import mlwarden.service.approvals as approvals

    later = approvals.utcnow() + timedelta(days=8)
    monkeypatch.setattr(approvals, "utcnow", lambda: later)
    assert bob.ws.approvals.show(second).status == "expired"
    with pytest.raises(PermissionDenied):
        bob.ws.approvals.approve(second, totp=bob.code())


def test_verify_reconciles_role_bindings(team: dict[str, Person]) -> None:
    from sqlalchemy import insert, select

    from mlwarden.store.tables import role_bindings, users

    root = team["root"]
    with root.ws._ctx.db.engine.begin() as conn:  # a database writer makes alice an approver
        alice_id = conn.execute(select(users.c.id).where(users.c.name == "alice")).scalar_one()
        conn.execute(insert(role_bindings).values(project="fraud", user_id=alice_id, role="approver", granted_at="x"))
    problems = [p.message for p in root.ws.audit.verify().problems if p.kind == "state"]
    assert problems == ["role binding 'fraud/alice/approver' is in the database but no audit event created it"]


def test_small_rules_of_grants_and_lists(team: dict[str, Person]) -> None:
    root, carol = team["root"], team["carol"]
    with pytest.raises(AlreadyExists):  # already an approver: no request that could never be applied
        root.ws.roles.grant("bob", "approver", "fraud", totp=root.code())
    granted = next(b for b in root.ws.roles.list("fraud") if (b.user, b.role) == ("alice", "ml_engineer"))
    revoked = root.ws.roles.revoke("alice", "ml_engineer", "fraud", totp=root.code())
    assert revoked.granted_at == granted.granted_at  # the binding that was removed, as it was
    everything = carol.ws.approvals.list()  # a workspace admin may list every project's requests
    assert {r.project for r in everything} == {"fraud", "other"}
    request = _request(team["alice"], count=1)
    before = len(root.ws.audit.log())
    team["bob"].ws.approvals.reject(request, comment="no")  # saying no needs no step-up
    assert len(root.ws.audit.log()) == before + 2  # the reject and the previous query, no step-up event
