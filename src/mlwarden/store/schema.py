"""Schema versions: upgrade with Alembic, and refuse a database this code does not understand."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from mlwarden.errors import SchemaMismatch
from mlwarden.store.db import Database

_MIGRATIONS = Path(__file__).parent / "migrations"


@dataclass(frozen=True)
class SchemaState:
    current: str | None
    head: str

    @property
    def up_to_date(self) -> bool:
        return self.current == self.head


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None, "the migrations folder has a single head"  # noqa: S101 - packaging invariant
    return head


def schema_state(db: Database) -> SchemaState:
    with db.read() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    return SchemaState(current=current, head=head_revision())


def upgrade(db: Database) -> SchemaState:
    """Bring the schema to this code's head revision (no-op when already there)."""
    state = schema_state(db)
    _refuse_unknown(state)
    if not state.up_to_date:
        config = _config()
        with db.write() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "head")
    return schema_state(db)


def require_current(db: Database) -> None:
    """Raise unless the database schema is exactly the one this code was written for."""
    state = schema_state(db)
    _refuse_unknown(state)
    if state.current is None:
        raise SchemaMismatch(
            "the metadata database has no mlwarden schema",
            hint="run `mlwarden db upgrade`, or `mlwarden init` for a new workspace",
        )
    if not state.up_to_date:
        raise SchemaMismatch(
            f"the metadata database schema is at revision {state.current}, this mlwarden needs {state.head}",
            hint="back up the database, then run `mlwarden db upgrade`",
        )


def _refuse_unknown(state: SchemaState) -> None:
    if state.current is None:
        return
    known = {rev.revision for rev in ScriptDirectory.from_config(_config()).walk_revisions()}
    if state.current not in known:
        raise SchemaMismatch(
            f"the metadata database schema (revision {state.current}) is newer than this mlwarden "
            f"(which knows up to {state.head})",
            hint="upgrade mlwarden to the version that wrote this workspace; do not write to it with this one",
        )
