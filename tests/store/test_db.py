"""The SQLite database across processes: making commits durable must not cost another process's data."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from sqlalchemy import text

from mlwarden.store.db import Database

# A second process that opens the database, commits a row and closes its last connection. SQLite lets
# the last connection to close fold the write-ahead log into the database and delete it.
_OTHER_PROCESS = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("PRAGMA journal_mode = WAL")
conn.execute("INSERT INTO t VALUES (2)")
conn.close()
"""


def _database(tmp_path: Path) -> tuple[Database, Path]:
    path = tmp_path / "metadata.db"
    db = Database(f"sqlite:///{path}", create=True)
    with db.write() as conn:
        conn.execute(text("CREATE TABLE t (x INTEGER)"))
        conn.execute(text("INSERT INTO t VALUES (1)"))
    return db, path


def test_make_durable_keeps_this_process_a_user_of_the_log(tmp_path: Path) -> None:
    """Regression: make_durable once opened and closed the database file, which drops every POSIX lock
    this process held on it. Another process closing then deleted the log under this one's open
    connection (in CI: events lost, and "history was rewritten" refused the next checkpoint)."""
    db, path = _database(tmp_path)
    try:
        with db.read() as conn:  # this process keeps a pooled connection, and so its shared lock
            assert conn.execute(text("SELECT count(*) FROM t")).scalar_one() == 1
        db.make_durable()
        subprocess.run([sys.executable, "-c", _OTHER_PROCESS, str(path)], check=True)
        assert Path(f"{path}-wal").exists(), "another process deleted the log this process still uses"
        with db.read() as conn:
            assert conn.execute(text("SELECT count(*) FROM t")).scalar_one() == 2
    finally:
        db.dispose()


def test_make_durable_without_a_log_is_a_no_op(tmp_path: Path) -> None:
    db, path = _database(tmp_path)
    db.dispose()  # the last connection folds the log into the database and deletes it
    assert not Path(f"{path}-wal").exists()
    db.make_durable()
