"""Reconciling the credential tables with the audit log.

The log cannot stop someone with database access from inserting an admin, minting a token, swapping a
password hash or un-revoking a token in the `users` and `api_tokens` tables. It can make them visible:
every credential change is an audit event carrying the SHA-256 of what was stored, so replaying the log
gives the tables as they must be, and `audit verify` reports every row that differs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Connection, select

from mlwarden.audit.verify import Problem
from mlwarden.domain.actions import Action
from mlwarden.service.users import credential_digest
from mlwarden.store.tables import api_tokens, audit_events, users

_REPLAYED = [
    Action.USER_ADD,
    Action.USER_DISABLE,
    Action.USER_SET_PASSWORD,
    Action.TOKEN_CREATE,
    Action.TOKEN_REVOKE,
    Action.AUTH_LOGIN,
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


def reconcile_credentials(conn: Connection) -> list[Problem]:
    expected_users, expected_tokens = _replay(conn)
    return _compare_users(conn, expected_users) + _compare_tokens(conn, expected_tokens)


def _replay(conn: Connection) -> tuple[dict[str, _User], dict[str, _Token]]:
    people: dict[str, _User] = {}
    tokens: dict[str, _Token] = {}
    query = (
        select(audit_events.c.seq, audit_events.c.body)
        .where(audit_events.c.action.in_([a.value for a in _REPLAYED]), audit_events.c.outcome == "ok")
        .order_by(audit_events.c.seq)
    )
    for seq, body in conn.execute(query):
        try:
            doc = orjson.loads(body)
            _apply(doc, int(seq), people, tokens)
        except (orjson.JSONDecodeError, TypeError, KeyError, AttributeError):
            continue  # a damaged event is reported by the log verification itself
    return people, tokens


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


def _compare(
    kind: str, found: Mapping[str, Mapping[str, object]], expected: Mapping[str, _User | _Token]
) -> list[Problem]:
    """Rows in the database against the rows the log says must be there, field by field."""
    problems: list[Problem] = []
    for key, fields in found.items():
        want = expected.get(key)
        if want is None:
            problems.append(Problem("state", f"{kind} {key!r} is in the database but no audit event created it"))
            continue
        for field, value in fields.items():
            if getattr(want, field) != value:
                message = f"{kind} {key!r}: {field} in the database differs from the audit log (seq {want.seq})"
                problems.append(Problem("state", message, want.seq))
    problems.extend(
        Problem("state", f"{kind} {key!r} (created at seq {want.seq}) is missing from the database", want.seq)
        for key, want in expected.items()
        if key not in found
    )
    return problems
