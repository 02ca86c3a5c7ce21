"""Shared fixtures: a database URL per backend, and initialized workspaces on it.

SQLite always runs. PostgreSQL runs when MLWARDEN_TEST_POSTGRES_URL is set (`.ci/run` sets it); each test
gets its own schema there, so tests never see each other's rows.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from mlwarden.service.init import init_workspace
from mlwarden.service.workspace import Workspace, open_workspace

PG_ENV = "MLWARDEN_TEST_POSTGRES_URL"
PG_URL = os.environ.get(PG_ENV)
BACKENDS = [
    "sqlite",
    pytest.param(
        "postgresql",
        marks=[
            pytest.mark.postgres,
            pytest.mark.skipif(not PG_URL, reason=f"{PG_ENV} is not set: PostgreSQL tests skipped"),
        ],
    ),
]
ADMIN_PASSWORD = "admin-password-for-tests"


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reads the developer's credentials or a workspace from the environment."""
    monkeypatch.setenv("MLWARDEN_CONFIG_HOME", str(tmp_path / "config-home"))
    for name in ("MLWARDEN_TOKEN", "MLWARDEN_WORKSPACE", "MLWARDEN_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)


def postgres_schema_url(base: str, schema: str) -> str:
    url = make_url(base)
    return url.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(hide_password=False)


@pytest.fixture
def pg_schema_url() -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh, empty schema (dropped afterwards)."""
    assert PG_URL is not None
    schema = "t_" + uuid.uuid4().hex[:12]
    engine = create_engine(PG_URL)
    with engine.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        yield postgres_schema_url(PG_URL, schema)
    finally:
        with engine.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        engine.dispose()


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str | None:
    """None means the default (SQLite inside the workspace)."""
    if request.param == "sqlite":
        return None
    url: str = request.getfixturevalue("pg_schema_url")
    return url


@dataclass
class Env:
    root: Path
    admin_token: str
    db_url: str | None

    def open(self, token: str | None = None) -> Workspace:
        return open_workspace(self.root, token=token if token is not None else self.admin_token)


@pytest.fixture
def env(tmp_path: Path, db_url: str | None) -> Iterator[Env]:
    """An initialized workspace (admin 'admin' with a password), on every backend."""
    result = init_workspace(tmp_path / "ws", db_url=db_url, admin_password=ADMIN_PASSWORD)
    result.workspace.close()
    yield Env(root=result.workspace.root, admin_token=result.token.plaintext, db_url=db_url)


@pytest.fixture
def admin(env: Env) -> Iterator[Workspace]:
    ws = env.open()
    yield ws
    ws.close()
