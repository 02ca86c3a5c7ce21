"""Users: add, list, disable, set a password."""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Connection, insert, select, update

from mlwarden.audit.clock import format_ts, utcnow
from mlwarden.domain.actions import Action
from mlwarden.domain.events import Resource, UserId
from mlwarden.errors import AlreadyExists, AuthenticationError, NotFound, UsageError
from mlwarden.identity.passwords import check_password, hash_password, validate_new_password
from mlwarden.service.context import ServiceContext
from mlwarden.service.door import Applied, mutation
from mlwarden.store.tables import users

_NAME_RE = re.compile(r"[a-z][a-z0-9_.-]{0,63}", re.ASCII)


@dataclass(frozen=True)
class User:
    id: UserId
    name: str
    is_admin: bool
    disabled: bool
    has_password: bool
    created_at: str


def validate_user_name(name: str, what: str = "user name") -> str:
    """Names of users and projects: short, lowercase, safe in paths, URLs and logs."""
    if not _NAME_RE.fullmatch(name):
        raise UsageError(
            f"invalid {what} {name!r}",
            hint="use 1-64 characters: a lowercase letter, then lowercase letters, digits, '_', '.' or '-'",
        )
    return name


def find_user(conn: Connection, name: str) -> User:
    row = conn.execute(select(users).where(users.c.name == name)).mappings().first()
    if row is None:
        raise NotFound(f"no user named {name!r}", hint="see `mlwarden user list`")
    return _user(row)


def find_user_by_id(conn: Connection, user_id: str) -> User:
    row = conn.execute(select(users).where(users.c.id == user_id)).mappings().first()
    if row is None:
        raise NotFound(f"no user with id {user_id!r}")
    return _user(row)


def password_hash_of(conn: Connection, user_id: str) -> str | None:
    return conn.execute(select(users.c.password_hash).where(users.c.id == user_id)).scalar_one_or_none()


def _user(row: object) -> User:
    m = row  # a RowMapping
    return User(
        id=UserId(m["id"]),  # type: ignore[index]
        name=m["name"],  # type: ignore[index]
        is_admin=bool(m["is_admin"]),  # type: ignore[index]
        disabled=bool(m["disabled"]),  # type: ignore[index]
        has_password=m["password_hash"] is not None,  # type: ignore[index]
        created_at=m["created_at"],  # type: ignore[index]
    )


def credential_digest(stored: str | None) -> str | None:
    """What the audit log records of a stored credential (a password or token hash): its SHA-256.

    It lets `audit verify` notice a credential swapped in the database behind the log's back, and
    reveals nothing: the stored hashes are salted or of 256-bit secrets, and this hashes them again.
    """
    return None if stored is None else "sha256:" + hashlib.sha256(stored.encode("utf-8")).hexdigest()


StepUp = Callable[[str | None, Action, Resource], None]


def admin_attribute(user: User) -> tuple[tuple[str, str], ...]:
    """Marks a resource that belongs to an admin: taking it over is sensitive (a step-up)."""
    return (("admin", "true"),) if user.is_admin else ()


def user_resource(name: str) -> Resource:
    return Resource(type="user", id=name)


class UserService:
    def __init__(self, ctx: ServiceContext, step_up: StepUp) -> None:
        self._ctx = ctx
        self._step_up = step_up

    @mutation
    def add(self, name: str, *, admin: bool = False, password: str | None = None, totp: str | None = None) -> User:
        """Add a user. Adding an admin is sensitive: it needs the caller's TOTP step-up (``totp``)."""
        validate_user_name(name)
        if password is not None:
            validate_new_password(password)
        resource = Resource("user", name, attributes=(("admin", "true"),) if admin else ())
        if admin:
            self._step_up(totp, Action.USER_ADD, resource)

        def apply(conn: Connection) -> Applied[User]:
            if conn.execute(select(users.c.id).where(users.c.name == name)).first() is not None:
                raise AlreadyExists(f"user {name!r} exists already")
            # Hashed only once authorized: a denied caller must not make the server spend 64 MiB.
            password_hash = hash_password(password) if password is not None else None
            user_id = UserId("usr_" + secrets.token_hex(8))
            conn.execute(
                insert(users).values(
                    id=user_id,
                    name=name,
                    is_admin=admin,
                    disabled=False,
                    password_hash=password_hash,
                    created_at=format_ts(utcnow()),
                )
            )
            return Applied(
                find_user(conn, name),
                digest_after=credential_digest(password_hash),
                details={"admin": admin, "password": password is not None},
            )

        return self._ctx.door.run(self._ctx.actor, Action.USER_ADD, resource, apply)

    def list(self) -> list[User]:
        def fetch(conn: Connection) -> list[User]:
            return [_user(row) for row in conn.execute(select(users).order_by(users.c.name)).mappings()]

        return self._ctx.door.read(self._ctx.actor, Action.USER_LIST, Resource("user", "*"), fetch)

    @mutation
    def disable(self, name: str) -> User:
        def apply(conn: Connection) -> Applied[User]:
            user = find_user(conn, name)
            if user.disabled:
                raise UsageError(f"user {name!r} is disabled already")
            if user.id == self._ctx.actor.user_id:
                raise UsageError("you cannot disable yourself", hint="ask another admin")
            conn.execute(update(users).where(users.c.id == user.id).values(disabled=True))
            return Applied(find_user(conn, name))

        return self._ctx.door.run(self._ctx.actor, Action.USER_DISABLE, user_resource(name), apply)

    @mutation
    def set_password(self, name: str, password: str, *, current: str | None = None, totp: str | None = None) -> None:
        """Set a password. Changing your own (as a non-admin) needs the current one: a stolen token
        must not be enough to take over the password too. Setting another admin's needs a step-up."""
        validate_new_password(password)
        self._require_current_password(name, current)
        self._step_up(totp, Action.USER_SET_PASSWORD, Resource("user", name))

        def target(conn: Connection) -> Resource:
            user = find_user(conn, name)
            return Resource("user", name, owner=user.id, attributes=admin_attribute(user))

        def apply(conn: Connection) -> Applied[None]:
            new_hash = hash_password(password)
            conn.execute(update(users).where(users.c.name == name).values(password_hash=new_hash))
            return Applied(None, digest_after=credential_digest(new_hash))

        self._ctx.door.run(self._ctx.actor, Action.USER_SET_PASSWORD, target, apply)

    def _require_current_password(self, name: str, current: str | None) -> None:
        actor = self._ctx.actor
        if actor.is_admin or actor.user_id is None:
            return  # admins reset passwords; the door turns away the unauthenticated
        with self._ctx.db.read() as conn:
            try:
                user = find_user(conn, name)
            except NotFound:
                return  # the door denies it, without telling whether the user exists
            stored = password_hash_of(conn, user.id)
        if user.id != actor.user_id or stored is None:
            return
        if current is None or not check_password(stored, current).ok:
            reason = "the current password was not given or is wrong"
            self._ctx.door.record_denial(actor, Action.USER_SET_PASSWORD, user_resource(name), reason)
            raise AuthenticationError(reason, hint="give your current password, or ask an admin to reset it")
