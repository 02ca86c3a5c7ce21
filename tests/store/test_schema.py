"""Schema management: migrations match the table definitions; unknown or old schemas are refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

from mlwarden.errors import SchemaMismatch
from mlwarden.service.init import upgrade_workspace
from mlwarden.service.workspace import open_workspace
from mlwarden.store import schema
from mlwarden.store.db import Database
from mlwarden.store.tables import metadata
from tests.conftest import Env


def test_migrated_database_matches_table_definitions(env: Env) -> None:
    with env.open() as ws, ws._ctx.db.read() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []


def test_a_newer_schema_is_refused_with_a_clear_message(env: Env) -> None:
    with env.open() as ws, ws._ctx.db.write() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999_from_the_future'"))
    with pytest.raises(SchemaMismatch, match="newer than this mlwarden") as caught:
        open_workspace(env.root, token=env.admin_token)
    assert "upgrade mlwarden" in caught.value.hint
    with pytest.raises(SchemaMismatch):
        upgrade_workspace(env.root)


def test_a_database_without_schema_asks_for_db_upgrade(env: Env) -> None:
    with env.open() as ws, ws._ctx.db.write() as conn:
        conn.execute(text("DELETE FROM alembic_version"))
    with pytest.raises(SchemaMismatch, match="no mlwarden schema") as caught:
        open_workspace(env.root, token=env.admin_token)
    assert "database_url" in caught.value.hint
    with pytest.raises(SchemaMismatch, match="not this workspace's database"):
        upgrade_workspace(env.root)  # never starts a fresh log under an existing workspace


def test_upgrade_is_a_no_op_when_current(env: Env) -> None:
    with env.open() as ws:
        size = len(ws.audit.log())
    state = upgrade_workspace(env.root)
    assert state.up_to_date
    with env.open() as ws:
        assert len(ws.audit.log()) == size + 1  # only the previous query's audit.read event was added


def test_upgrade_of_an_empty_database_reaches_head(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'empty.db'}", create=True)
    try:
        assert schema.schema_state(db).current is None
        assert schema.upgrade(db).up_to_date
        schema.require_current(db)
    finally:
        db.dispose()


def test_code_constants_match_the_migrations_folder() -> None:
    head, revisions = schema.migration_revisions()
    assert head == schema.HEAD
    assert revisions == schema.KNOWN_REVISIONS


def test_a_failing_upgrade_record_rolls_the_migration_back(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'empty.db'}", create=True)

    def fail(_conn: object, _before: object) -> None:
        raise RuntimeError("could not write the audit event")

    try:
        with pytest.raises(RuntimeError):
            schema.upgrade(db, then=fail)
        assert schema.schema_state(db).current is None  # DDL and record are one transaction
    finally:
        db.dispose()


def test_a_database_of_another_workspace_is_refused(env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlwarden.errors import ConfigError
    from mlwarden.service.init import init_workspace

    other = init_workspace(tmp_path / "other")
    other.workspace.close()
    other_db = f"sqlite:///{other.workspace.root / '.mlwarden' / 'metadata.db'}"
    monkeypatch.setenv("MLWARDEN_DATABASE_URL", other_db)
    with pytest.raises(ConfigError, match="belongs to workspace"):
        open_workspace(env.root, token=env.admin_token)


def test_a_missing_sqlite_database_is_not_silently_recreated(tmp_path: Path) -> None:
    from mlwarden.errors import ConfigError
    from mlwarden.service.init import init_workspace

    made = init_workspace(tmp_path / "ws")
    made.workspace.close()
    for suffix in ("", "-wal", "-shm"):
        (made.workspace.root / ".mlwarden" / f"metadata.db{suffix}").unlink(missing_ok=True)
    with pytest.raises(ConfigError, match="is missing"):
        open_workspace(made.workspace.root, token=made.token.plaintext)
    assert not (made.workspace.root / ".mlwarden" / "metadata.db").exists()


def test_init_refuses_two_different_databases(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlwarden.errors import UsageError
    from mlwarden.service.init import init_workspace

    monkeypatch.setenv("MLWARDEN_DATABASE_URL", f"sqlite:///{tmp_path / 'a.db'}")
    with pytest.raises(UsageError, match="another database than --db"):
        init_workspace(tmp_path / "ws", db_url=f"sqlite:///{tmp_path / 'b.db'}")
    assert not (tmp_path / "ws" / ".mlwarden").exists()
