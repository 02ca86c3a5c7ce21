"""Schema versions: upgrade with Alembic, and refuse a database this code does not understand."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, inspect, text

from mlwarden.errors import SchemaMismatch
from mlwarden.store.db import Database

if TYPE_CHECKING:
    from alembic.config import Config

_MIGRATIONS = Path(__file__).parent / "migrations"
# The newest migration and every revision this code knows. Opening a workspace checks the database
# against these without importing Alembic (a quarter second per command); a test keeps them equal to
# what the migrations folder says.
HEAD = "0009"
KNOWN_REVISIONS = frozenset({"0001", "0002", "0003", "0004", "0005", "0006", "0007", "0008", "0009"})


@dataclass(frozen=True)
class SchemaState:
    current: str | None
    head: str

    @property
    def up_to_date(self) -> bool:
        return self.current == self.head


def _config() -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    return config


def head_revision() -> str:
    return HEAD


def migration_revisions() -> tuple[str | None, set[str]]:
    """(head, all revisions) as the migrations folder has them (imports Alembic)."""
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory.from_config(_config())
    return scripts.get_current_head(), {rev.revision for rev in scripts.walk_revisions()}


def schema_state(db: Database) -> SchemaState:
    with db.read() as conn:
        current = None
        if inspect(conn).has_table("alembic_version"):
            current = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    return SchemaState(current=current, head=HEAD)


def upgrade(db: Database, then: Callable[[Connection, SchemaState], None] | None = None) -> SchemaState:
    """Bring the schema to this code's head revision (no-op when already there).

    ``then(conn, before)`` runs in the migration's own transaction once the new schema is in place, so
    the record of the upgrade commits or rolls back with it.
    """
    state = schema_state(db)
    _refuse_unknown(state)
    if not state.up_to_date:
        from alembic import command

        config = _config()
        with db.write() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "head")
            if then is not None:
                then(conn, state)
    return schema_state(db)


def require_current(db: Database) -> None:
    """Raise unless the database schema is exactly the one this code was written for."""
    state = schema_state(db)
    _refuse_unknown(state)
    if state.current is None:
        raise SchemaMismatch(
            "the metadata database has no mlwarden schema",
            hint="check database_url in .mlwarden/config.toml and MLWARDEN_DATABASE_URL (a wrong or lost database?)",
        )
    if not state.up_to_date:
        raise SchemaMismatch(
            f"the metadata database schema is at revision {state.current}, this mlwarden needs {state.head}",
            hint="back up the database, then run `mlwarden db upgrade`",
        )


def _refuse_unknown(state: SchemaState) -> None:
    if state.current is None:
        return
    if state.current not in KNOWN_REVISIONS:
        raise SchemaMismatch(
            f"the metadata database schema (revision {state.current}) is newer than this mlwarden "
            f"(which knows up to {state.head})",
            hint="upgrade mlwarden to the version that wrote this workspace; do not write to it with this one",
        )
