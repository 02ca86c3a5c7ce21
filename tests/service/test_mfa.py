"""TOTP MFA through the service layer: enrollment, replay, races between processes, lockout, step-up,
who may do what, and no secret or code anywhere in clear. On SQLite and PostgreSQL (the ``env`` fixture).

Codes are computed with pyotp from the secret `enroll` returns, at the time of an injected clock.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyotp
import pytest
from sqlalchemy import select, update

from mlwarden.audit.clock import format_ts
from mlwarden.domain.events import AuditEvent
from mlwarden.errors import AuthenticationError, IntegrityError, PermissionDenied, UsageError
from mlwarden.service.mfa import (
    LOCK_MAX,
    MAX_FAILURES,
    STEP_UP_TTL,
    Enrollment,
    MfaService,
    consume_step_up,
    lock_duration,
)
from mlwarden.service.users import credential_digest
from mlwarden.service.workspace import Workspace
from mlwarden.store.tables import audit_events, metadata, mfa_factors, mfa_step_ups
from tests.conftest import Env

T0 = datetime(2024, 3, 1, 12, 0, 15, tzinfo=UTC)  # the middle of a 30-second step, in the past
VERIFIER = Path(__file__).with_name("_mfa_verifier.py")


class Clock:
    """A controllable clock for MfaService (UTC)."""

    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def code(enrollment: Enrollment, at: datetime, steps: int = 0) -> str:
    """The code an authenticator app shows at ``at`` (``steps`` time steps later)."""
    return pyotp.TOTP(enrollment.secret).at(at, counter_offset=steps)


def wrong_code(enrollment: Enrollment, at: datetime) -> str:
    """A well-formed code valid at no step of the window around ``at``."""
    valid = {code(enrollment, at, k) for k in (-1, 0, 1)}
    return next(c for c in (f"{n:06d}" for n in range(1_000_000)) if c not in valid)


@dataclass
class People:
    admin: Workspace
    alice: Workspace
    alice_token: str
    clock: Clock

    def mfa(self, ws: Workspace) -> MfaService:
        return MfaService(ws._ctx, clock=self.clock)


@pytest.fixture
def people(env: Env, admin: Workspace) -> Iterator[People]:
    admin.users.add("alice")
    token = admin.tokens.create("t", user="alice").plaintext
    with env.open(token) as alice:
        yield People(admin=admin, alice=alice, alice_token=token, clock=Clock())


def _events(admin: Workspace, action: str) -> list[AuditEvent]:
    return [e for e in admin.audit.log() if e.record.action == action]


def _last(admin: Workspace, action: str) -> AuditEvent:
    events = _events(admin, action)
    assert events, f"no {action} event"
    return events[-1]


def _factor_row(ws: Workspace, user_id: str) -> dict[str, object]:
    with ws._ctx.db.read() as conn:
        row = conn.execute(select(mfa_factors).where(mfa_factors.c.user_id == user_id)).mappings().one()
    return dict(row)


# -- enrollment and verification ------------------------------------------------------------------------


def test_enroll_then_verify_confirms_and_audits(people: People) -> None:
    mfa = people.mfa(people.alice)
    enrollment = mfa.enroll()
    assert enrollment.user == "alice" and enrollment.issuer == "mlwarden"
    assert enrollment.account == f"alice@{people.alice.config.origin}"
    assert pyotp.parse_uri(enrollment.uri).secret == enrollment.secret
    assert enrollment.secret not in repr(enrollment) and "otpauth" not in repr(enrollment)
    status = mfa.status()
    assert (status.enrolled, status.confirmed) == (True, False)

    event = _last(people.admin, "mfa.enroll").record
    row = _factor_row(people.admin, people.alice.actor.user_id or "")
    assert event.actor == "alice" and event.resource.id == "alice"
    assert event.digest_after == credential_digest(str(row["secret_sealed"]))

    mfa.verify(code(enrollment, T0))
    assert mfa.status().confirmed
    verified = _last(people.admin, "mfa.verify").record
    assert verified.outcome == "ok" and verified.details["confirmed_enrollment"] is True
    assert verified.details["step"] == int(T0.timestamp()) // 30


def test_reenrolling_replaces_an_unconfirmed_factor_but_not_a_confirmed_one(people: People) -> None:
    mfa = people.mfa(people.alice)
    first = mfa.enroll()
    second = mfa.enroll()
    assert second.replaced and second.secret != first.secret
    with pytest.raises(AuthenticationError):
        mfa.verify(code(first, T0))  # the replaced secret is gone
    people.clock.advance(30)
    mfa.verify(code(second, people.clock.now))
    with pytest.raises(UsageError, match="confirmed authenticator already"):
        mfa.enroll()


def test_verifying_without_a_factor_is_a_usage_error(people: People) -> None:
    with pytest.raises(UsageError, match="no authenticator enrolled"):
        people.mfa(people.alice).verify("123456")


@pytest.mark.parametrize("bad", ["12345", "1234567", "12a456", "", "１２３４５６"])
def test_malformed_codes_are_refused_before_anything_else(people: People, bad: str) -> None:
    mfa = people.mfa(people.alice)
    mfa.enroll()
    with pytest.raises(UsageError, match="exactly 6 digits"):
        mfa.verify(bad)
    assert mfa.status().failures == 0


# -- replay -------------------------------------------------------------------------------------------------


def test_the_same_code_twice_is_accepted_once(people: People) -> None:
    mfa = people.mfa(people.alice)
    enrollment = mfa.enroll()
    accepted = code(enrollment, T0)
    mfa.verify(accepted)
    with pytest.raises(AuthenticationError, match="not accepted"):
        mfa.verify(accepted)
    people.clock.advance(10)  # still the same step
    with pytest.raises(AuthenticationError):
        mfa.verify(accepted)
    denied = _last(people.admin, "mfa.verify").record
    assert denied.outcome == "denied" and "replayed" in denied.reason
    assert mfa.status().failures == 2  # refused replays count towards the lock


def test_a_code_of_an_earlier_step_than_the_last_accepted_is_refused(people: People) -> None:
    mfa = people.mfa(people.alice)
    enrollment = mfa.enroll()
    mfa.verify(code(enrollment, T0, steps=+1))  # the window lets the next step's code in...
    with pytest.raises(AuthenticationError):
        mfa.verify(code(enrollment, T0))  # ...after which the current step's is too old
    with pytest.raises(AuthenticationError):
        mfa.verify(code(enrollment, T0, steps=-1))
    people.clock.advance(60)  # two steps on: the last accepted step is now the previous one
    mfa.verify(code(enrollment, people.clock.now))


def test_codes_outside_the_window_are_refused(people: People) -> None:
    mfa = people.mfa(people.alice)
    enrollment = mfa.enroll()
    for steps in (-2, +2):
        candidate = code(enrollment, T0, steps)
        if candidate in {code(enrollment, T0, k) for k in (-1, 0, 1)}:
            continue  # a chance collision with a code in the window
        with pytest.raises(AuthenticationError):
            mfa.verify(candidate)
    assert _last(people.admin, "mfa.verify").record.reason.startswith("wrong code")


def _spawn(args: list[str], out: Path) -> subprocess.Popen[bytes]:
    with out.with_suffix(".out").open("wb") as stdout, out.with_suffix(".err").open("wb") as stderr:
        return subprocess.Popen([sys.executable, str(VERIFIER), *args], stdout=stdout, stderr=stderr)


PROCESSES = 4


@pytest.mark.timeout(120)
def test_one_code_sent_by_concurrent_processes_is_accepted_exactly_once(
    env: Env, people: People, tmp_path: Path
) -> None:
    enrollment = people.mfa(people.alice).enroll()
    the_code = code(enrollment, T0)
    start = tmp_path / "start"
    ready = [tmp_path / f"ready-{k}" for k in range(PROCESSES)]
    outs = [tmp_path / f"verifier-{k}" for k in range(PROCESSES)]
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for k in range(PROCESSES):
            args = ["--root", str(env.root), "--token", people.alice_token, "--code", the_code]
            args += ["--at", str(T0.timestamp()), "--ready", str(ready[k]), "--start", str(start)]
            procs.append(_spawn(args, outs[k]))
        deadline = time.monotonic() + 90
        while not all(r.exists() for r in ready):
            assert time.monotonic() < deadline, "the verifiers did not start"
            assert all(p.poll() is None for p in procs), [o.with_suffix(".err").read_text() for o in outs]
            time.sleep(0.01)
        start.touch()
        for proc, out in zip(procs, outs, strict=True):
            assert proc.wait(timeout=60) == 0, out.with_suffix(".err").read_text()
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    results = [json.loads(out.with_suffix(".out").read_text()) for out in outs]
    assert sum(r["ok"] for r in results) == 1, results
    assert {r.get("error") for r in results if not r["ok"]} == {"AuthenticationError"}
    verifies = _events(people.admin, "mfa.verify")
    outcomes = sorted(e.record.outcome for e in verifies)
    assert outcomes == ["denied"] * (PROCESSES - 1) + ["ok"]
    assert people.mfa(people.alice).status().confirmed


def _confirmed(people: People) -> tuple[MfaService, Enrollment]:
    mfa = people.mfa(people.alice)
    enrollment = mfa.enroll()
    mfa.verify(code(enrollment, people.clock.now))
    people.clock.advance(30)
    return mfa, enrollment


def _consume(people: People, action: str, key: str, at: datetime) -> bool:
    user_id = people.alice.actor.user_id
    assert user_id is not None
    with people.admin._ctx.db.write() as conn:
        return consume_step_up(conn, user_id, action, key, at)


# -- lockout -------------------------------------------------------------------------------------------------


def test_lock_durations_double_from_30_seconds_up_to_an_hour() -> None:
    assert [lock_duration(n) for n in range(MAX_FAILURES)] == [None] * MAX_FAILURES
    seconds = [lock_duration(n).total_seconds() for n in range(MAX_FAILURES, MAX_FAILURES + 9)]
    assert seconds == [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]
    assert lock_duration(10_000) == LOCK_MAX


def test_brute_force_locks_the_factor_and_the_lock_expires(people: People) -> None:
    mfa, enrollment = _confirmed(people)
    clock = people.clock
    started = clock.now
    for attempt in range(MAX_FAILURES):
        with pytest.raises(AuthenticationError) as caught:
            mfa.verify(wrong_code(enrollment, clock.now))
        if attempt < MAX_FAILURES - 1:
            assert "locked" not in caught.value.message
    assert "locked until" in caught.value.message
    status = mfa.status()
    assert status.failures == MAX_FAILURES and status.locked_until == format_ts(started + timedelta(seconds=30))

    # Locked: even the right code is refused, without being checked, and does not extend the lock.
    clock.advance(20)
    with pytest.raises(AuthenticationError, match="locked until"):
        mfa.verify(code(enrollment, clock.now))
    denied = _last(people.admin, "mfa.verify").record
    assert denied.outcome == "denied" and "code not checked" in denied.reason
    assert mfa.status().failures == MAX_FAILURES
    with pytest.raises(AuthenticationError, match="locked"):
        mfa.step_up(code(enrollment, clock.now), "role.grant", "project:x")

    # The lock expires: one more wrong code locks for twice as long; then the right code gets in.
    clock.advance(11)
    with pytest.raises(AuthenticationError, match="locked until"):
        mfa.verify(wrong_code(enrollment, clock.now))
    assert mfa.status().locked_until == format_ts(clock.now + timedelta(seconds=60))
    clock.advance(61)
    mfa.verify(code(enrollment, clock.now))
    after = mfa.status()
    assert (after.failures, after.locked_until, after.confirmed) == (0, None, True)


def test_every_refused_attempt_is_audited_with_its_reason(people: People) -> None:
    mfa = people.mfa(people.alice)
    enrollment = mfa.enroll()
    before = len(_events(people.admin, "mfa.verify"))
    for _ in range(MAX_FAILURES + 2):
        with pytest.raises(AuthenticationError):
            mfa.verify(wrong_code(enrollment, people.clock.now))
    events = _events(people.admin, "mfa.verify")[before:]
    reasons = [e.record.reason for e in events]
    assert len(reasons) == MAX_FAILURES + 2
    assert all(e.record.outcome == "denied" and e.record.actor == "alice" for e in events)
    assert reasons[0].startswith("wrong code (1 of 5")
    assert "locked until" in reasons[MAX_FAILURES - 1]
    assert all("code not checked" in r for r in reasons[MAX_FAILURES:])


# -- step-up -------------------------------------------------------------------------------------------------


def test_a_step_up_is_for_one_action_on_one_resource(people: People) -> None:
    mfa, enrollment = _confirmed(people)
    grant = mfa.step_up(code(enrollment, people.clock.now), "role.grant", "role_binding:p/bob/approver@")
    assert grant.expires_at == format_ts(people.clock.now + STEP_UP_TTL)
    now = people.clock.now
    assert not _consume(people, "role.revoke", "role_binding:p/bob/approver@", now)  # another action
    assert not _consume(people, "role.grant", "role_binding:p/eve/approver@", now)  # another resource
    admin_id = people.admin.actor.user_id
    with people.admin._ctx.db.write() as conn:  # another user
        assert admin_id is not None
        assert not consume_step_up(conn, admin_id, "role.grant", "role_binding:p/bob/approver@", now)
    assert _consume(people, "role.grant", "role_binding:p/bob/approver@", now)
    event = _last(people.admin, "mfa.step_up").record
    assert event.details["for_action"] == "role.grant" and event.details["grant"] == grant.id


def test_a_step_up_works_once(people: People) -> None:
    mfa, enrollment = _confirmed(people)
    mfa.step_up(code(enrollment, people.clock.now), "approval.approve", "approval:a1@sha256:00")
    assert _consume(people, "approval.approve", "approval:a1@sha256:00", people.clock.now)
    assert not _consume(people, "approval.approve", "approval:a1@sha256:00", people.clock.now)
    with people.admin._ctx.db.read() as conn:
        used = conn.execute(select(mfa_step_ups.c.used_at)).scalars().all()
    assert used == [format_ts(people.clock.now)]


def test_two_step_ups_allow_two_uses(people: People) -> None:
    mfa, enrollment = _confirmed(people)
    mfa.step_up(code(enrollment, people.clock.now), "role.grant", "k")
    people.clock.advance(30)
    mfa.step_up(code(enrollment, people.clock.now), "role.grant", "k")
    assert [_consume(people, "role.grant", "k", people.clock.now) for _ in range(3)] == [True, True, False]


def test_a_stale_step_up_is_refused(people: People) -> None:
    mfa, enrollment = _confirmed(people)
    grant = mfa.step_up(code(enrollment, people.clock.now), "role.grant", "k")
    granted = people.clock.now
    assert not _consume(people, "role.grant", "k", granted + STEP_UP_TTL)  # expiry is exclusive
    assert not _consume(people, "role.grant", "k", granted + STEP_UP_TTL + timedelta(seconds=1))
    assert _consume(people, "role.grant", "k", granted + STEP_UP_TTL - timedelta(microseconds=1))
    assert grant.expires_at == format_ts(granted + STEP_UP_TTL)


def test_a_step_up_needs_a_fresh_code_of_a_confirmed_factor(people: People) -> None:
    mfa = people.mfa(people.alice)
    enrollment = mfa.enroll()
    with pytest.raises(UsageError, match="not confirmed"):
        mfa.step_up(code(enrollment, T0), "role.grant", "k")
    used = code(enrollment, T0)
    mfa.verify(used)
    with pytest.raises(AuthenticationError):
        mfa.step_up(used, "role.grant", "k")  # the code that confirmed it is spent
    with pytest.raises(UsageError, match="unknown action"):
        mfa.step_up(code(enrollment, T0, 1), "role.grnt", "k")
    with pytest.raises(UsageError, match="resource key"):
        mfa.step_up(code(enrollment, T0, 1), "role.grant", "")
    assert not _consume(people, "role.grant", "k", people.clock.now)


def test_a_rolled_back_change_leaves_its_step_up_unused(people: People) -> None:
    mfa, enrollment = _confirmed(people)
    mfa.step_up(code(enrollment, people.clock.now), "role.grant", "k")
    user_id = people.alice.actor.user_id
    assert user_id is not None
    with pytest.raises(RuntimeError), people.admin._ctx.db.write() as conn:
        assert consume_step_up(conn, user_id, "role.grant", "k", people.clock.now)
        raise RuntimeError("the change failed after its decision")
    assert _consume(people, "role.grant", "k", people.clock.now)


# -- who may do what -----------------------------------------------------------------------------------------


def test_an_admin_cannot_enroll_verify_or_step_up_for_another_user(people: People) -> None:
    mfa_admin = people.mfa(people.admin)
    enrollment = people.mfa(people.alice).enroll()
    with pytest.raises(PermissionDenied):
        mfa_admin.enroll(user="alice")
    with pytest.raises(PermissionDenied):
        mfa_admin.verify(code(enrollment, T0), user="alice")
    with pytest.raises(PermissionDenied):
        mfa_admin.step_up(code(enrollment, T0), "role.grant", "k", user="alice")
    for action in ("mfa.enroll", "mfa.verify", "mfa.step_up"):
        denied = _last(people.admin, action).record
        assert (denied.actor, denied.outcome, denied.resource.id) == ("admin", "denied", "alice")
    assert people.mfa(people.alice).status().failures == 0  # nothing was checked or counted
    people.mfa(people.alice).verify(code(enrollment, T0))  # her code is still unused


def test_users_see_and_disable_only_their_own_factor_and_admins_reset_anyones(
    people: People, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("mlwarden.service.mfa.now", people.clock)  # the decision consumes step-ups on it
    mfa_alice = people.mfa(people.alice)
    enrollment = mfa_alice.enroll()
    mfa_alice.verify(code(enrollment, T0))
    admin_enrollment = people.mfa(people.admin).enroll()
    people.mfa(people.admin).verify(code(admin_enrollment, T0))
    with pytest.raises(PermissionDenied):
        mfa_alice.status("admin")
    with pytest.raises(PermissionDenied):
        mfa_alice.disable("admin")
    assert people.mfa(people.admin).status("alice").confirmed

    people.clock.advance(30)
    mfa_alice.step_up(code(enrollment, people.clock.now), "role.grant", "k")
    with pytest.raises(PermissionDenied, match="TOTP"):
        people.mfa(people.admin).disable("alice")  # an admin reset needs the admin's own step-up
    people.mfa(people.admin).disable("alice", code(admin_enrollment, people.clock.now))
    reset = _last(people.admin, "mfa.disable").record
    assert reset.actor == "admin" and reset.resource.id == "alice" and reset.outcome == "ok"
    assert reset.details == {"reset_by_admin": True, "grants_revoked": 1}
    assert reset.digest_before is not None
    assert not mfa_alice.status().enrolled
    assert not _consume(people, "role.grant", "k", people.clock.now)  # the open grant died with it


def test_disabling_your_own_factor_needs_a_current_code(people: People) -> None:
    mfa = people.mfa(people.alice)
    enrollment = mfa.enroll()
    mfa.verify(code(enrollment, T0))
    with pytest.raises(AuthenticationError, match="needs a current code"):
        mfa.disable()
    assert "none was given" in (_last(people.admin, "mfa.disable").record.reason or "")
    with pytest.raises(AuthenticationError):
        mfa.disable(code=code(enrollment, T0))  # spent already
    people.clock.advance(30)
    mfa.disable(code=code(enrollment, people.clock.now))
    assert not mfa.status().enrolled
    assert _last(people.admin, "mfa.disable").record.details["reset_by_admin"] is False


def test_anonymous_callers_can_do_nothing(env: Env, people: People) -> None:
    with env.open(token="") as anonymous:
        mfa = MfaService(anonymous._ctx, clock=people.clock)
        for call in (
            mfa.enroll,
            lambda: mfa.verify("123456"),
            lambda: mfa.step_up("123456", "role.grant", "k"),
            mfa.status,
            lambda: mfa.disable("alice"),
        ):
            with pytest.raises(AuthenticationError):
                call()


def test_a_sealed_secret_moved_to_another_users_row_does_not_open(people: People) -> None:
    mfa_alice = people.mfa(people.alice)
    alice_enrollment = mfa_alice.enroll()
    people.mfa(people.admin).enroll()
    admin_id = people.admin.actor.user_id
    alice_id = people.alice.actor.user_id
    # Someone with database access copies their own sealed secret over alice's, hoping to pass her checks.
    with people.admin._ctx.db.write() as conn:
        theirs = conn.execute(select(mfa_factors.c.secret_sealed).where(mfa_factors.c.user_id == admin_id)).scalar()
        conn.execute(update(mfa_factors).where(mfa_factors.c.user_id == alice_id).values(secret_sealed=theirs))
    with pytest.raises(IntegrityError, match="does not open"):
        mfa_alice.verify(code(alice_enrollment, T0))
    denied = _last(people.admin, "mfa.verify").record
    assert denied.outcome == "denied" and "does not open" in denied.reason


# -- no secret or code in clear ------------------------------------------------------------------------------


def _database_text(env: Env, ws: Workspace) -> list[bytes]:
    """Every row of every table, and for SQLite the database files themselves."""
    dumps: list[bytes] = []
    with ws._ctx.db.read() as conn:
        for table in metadata.sorted_tables:
            for row in conn.execute(select(table)):
                dumps.append(repr(tuple(row)).encode())
                dumps.extend(cell for cell in row if isinstance(cell, bytes))
    if env.db_url is None:
        dumps.extend(path.read_bytes() for path in (env.root / ".mlwarden").glob("metadata.db*"))
    return dumps


def assert_nothing_in_clear(blobs: list[bytes], secrets: list[bytes], codes: list[str]) -> None:
    for blob in blobs:
        for secret in secrets:
            assert secret not in blob, "a TOTP secret is stored or shown in clear"
        for used in codes:
            # A code on its own (not part of a longer number, hex string or the microseconds of a timestamp).
            assert not re.search(rb"(?<![0-9A-Za-z.])" + used.encode() + rb"(?![0-9A-Za-z])", blob), used


def secret_forms(enrollment: Enrollment) -> list[bytes]:
    raw = pyotp.TOTP(enrollment.secret).byte_secret()
    return [
        enrollment.secret.encode(),
        enrollment.secret.lower().encode(),
        raw.hex().encode(),
        raw.hex().upper().encode(),
        raw,
    ]


def test_no_secret_or_code_is_stored_or_audited_in_clear(env: Env, people: People) -> None:
    mfa = people.mfa(people.alice)
    enrollment = mfa.enroll()
    codes = [code(enrollment, T0)]
    mfa.verify(codes[-1])
    with pytest.raises(AuthenticationError):
        mfa.verify(codes[-1])  # a replay: its denial must not name the code either
    people.clock.advance(30)
    codes.append(code(enrollment, people.clock.now))
    mfa.step_up(codes[-1], "role.grant", "k")
    codes.append(wrong_code(enrollment, people.clock.now))
    with pytest.raises(AuthenticationError) as caught:
        mfa.verify(codes[-1])
    assert codes[-1] not in str(caught.value)
    people.clock.advance(30)
    codes.append(code(enrollment, people.clock.now))
    mfa.disable(code=codes[-1])

    with people.admin._ctx.db.read() as conn:
        bodies = [bytes(b) for b in conn.execute(select(audit_events.c.body)).scalars()]
    assert any(b'"mfa.step_up"' in body for body in bodies)
    assert_nothing_in_clear(_database_text(env, people.admin) + bodies, secret_forms(enrollment), codes)


def test_verify_reconciles_totp_factors(env: Env, people: People) -> None:
    """A database writer who removes or swaps someone's factor behind the log's back is named by verify."""
    from sqlalchemy import delete, select, update

    from mlwarden.store.tables import mfa_factors, users

    mfa = people.mfa(people.alice)
    enrollment = mfa.enroll()
    mfa.verify(code(enrollment, T0))
    assert people.admin.audit.verify().ok
    with people.admin._ctx.db.engine.begin() as conn:
        alice = conn.execute(select(users.c.id).where(users.c.name == "alice")).scalar_one()
        conn.execute(update(mfa_factors).where(mfa_factors.c.user_id == alice).values(confirmed=False))
    messages = [p.message for p in people.admin.audit.verify().problems if p.kind == "state"]
    assert any("TOTP factor of 'alice': confirmed" in m for m in messages)
    with people.admin._ctx.db.engine.begin() as conn:
        conn.execute(delete(mfa_factors).where(mfa_factors.c.user_id == alice))
    messages = [p.message for p in people.admin.audit.verify().problems if p.kind == "state"]
    assert any("TOTP factor of 'alice'" in m and "missing from the database" in m for m in messages)
