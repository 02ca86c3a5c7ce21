"""Users, passwords and API tokens through the service layer: every way a credential can be bad."""

from __future__ import annotations

from datetime import timedelta

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select, update

from mlwarden.audit.clock import format_ts, utcnow
from mlwarden.errors import AlreadyExists, AuthenticationError, UsageError
from mlwarden.identity.passwords import DEFAULT_PARAMETERS
from mlwarden.identity.tokens import TOKEN_PREFIX, parse_token
from mlwarden.service.workspace import Workspace
from mlwarden.store.tables import api_tokens, users
from tests.conftest import ADMIN_PASSWORD, Env

PASSWORD = "a-password-for-identity-tests"


def _last_denial(admin: Workspace, action: str) -> tuple[str, str]:
    event = [e for e in admin.audit.log() if e.record.action == action][-1]
    assert event.record.outcome == "denied"
    return event.record.resource.id, event.record.reason or ""


def test_tokens_are_stored_only_as_hashes(env: Env, admin: Workspace) -> None:
    new = admin.tokens.create("probe")
    secret = parse_token(new.plaintext).secret
    assert new.plaintext.startswith(TOKEN_PREFIX) and len(secret) >= 22  # >= 128 bits of base64
    with admin._ctx.db.read() as conn:
        rows = [tuple(map(str, r)) for r in conn.execute(select(api_tokens)).all()]
    assert not any(secret in cell or new.plaintext in cell for row in rows for cell in row)
    if env.db_url is None:
        assert secret.encode() not in (env.root / ".mlwarden" / "metadata.db").read_bytes()


def test_revoked_expired_unknown_and_malformed_tokens_are_rejected_and_audited(env: Env, admin: Workspace) -> None:
    admin.users.add("gus")
    revoked = admin.tokens.create("r", user="gus")
    admin.tokens.revoke(revoked.info.id)
    expiring = admin.tokens.create("e", user="gus", expires_in=timedelta(seconds=1))
    with admin._ctx.db.write() as conn:  # age it instead of sleeping
        conn.execute(
            update(api_tokens).where(api_tokens.c.id == expiring.info.id).values(expires_at=format_ts(utcnow()))
        )
    wrong_secret = revoked.plaintext[:-4] + ("AAAA" if not revoked.plaintext.endswith("AAAA") else "BBBB")
    cases = [
        (revoked.plaintext, "revoked"),
        (expiring.plaintext, "expired"),
        (f"{TOKEN_PREFIX}0123456789ab_{'A' * 43}", "unknown token"),
        ("not-a-token", "malformed"),
    ]
    for token, reason in cases:
        with pytest.raises(AuthenticationError):
            env.open(token)
        resource, logged_reason = _last_denial(admin, "auth.token")
        assert reason in logged_reason or reason in resource
    with pytest.raises(AuthenticationError):
        env.open(wrong_secret)


def test_disabled_user_loses_tokens_and_password(env: Env, admin: Workspace) -> None:
    admin.users.add("hal", password=PASSWORD)
    token = admin.tokens.create("t", user="hal").plaintext
    with env.open(token) as hal:
        assert hal.whoami().name == "hal"
    admin.users.disable("hal")
    with pytest.raises(AuthenticationError):
        env.open(token)
    with env.open(token="") as anonymous, pytest.raises(AuthenticationError):
        anonymous.login("hal", PASSWORD)
    assert "disabled" in _last_denial(admin, "auth.login")[1]


def test_login_failures_look_the_same_and_are_audited(env: Env, admin: Workspace) -> None:
    admin.users.add("ivy")  # no password: only tokens
    messages = []
    with env.open(token="") as anonymous:
        for name, password in (("admin", "wrong-password-123"), ("nobody", PASSWORD), ("ivy", PASSWORD)):
            with pytest.raises(AuthenticationError) as caught:
                anonymous.login(name, password)
            messages.append(str(caught.value))
    assert len(set(messages)) == 1  # no user enumeration
    denied = [e for e in admin.audit.log() if e.record.action == "auth.login"]
    assert [e.record.actor for e in denied] == ["admin", "nobody", "ivy"]


def test_login_rehashes_when_argon2_parameters_change(env: Env, admin: Workspace) -> None:
    cheap = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1)
    with admin._ctx.db.write() as conn:
        conn.execute(update(users).where(users.c.name == "admin").values(password_hash=cheap.hash(ADMIN_PASSWORD)))
    with env.open(token="") as anonymous:
        anonymous.login("admin", ADMIN_PASSWORD)
    with admin._ctx.db.read() as conn:
        stored = conn.execute(select(users.c.password_hash).where(users.c.name == "admin")).scalar_one()
    assert f"m={DEFAULT_PARAMETERS.memory_cost},t={DEFAULT_PARAMETERS.time_cost}" in stored
    assert stored.startswith("$argon2id$")


def test_user_rules(admin: Workspace) -> None:
    admin.users.add("jo")
    with pytest.raises(AlreadyExists):
        admin.users.add("jo")
    with pytest.raises(UsageError, match="shorter than 12"):
        admin.users.add("kim", password="short")
    with pytest.raises(UsageError, match="yourself"):
        admin.users.disable("admin")
    admin.users.disable("jo")
    with pytest.raises(UsageError, match="disabled already"):
        admin.users.disable("jo")
    with pytest.raises(UsageError, match="disabled"):
        admin.tokens.create("x", user="jo")


def test_token_rules(admin: Workspace) -> None:
    with pytest.raises(UsageError):
        admin.tokens.create("")
    with pytest.raises(UsageError):
        admin.tokens.create("x", expires_in=timedelta(seconds=-1))
    new = admin.tokens.create("y")
    admin.tokens.revoke(new.info.id)
    with pytest.raises(UsageError, match="revoked already"):
        admin.tokens.revoke(new.info.id)
    assert not [t for t in admin.tokens.list() if t.id == new.info.id][0].active


def test_users_can_change_their_own_password_only(env: Env, admin: Workspace) -> None:
    admin.users.add("lee", password=PASSWORD)
    admin.users.add("max", password=PASSWORD)
    with env.open(admin.tokens.create("l", user="lee").plaintext) as lee:
        with pytest.raises(AuthenticationError, match="current password"):
            lee.users.set_password("lee", "lee-new-password-1")  # a stolen token is not enough
        lee.users.set_password("lee", "lee-new-password-1", current=PASSWORD)
        with pytest.raises(Exception, match="may not user.set_password"):
            lee.users.set_password("max", "hijacked-password-1")
    with env.open(token="") as anonymous:
        anonymous.login("lee", "lee-new-password-1")
        with pytest.raises(AuthenticationError):
            anonymous.login("max", "hijacked-password-1")


def test_the_decoy_hash_costs_what_a_real_one_does() -> None:
    from argon2 import extract_parameters

    from mlwarden.service.sessions import DECOY_HASH

    assert extract_parameters(DECOY_HASH) == DEFAULT_PARAMETERS
