"""Creating a workspace (`mlwarden init`) and upgrading its schema (`mlwarden db upgrade`)."""

from __future__ import annotations

import getpass
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Connection, insert

from mlwarden.audit.keys import generate_signing_key, save_private_key
from mlwarden.domain.actions import Action
from mlwarden.domain.events import SYSTEM, DetailValue, Resource
from mlwarden.errors import AlreadyExists, SchemaMismatch, UsageError
from mlwarden.identity.passwords import validate_new_password
from mlwarden.service.assembly import build_context
from mlwarden.service.config import ENV_DATABASE_URL, WorkspaceConfig, WorkspacePaths, find_workspace, write_config
from mlwarden.service.door import Applied
from mlwarden.service.tokens import NewToken
from mlwarden.service.users import User, validate_user_name
from mlwarden.service.workspace import Workspace
from mlwarden.store import schema
from mlwarden.store.db import Database
from mlwarden.store.tables import workspace_meta


@dataclass(frozen=True)
class Initialized:
    workspace: Workspace  # acting as mlwarden itself; close it when done
    admin: User
    token: NewToken  # the admin's first API token, shown once


def init_workspace(
    directory: str | Path,
    *,
    db_url: str | None = None,
    admin: str = "admin",
    admin_password: str | None = None,
    checkpoint_every: int = 1000,
) -> Initialized:
    """Create DIR/.mlwarden: config, database, blob store, checkpoint key, first admin and token."""
    validate_user_name(admin)
    override = os.environ.get(ENV_DATABASE_URL)
    if db_url and override and override != db_url:
        raise UsageError(
            f"{ENV_DATABASE_URL} names another database than --db",
            hint=f"unset {ENV_DATABASE_URL}, or leave out --db to use it",
        )
    if admin_password is not None:
        validate_new_password(admin_password)
    paths = WorkspacePaths(Path(directory).expanduser().resolve())
    if paths.meta.exists():
        raise AlreadyExists(f"{paths.root} is already an mlwarden workspace")
    paths.root.mkdir(parents=True, exist_ok=True)
    try:
        return _create(paths, db_url, admin, admin_password, checkpoint_every)
    except BaseException:
        shutil.rmtree(paths.meta, ignore_errors=True)
        raise


def _create(
    paths: WorkspacePaths, db_url: str | None, admin: str, password: str | None, checkpoint_every: int
) -> Initialized:
    paths.meta.mkdir(mode=0o700)
    workspace_id = uuid.uuid4().hex
    origin = f"mlwarden.local/{workspace_id}"
    config = WorkspaceConfig(
        workspace_id=workspace_id,
        origin=origin,
        key_name=origin,  # C2SP signed-note: the key name should be the log's origin
        database_url=db_url or os.environ.get(ENV_DATABASE_URL, ""),
        checkpoint_every=checkpoint_every,
    )
    write_config(paths, config)
    key_path = paths.resolve(config.key_file)
    key_path.parent.mkdir(mode=0o700)
    save_private_key(generate_signing_key(), key_path)
    paths.resolve(config.blob_dir).mkdir()
    ctx = build_context(paths, SYSTEM, new=True)
    _fresh_schema(ctx.db)
    vkey = ctx.verifier.to_vkey()

    def apply(conn: Connection) -> Applied[None]:
        rows = [{"key": "workspace_id", "value": workspace_id}, {"key": "checkpoint_vkey", "value": vkey}]
        conn.execute(insert(workspace_meta), rows)
        details: dict[str, DetailValue] = {
            "workspace_id": workspace_id,
            "origin": config.origin,
            "checkpoint_vkey": vkey,
        }
        details["schema"] = schema.head_revision()
        return Applied(None, details=details)

    ctx.door.run(SYSTEM, Action.WORKSPACE_INIT, Resource("workspace", workspace_id), apply)
    workspace = Workspace(ctx)
    user = workspace.users.add(admin, admin=True, password=password)
    token = workspace.tokens.create("init", user=admin)
    workspace.audit.checkpoint()
    return Initialized(workspace=workspace, admin=user, token=token)


def _fresh_schema(db: Database) -> None:
    if schema.schema_state(db).current is not None:
        raise AlreadyExists(
            f"the database {db.engine.url.render_as_string(hide_password=True)} already holds an mlwarden workspace",
            hint="use an empty database, or open the existing workspace",
        )
    schema.upgrade(db)


def upgrade_workspace(path: str | Path | None = None) -> schema.SchemaState:
    """Migrate the workspace's database to this version's schema, auditing it in the same transaction."""
    paths = find_workspace(path)
    ctx = build_context(paths, SYSTEM)
    try:
        if schema.schema_state(ctx.db).current is None:
            # An empty database under an existing workspace is the wrong one, or a lost one: starting a
            # fresh log there would quietly replace the workspace's history.
            raise SchemaMismatch(
                "the workspace's database has no mlwarden schema: it is not this workspace's database, or it was lost",
                hint="check database_url in .mlwarden/config.toml and MLWARDEN_DATABASE_URL; restore from a backup, "
                "or run `mlwarden init` in a new folder",
            )

        def record(conn: Connection, before: schema.SchemaState) -> None:
            details: dict[str, DetailValue] = {"from": before.current, "to": before.head, "os_user": getpass.getuser()}
            resource = Resource("schema", before.head)
            ctx.door.record_in(conn, SYSTEM, Action.SCHEMA_UPGRADE, resource, Applied(None, details=details))

        return schema.upgrade(ctx.db, then=record)
    finally:
        ctx.db.dispose()
