"""API tokens: create (shown once), list, revoke; and turning a presented token into an actor."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import Connection, insert, select, update

from mlwarden.audit.clock import format_ts, utcnow
from mlwarden.domain.actions import Action
from mlwarden.domain.events import ANONYMOUS, Actor, AuthMethod, Resource, TokenId, UserId
from mlwarden.errors import AuthenticationError, NotFound, UsageError
from mlwarden.identity.tokens import issue_token, parse_token, secret_matches
from mlwarden.service.context import ServiceContext
from mlwarden.service.door import Applied, Door, mutation
from mlwarden.service.users import StepUp, User, admin_attribute, credential_digest, find_user, find_user_by_id
from mlwarden.store.tables import api_tokens

MAX_TOKEN_NAME = 128


@dataclass(frozen=True)
class TokenInfo:
    id: TokenId
    user: str
    name: str
    created_at: str
    expires_at: str | None
    revoked_at: str | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > format_ts(utcnow()))


@dataclass(frozen=True)
class NewToken:
    """A token just created. ``plaintext`` is shown once and stored nowhere."""

    info: TokenInfo
    plaintext: str = field(repr=False)
    credential_digest: str | None = field(default=None, repr=False)


def insert_token(conn: Connection, user: User, name: str, expires_in: timedelta | None) -> NewToken:
    """Create a token row for ``user`` (inside the caller's door transaction)."""
    if not name or len(name) > MAX_TOKEN_NAME:
        raise UsageError(f"a token name must have 1-{MAX_TOKEN_NAME} characters")
    if expires_in is not None and expires_in <= timedelta(0):
        raise UsageError("a token's lifetime must be positive")
    issued = issue_token()
    while conn.execute(select(api_tokens.c.id).where(api_tokens.c.id == issued.token_id)).first() is not None:
        issued = issue_token()  # a 48-bit id collides about once in 16 million million tokens
    now = utcnow()
    row = {
        "id": issued.token_id,
        "user_id": user.id,
        "name": name,
        "secret_hash": issued.secret_hash,
        "created_at": format_ts(now),
        "expires_at": format_ts(now + expires_in) if expires_in is not None else None,
        "revoked_at": None,
    }
    conn.execute(insert(api_tokens).values(**row))
    digest = credential_digest(issued.secret_hash)
    return NewToken(info=_info(row, user.name), plaintext=issued.plaintext, credential_digest=digest)


def _info(row: object, user_name: str) -> TokenInfo:
    m = row
    return TokenInfo(
        id=TokenId(m["id"]),  # type: ignore[index]
        user=user_name,
        name=m["name"],  # type: ignore[index]
        created_at=m["created_at"],  # type: ignore[index]
        expires_at=m["expires_at"],  # type: ignore[index]
        revoked_at=m["revoked_at"],  # type: ignore[index]
    )


def token_resource(token_id: str, owner: UserId | None = None) -> Resource:
    return Resource(type="token", id=token_id, owner=owner)


def new_token_applied(new: NewToken, owner: UserId) -> Applied[NewToken]:
    details: dict[str, str | int | bool | None] = {"user": new.info.user, "expires_at": new.info.expires_at}
    resource = token_resource(new.info.id, owner)
    return Applied(new, resource=resource, digest_after=new.credential_digest, details=details)


class TokenService:
    def __init__(self, ctx: ServiceContext, step_up: StepUp) -> None:
        self._ctx = ctx
        self._step_up = step_up

    def _owner(self, user: str | None) -> str:
        if user is not None:
            return user
        if self._ctx.actor.user_id is None:
            raise AuthenticationError("no user is logged in")
        return self._ctx.actor.name

    @mutation
    def create(
        self,
        name: str = "cli",
        *,
        user: str | None = None,
        expires_in: timedelta | None = None,
        totp: str | None = None,
    ) -> NewToken:
        """Create a token (shown once). One for another admin needs the caller's TOTP step-up."""
        owner_name = self._owner(user)
        self._step_up(totp, Action.TOKEN_CREATE, token_resource(f"(new for {owner_name})"))

        def target(conn: Connection) -> Resource:
            owner = find_user(conn, owner_name)
            return Resource("token", f"(new for {owner_name})", owner=owner.id, attributes=admin_attribute(owner))

        def apply(conn: Connection) -> Applied[NewToken]:
            owner = find_user(conn, owner_name)
            if owner.disabled:
                raise UsageError(f"user {owner_name!r} is disabled")
            return new_token_applied(insert_token(conn, owner, name, expires_in), owner.id)

        return self._ctx.door.run(self._ctx.actor, Action.TOKEN_CREATE, target, apply)

    def list(self, user: str | None = None) -> list[TokenInfo]:
        owner_name = self._owner(user)

        def target(conn: Connection) -> Resource:
            return token_resource("*", find_user(conn, owner_name).id)

        def fetch(conn: Connection) -> list[TokenInfo]:
            owner = find_user(conn, owner_name)
            rows = conn.execute(
                select(api_tokens).where(api_tokens.c.user_id == owner.id).order_by(api_tokens.c.created_at)
            ).mappings()
            return [_info(row, owner.name) for row in rows]

        return self._ctx.door.read(self._ctx.actor, Action.TOKEN_LIST, target, fetch)

    @mutation
    def revoke(self, token_id: str) -> TokenInfo:
        def target(conn: Connection) -> Resource:
            owner = conn.execute(select(api_tokens.c.user_id).where(api_tokens.c.id == token_id)).scalar()
            if owner is None:
                raise NotFound(f"no token with id {token_id!r}", hint="see `mlwarden token list`")
            return token_resource(token_id, UserId(owner))

        def apply(conn: Connection) -> Applied[TokenInfo]:
            row = conn.execute(select(api_tokens).where(api_tokens.c.id == token_id)).mappings().one()
            if row["revoked_at"] is not None:
                raise UsageError(f"token {token_id} was revoked already")
            conn.execute(update(api_tokens).where(api_tokens.c.id == token_id).values(revoked_at=format_ts(utcnow())))
            fresh = conn.execute(select(api_tokens).where(api_tokens.c.id == token_id)).mappings().one()
            return Applied(_info(fresh, find_user_by_id(conn, row["user_id"]).name))

        return self._ctx.door.run(self._ctx.actor, Action.TOKEN_REVOKE, target, apply)


def authenticate(door: Door, plaintext: str, *, client: str, request_id: str | None = None) -> Actor:
    """The actor a presented token stands for; a bad token is audited as a denied `auth.token`."""
    try:
        parsed = parse_token(plaintext.strip())
    except AuthenticationError as exc:
        _deny(door, "(malformed)", str(exc), client, request_id)
        raise
    with door.db.read() as conn:
        row = conn.execute(select(api_tokens).where(api_tokens.c.id == parsed.token_id)).mappings().first()
        reason = _token_problem(row, parsed.secret)
        user = find_user_by_id(conn, row["user_id"]) if row is not None and reason is None else None
    if user is not None and user.disabled:
        reason = "user is disabled"
    if reason is not None or user is None:
        _deny(door, parsed.token_id, reason or "unknown token", client, request_id)
        raise AuthenticationError(f"token rejected: {reason}")
    return Actor(
        name=user.name,
        auth_method=AuthMethod.TOKEN,
        user_id=user.id,
        is_admin=user.is_admin,
        token_id=parsed.token_id,
        client=client,
        request_id=request_id,
    )


def _token_problem(row: object, secret: str) -> str | None:
    if row is None:
        return "unknown token"
    m = row
    if not secret_matches(secret, m["secret_hash"]):  # type: ignore[index]
        return "wrong secret"
    if m["revoked_at"] is not None:  # type: ignore[index]
        return "token was revoked"
    expires = m["expires_at"]  # type: ignore[index]
    if expires is not None and expires <= format_ts(utcnow()):
        return "token has expired"
    return None


def _deny(door: Door, token_id: str, reason: str, client: str, request_id: str | None) -> None:
    actor = Actor(name=ANONYMOUS.name, auth_method=AuthMethod.TOKEN, client=client, request_id=request_id)
    door.record_denial(actor, Action.AUTH_TOKEN, token_resource(token_id), reason)
