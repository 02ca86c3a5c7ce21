"""init, login, logout, whoami, and the token and user groups."""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import Annotated

import typer

from mlwarden.cli import credentials
from mlwarden.cli.common import (
    GLOBALS,
    JsonOption,
    open_cli_workspace,
    output,
    parse_duration,
    read_secret_from_stdin,
)
from mlwarden.errors import AuthenticationError, MlwardenError, UsageError
from mlwarden.service.config import find_workspace, load_config
from mlwarden.service.init import init_workspace
from mlwarden.service.workspace import open_workspace

token_app = typer.Typer(help="Create, list and revoke API tokens.", no_args_is_help=True)
user_app = typer.Typer(help="Add, list and disable users.", no_args_is_help=True)

LOGIN_TOKEN_LABEL = "cli-login"
DEFAULT_LOGIN_LIFETIME = "30d"
TotpOption = Annotated[
    str | None, typer.Option("--totp", help="A fresh TOTP code (step-up), when the change needs one.")
]
PasswordStdin = Annotated[bool, typer.Option("--password-stdin", help="Read the password from standard input.")]


def init(
    directory: Annotated[Path, typer.Argument(help="Folder to make a workspace (created if missing).")] = Path("."),
    db: Annotated[str | None, typer.Option("--db", help="SQLAlchemy URL of the metadata database.")] = None,
    admin: Annotated[str, typer.Option("--admin", help="Name of the first admin user.")] = "admin",
    password_stdin: PasswordStdin = False,
    json_mode: JsonOption = False,
) -> None:
    """Create a workspace: config, database, blob store, signing key and the first admin."""
    out = output(json_mode)
    password = read_secret_from_stdin("password") if password_stdin else None
    result = init_workspace(directory, db_url=db, admin=admin, admin_password=password)
    ws = result.workspace
    try:
        saved = credentials.store_token(ws.config.workspace_id, admin, result.token.plaintext, ws.root)
        vkey = ws.checkpoint_vkey
    finally:
        ws.close()
    if json_mode:
        out.emit(
            {
                "workspace": ws.root,
                "workspace_id": ws.config.workspace_id,
                "admin": admin,
                "token": result.token.plaintext,
                "checkpoint_vkey": vkey,
                "credentials": saved,
            }
        )
        return
    out.line(f"Initialized mlwarden workspace in {ws.root / '.mlwarden'}")
    out.line(f"Admin user: {admin}. API token (shown once, saved to {saved}):")
    out.line(f"  {result.token.plaintext}")
    out.line(f"Checkpoint verifier key (give it to your witnesses): {vkey}")


def login(
    user: Annotated[str | None, typer.Option("--user", "-u", help="User name (prompted if missing).")] = None,
    password_stdin: PasswordStdin = False,
    token_stdin: Annotated[bool, typer.Option("--token-stdin", help="Store an existing API token.")] = False,
    expires_in: Annotated[
        str | None, typer.Option("--expires-in", help="Lifetime of the login token (default 30d).")
    ] = None,
    json_mode: JsonOption = False,
) -> None:
    """Log in with a password (or store an API token) for this workspace."""
    out = output(json_mode)
    paths = find_workspace(GLOBALS.workspace)
    workspace_id = load_config(paths).workspace_id
    if token_stdin:
        if expires_in is not None:
            raise UsageError("--expires-in applies to a password login; a stored token keeps its own expiry")
        token = read_secret_from_stdin("token")
        with open_workspace(paths.root, token=token, client="cli") as ws:
            name = ws.whoami().name
    else:
        name = user or typer.prompt("User", err=True)
        password = read_secret_from_stdin("password") if password_stdin else getpass.getpass("Password: ")
        with open_workspace(paths.root, token="", client="cli") as ws:
            lifetime = parse_duration(expires_in or DEFAULT_LOGIN_LIFETIME)
            token = ws.login(name, password, token_name=LOGIN_TOKEN_LABEL, expires_in=lifetime).plaintext
    previous = credentials.stored_token(workspace_id)
    saved = credentials.store_token(workspace_id, name, token, paths.root)
    if previous is not None and previous != token:
        _revoke_quietly(paths.root, previous)
    if json_mode:
        out.emit({"user": name, "credentials": saved})
    else:
        out.line(f"Logged in as {name}; token saved to {saved}")


def _revoke_quietly(root: Path, token: str) -> None:
    """Revoke the `mlwarden login` token a new login replaces (never a token made another way, which may
    be in use elsewhere); one that no longer works needs nothing."""
    try:
        with open_workspace(root, token=token, client="cli") as ws:
            token_id = ws.whoami().token_id
            mine = [t for t in ws.tokens.list() if t.id == token_id and t.name == LOGIN_TOKEN_LABEL and t.active]
            for info in mine:
                ws.tokens.revoke(info.id)
    except MlwardenError:
        pass


def logout(json_mode: JsonOption = False) -> None:
    """Revoke the token `mlwarden login` stored for this workspace, and forget it."""
    out = output(json_mode)
    paths = find_workspace(GLOBALS.workspace)
    workspace_id = load_config(paths).workspace_id
    stored = credentials.stored_token(workspace_id)
    if stored is None:
        raise UsageError("no stored login for this workspace", hint="MLWARDEN_TOKEN is never touched by logout")
    user, revoked = None, None
    try:
        with open_workspace(paths.root, token=stored, client="cli") as ws:
            actor = ws.whoami()
            user, revoked = actor.name, actor.token_id
            if revoked is not None:
                ws.tokens.revoke(revoked)
    except AuthenticationError:
        pass  # revoked or expired already: forgetting it is all that is left to do
    forgotten = credentials.forget_token(workspace_id)
    if json_mode:
        out.emit({"user": user, "revoked": revoked, "forgotten": forgotten})
    else:
        out.line(f"Logged out {user}" if user else "Forgot a stored login that no longer worked")


def whoami(json_mode: JsonOption = False) -> None:
    """Show the user this command runs as."""
    out = output(json_mode)
    with open_cli_workspace() as ws:
        actor = ws.whoami()
    if not actor.authenticated:
        raise AuthenticationError("not logged in")
    if json_mode:
        out.emit(
            {
                "user": actor.name,
                "user_id": actor.user_id,
                "admin": actor.is_admin,
                "auth_method": actor.auth_method,
                "token_id": actor.token_id,
            }
        )
    else:
        out.line(f"{actor.name}{' (admin)' if actor.is_admin else ''} via {actor.auth_method} {actor.token_id or ''}")


@token_app.command("create")
def token_create(
    name: Annotated[str, typer.Option("--name", help="A label for the token.")] = "cli",
    user: Annotated[str | None, typer.Option("--user", help="For another user (admins only).")] = None,
    expires_in: Annotated[str | None, typer.Option("--expires-in", help="Lifetime, e.g. 12h, 30d.")] = None,
    totp: TotpOption = None,
    json_mode: JsonOption = False,
) -> None:
    """Create an API token; it is printed once and stored only as a hash (one for another admin: --totp)."""
    out = output(json_mode)
    with open_cli_workspace() as ws:
        new = ws.tokens.create(name, user=user, expires_in=parse_duration(expires_in), totp=totp)
    if json_mode:
        out.emit({"token": new.plaintext, **out_token(new.info)})
        return
    out.line(f"Token {new.info.id} for {new.info.user} (shown once):")
    out.line(f"  {new.plaintext}")


def out_token(info: object) -> dict[str, object]:
    from mlwarden.cli.render import jsonable

    data = jsonable(info)
    assert isinstance(data, dict)  # noqa: S101 - TokenInfo is a dataclass
    data["active"] = getattr(info, "active", None)
    return data


@token_app.command("list")
def token_list(
    user: Annotated[str | None, typer.Option("--user", help="Another user's tokens (admins only).")] = None,
    json_mode: JsonOption = False,
) -> None:
    """List API tokens (never their secrets)."""
    out = output(json_mode)
    with open_cli_workspace() as ws:
        tokens = ws.tokens.list(user)
    if json_mode:
        out.emit([out_token(t) for t in tokens])
        return
    rows = [
        (t.id, t.user, t.name, t.created_at, t.expires_at, t.revoked_at, "yes" if t.active else "no") for t in tokens
    ]
    out.table(["id", "user", "name", "created", "expires", "revoked", "active"], rows)


@token_app.command("revoke")
def token_revoke(token_id: Annotated[str, typer.Argument(help="The token id.")], json_mode: JsonOption = False) -> None:
    """Revoke an API token at once."""
    out = output(json_mode)
    with open_cli_workspace() as ws:
        info = ws.tokens.revoke(token_id)
    if json_mode:
        out.emit(out_token(info))
    else:
        out.line(f"Revoked token {info.id} of {info.user}")


@user_app.command("add")
def user_add(
    name: Annotated[str, typer.Argument(help="The new user's name.")],
    admin: Annotated[bool, typer.Option("--admin", help="Make a workspace admin (needs --totp).")] = False,
    password_stdin: PasswordStdin = False,
    totp: TotpOption = None,
    json_mode: JsonOption = False,
) -> None:
    """Add a user (admins only; adding an admin needs a TOTP step-up)."""
    out = output(json_mode)
    password = read_secret_from_stdin("password") if password_stdin else None
    with open_cli_workspace() as ws:
        user = ws.users.add(name, admin=admin, password=password, totp=totp)
    if json_mode:
        out.emit(user)
    else:
        out.line(f"Added user {user.name}{' (admin)' if user.is_admin else ''}")


@user_app.command("list")
def user_list(json_mode: JsonOption = False) -> None:
    """List users."""
    out = output(json_mode)
    with open_cli_workspace() as ws:
        users = ws.users.list()
    if json_mode:
        out.emit(users)
        return
    rows = [(u.name, "yes" if u.is_admin else "", "yes" if u.disabled else "", u.created_at) for u in users]
    out.table(["name", "admin", "disabled", "created"], rows)


@user_app.command("disable")
def user_disable(
    name: Annotated[str, typer.Argument(help="The user to disable.")], json_mode: JsonOption = False
) -> None:
    """Disable a user: their tokens and password stop working at once."""
    out = output(json_mode)
    with open_cli_workspace() as ws:
        user = ws.users.disable(name)
    if json_mode:
        out.emit(user)
    else:
        out.line(f"Disabled user {user.name}")


@user_app.command("passwd")
def user_passwd(
    name: Annotated[str, typer.Argument(help="Whose password to set.")],
    password_stdin: PasswordStdin = False,
    totp: TotpOption = None,
    json_mode: JsonOption = False,
) -> None:
    """Set a user's password: anyone's as an admin, or your own with your current password.

    With --password-stdin, standard input holds the new password; changing your own as a non-admin, it
    holds the current password on the first line and the new one on the second.
    """
    out = output(json_mode)
    with open_cli_workspace() as ws:
        me = ws.whoami()
        own = me.name == name and not me.is_admin
        if password_stdin:
            current = read_secret_from_stdin("current password") if own else None
            password = read_secret_from_stdin("password")
        else:
            current = getpass.getpass("Current password: ") if own else None
            password = getpass.getpass("New password: ")
        ws.users.set_password(name, password, current=current, totp=totp)
    if json_mode:
        out.emit({"user": name, "password_set": True})
    else:
        out.line(f"Password set for {name}")
