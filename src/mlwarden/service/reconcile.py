"""Reconciling the credential tables with the audit log.

The log cannot stop someone with database access from inserting an admin, minting a token, swapping a
password hash or un-revoking a token in the `users` and `api_tokens` tables. It can make them visible:
every credential change is an audit event carrying the SHA-256 of what was stored, so replaying the log
gives the tables as they must be, and `audit verify` reports every row that differs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson
from sqlalchemy import Connection, select

from mlwarden.audit.verify import Problem
from mlwarden.domain.actions import Action
from mlwarden.service.users import credential_digest
from mlwarden.store.tables import api_tokens, audit_events, mfa_factors, role_bindings, scan_allowlist, users

_REPLAYED = [
    Action.MFA_ENROLL,
    Action.MFA_VERIFY,
    Action.MFA_DISABLE,
    Action.ROLE_GRANT,
    Action.ROLE_REVOKE,
    Action.APPROVAL_APPROVE,
    Action.USER_ADD,
    Action.USER_DISABLE,
    Action.USER_SET_PASSWORD,
    Action.TOKEN_CREATE,
    Action.TOKEN_REVOKE,
    Action.AUTH_LOGIN,
    Action.SCAN_ALLOW,
    Action.SCAN_DISALLOW,
]


@dataclass
class _User:
    seq: int
    admin: bool
    password: str | None
    disabled: bool = False


@dataclass
class _Token:
    seq: int
    user: str | None
    secret: str | None
    expires: str | None
    revoked: bool = False


@dataclass
class _Binding:
    seq: int


@dataclass
class _Factor:
    seq: int
    secret: str | None
    confirmed: bool = False


@dataclass
class _Allowed:
    seq: int
    role: str


@dataclass
class _Expected:
    """The credential tables as the log says they must be."""

    people: dict[str, _User] = field(default_factory=dict)
    tokens: dict[str, _Token] = field(default_factory=dict)
    bindings: dict[str, _Binding] = field(default_factory=dict)
    factors: dict[str, _Factor] = field(default_factory=dict)
    allowed: dict[str, _Allowed] = field(default_factory=dict)


def reconcile_credentials(conn: Connection) -> list[Problem]:
    expected = _replay(conn)
    return (
        _compare_users(conn, expected.people)
        + _compare_tokens(conn, expected.tokens)
        + _compare_bindings(conn, expected.bindings)
        + _compare_factors(conn, expected.factors)
        + _compare("scanner allow-list entry", _found_allowed(conn), expected.allowed)
    )


def _replay(conn: Connection) -> _Expected:
    expected = _Expected()
    for seq, doc in replay(conn, _REPLAYED):
        try:
            _apply(doc, seq, expected.people, expected.tokens)
            _apply_binding(doc, seq, expected.bindings)
            _apply_factor(doc, seq, expected.factors)
            _apply_allowed(doc, seq, expected.allowed)
        except (TypeError, KeyError, AttributeError):
            continue  # an event without the fields it should have: the log verification reports it
    return expected


def replay(conn: Connection, actions: list[Action]) -> Iterator[tuple[int, dict[str, Any]]]:
    """The successful events of these actions, in order, as (seq, decoded body). A damaged event is
    skipped here: the log verification itself reports it."""
    query = (
        select(audit_events.c.seq, audit_events.c.body)
        .where(audit_events.c.action.in_([a.value for a in actions]), audit_events.c.outcome == "ok")
        .order_by(audit_events.c.seq)
    )
    for seq, body in conn.execute(query):
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError:
            continue
        if isinstance(doc, dict) and isinstance(doc.get("details"), dict):
            yield int(seq), doc


def _apply(doc: dict[str, Any], seq: int, people: dict[str, _User], tokens: dict[str, _Token]) -> None:
    action, rid, details = doc["action"], doc["resource_id"], doc["details"]
    if action == Action.USER_ADD:
        people[rid] = _User(seq=seq, admin=details.get("admin") is True, password=doc["digest_after"])
    elif action == Action.USER_DISABLE and rid in people:
        people[rid].disabled = True
    elif action == Action.USER_SET_PASSWORD and rid in people:
        people[rid].password = doc["digest_after"]
    elif action in (Action.TOKEN_CREATE, Action.AUTH_LOGIN):
        tokens[rid] = _Token(seq, details.get("user"), doc["digest_after"], details.get("expires_at"))
        rehash = details.get("password_rehash")
        if rehash is not None and details.get("user") in people:
            people[details["user"]].password = rehash
    elif action == Action.TOKEN_REVOKE and rid in tokens:
        tokens[rid].revoked = True


def _apply_binding(doc: dict[str, Any], seq: int, bindings: dict[str, _Binding]) -> None:
    """Role bindings, keyed "project/user/role": granted directly, granted by an approval, revoked."""
    action, rid, details = doc["action"], doc["resource_id"], doc["details"]
    if action == Action.ROLE_GRANT and not details.get("pending"):
        bindings[rid] = _Binding(seq)
    elif action == Action.APPROVAL_APPROVE and details.get("kind") == "role.grant" and details.get("applied"):
        bindings[str(details["applied"]).removeprefix("role_binding:")] = _Binding(seq)
    elif action == Action.ROLE_REVOKE:
        bindings.pop(rid, None)


def _apply_factor(doc: dict[str, Any], seq: int, factors: dict[str, _Factor]) -> None:
    """TOTP factors, keyed by user name: enrolled (the sealed secret's digest), confirmed, removed."""
    action, name, details = doc["action"], doc["resource_id"], doc["details"]
    if action == Action.MFA_ENROLL:
        factors[name] = _Factor(seq, doc["digest_after"])
    elif action == Action.MFA_VERIFY and details.get("confirmed_enrollment") and name in factors:
        factors[name].confirmed = True
    elif action == Action.MFA_DISABLE:
        factors.pop(name, None)


def _apply_allowed(doc: dict[str, Any], seq: int, allowed: dict[str, _Allowed]) -> None:
    """The scanner's workspace allow-list, keyed by global: one line there lets every such pickle through."""
    if doc["action"] == Action.SCAN_ALLOW:
        allowed[doc["resource_id"]] = _Allowed(seq, str(doc["details"]["role"]))
    elif doc["action"] == Action.SCAN_DISALLOW:
        allowed.pop(doc["resource_id"], None)


def _found_allowed(conn: Connection) -> dict[str, dict[str, object]]:
    query = select(scan_allowlist.c.global_name, scan_allowlist.c.role)
    return {name: {"role": role} for name, role in conn.execute(query)}


def _compare_factors(conn: Connection, expected: dict[str, _Factor]) -> list[Problem]:
    query = select(users.c.name, mfa_factors.c.secret_sealed, mfa_factors.c.confirmed).join(
        users, users.c.id == mfa_factors.c.user_id
    )
    found: dict[str, dict[str, object]] = {
        name: {"secret": credential_digest(sealed), "confirmed": bool(confirmed)}
        for name, sealed, confirmed in conn.execute(query)
    }
    return _compare("TOTP factor of", found, expected)


def _compare_bindings(conn: Connection, expected: dict[str, _Binding]) -> list[Problem]:
    query = select(role_bindings.c.project, users.c.name, role_bindings.c.role).join(
        users, users.c.id == role_bindings.c.user_id
    )
    found: dict[str, dict[str, object]] = {f"{p}/{u}/{r}": {} for p, u, r in conn.execute(query)}
    return _compare("role binding", found, expected)


def _compare_users(conn: Connection, expected: dict[str, _User]) -> list[Problem]:
    found = {
        row["name"]: {
            "admin": bool(row["is_admin"]),
            "disabled": bool(row["disabled"]),
            "password": credential_digest(row["password_hash"]),
        }
        for row in conn.execute(select(users)).mappings()
    }
    return _compare("user", found, expected)


def _compare_tokens(conn: Connection, expected: dict[str, _Token]) -> list[Problem]:
    user_names = {row.id: row.name for row in conn.execute(select(users.c.id, users.c.name))}
    found = {
        row["id"]: {
            "user": user_names.get(row["user_id"]),
            "secret": credential_digest(row["secret_hash"]),
            "expires": row["expires_at"],
            "revoked": row["revoked_at"] is not None,
        }
        for row in conn.execute(select(api_tokens)).mappings()
    }
    return _compare("token", found, expected)


@dataclass
class LoggedRow:
    """A row as the log says it must be, by field name, and the event that last set it."""

    seq: int
    values: dict[str, object]


def compare_logged(
    kind: str, found: Mapping[str, Mapping[str, object]], expected: Mapping[str, LoggedRow]
) -> list[Problem]:
    """``compare_rows`` for rows replayed as ``LoggedRow``."""
    return compare_rows(kind, found, expected, lambda row, name: row.values.get(name))


class Replayed(Protocol):
    """A row as the log says it must be: the event that last set it, and its fields by name."""

    seq: int


def _compare(kind: str, found: Mapping[str, Mapping[str, object]], expected: Mapping[str, Any]) -> list[Problem]:
    return compare_rows(kind, found, expected, getattr)


def compare_rows(
    kind: str,
    found: Mapping[str, Mapping[str, object]],
    expected: Mapping[str, Replayed],
    field_of: Callable[[Any, str], object],
) -> list[Problem]:
    """Rows in the database against the rows the log says must be there, field by field."""
    problems: list[Problem] = []
    for key, fields in found.items():
        want = expected.get(key)
        if want is None:
            problems.append(Problem("state", f"{kind} {key!r} is in the database but no audit event created it"))
            continue
        for name, value in fields.items():
            if field_of(want, name) != value:
                message = f"{kind} {key!r}: {name} in the database differs from the audit log (seq {want.seq})"
                problems.append(Problem("state", message, want.seq))
    problems.extend(
        Problem("state", f"{kind} {key!r} (created at seq {want.seq}) is missing from the database", want.seq)
        for key, want in expected.items()
        if key not in found
    )
    return problems
