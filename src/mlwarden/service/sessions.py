"""Password login: a user proves who they are and receives a new API token."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Connection, update

from mlwarden.domain.actions import Action
from mlwarden.domain.events import Actor, AuthMethod
from mlwarden.errors import AuthenticationError, NotFound
from mlwarden.identity.passwords import check_password
from mlwarden.service.context import ServiceContext
from mlwarden.service.door import Applied
from mlwarden.service.tokens import NewToken, insert_token, new_token_applied, token_resource
from mlwarden.service.users import credential_digest, find_user, password_hash_of
from mlwarden.store.tables import users

_FAILED = "wrong user name or password"


# Checked against when there is no real hash, so that the answer takes the same argon2 work (a test keeps
# its parameters equal to the ones in use). Matching it never logs anyone in.
DECOY_HASH = "$argon2id$v=19$m=65536,t=3,p=4$ETx42VnfIX2tvoynUqHX2Q$CXDnT/ckB3mqYJfXipAVcDLzvgDFqGSWTGnxnMTCcbM"


def login(
    ctx: ServiceContext,
    name: str,
    password: str,
    *,
    token_name: str = "login",
    expires_in: timedelta | None = None,
) -> NewToken:
    """Check the password (argon2id) and issue a token; a failure is audited as a denied `auth.login`."""
    claimed = Actor(name=name, auth_method=AuthMethod.PASSWORD, client=ctx.actor.client)
    with ctx.db.read() as conn:
        try:
            user = find_user(conn, name)
            stored = password_hash_of(conn, user.id)
        except NotFound:
            user, stored = None, None
    # A user without a password (or no such user) costs the same argon2 work as a wrong password, so the
    # answer's timing does not tell which names exist.
    check = check_password(stored if stored is not None else DECOY_HASH, password)
    if user is None or user.disabled or stored is None or not check.ok:
        reason = "user is disabled" if user is not None and user.disabled else _FAILED
        ctx.door.record_denial(claimed, Action.AUTH_LOGIN, token_resource("(new)"), reason)
        raise AuthenticationError(_FAILED, hint="check the name and password, or ask an admin to reset it")
    actor = Actor(
        name=user.name,
        auth_method=AuthMethod.PASSWORD,
        user_id=user.id,
        is_admin=user.is_admin,
        client=claimed.client,
    )

    def apply(conn: Connection) -> Applied[NewToken]:
        applied = new_token_applied(insert_token(conn, user, token_name, expires_in), user.id)
        if check.new_hash is not None:  # argon2 parameters changed since this hash was made
            conn.execute(update(users).where(users.c.id == user.id).values(password_hash=check.new_hash))
            applied.details["password_rehash"] = credential_digest(check.new_hash)
        return applied

    return ctx.door.run(actor, Action.AUTH_LOGIN, token_resource("(new)", user.id), apply)
