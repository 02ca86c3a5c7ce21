"""Engine creation and the two kinds of transaction: read and write.

Writes are serialized: on SQLite every write transaction starts with ``BEGIN IMMEDIATE`` (one writer at a
time, no upgrade deadlocks); on PostgreSQL it takes a transaction-scoped advisory lock. That is what makes
concurrent audit appends unable to fork the log: the next sequence number is read and written under the
same exclusive lock.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url

from mlwarden.errors import ConfigError

# The writer lock: one advisory lock per schema (so workspaces sharing a database do not queue behind
# each other), in a class of locks of our own ("mlw").
_PG_LOCK_CLASS = 0x6D6C77
_PG_LOCK = text("SELECT pg_advisory_xact_lock(:k, hashtext(current_schema()))")
_BEGIN_OPTION = "mlwarden_begin"
_AFTER_COMMIT = "mlwarden_after_commit"
SQLITE_BUSY_TIMEOUT_MS = 60_000


class Database:
    """A metadata database: an engine plus read and write transactions."""

    def __init__(self, url: str, *, create: bool = False) -> None:
        """Open the database at ``url``; a missing SQLite file is an error unless ``create``."""
        self.url = url
        self.engine = _make_engine(url)
        self.dialect = self.engine.dialect.name
        database = self.engine.url.database
        if self.dialect == "sqlite" and not create and database and not os.path.exists(database):
            self.engine.dispose()
            raise ConfigError(
                f"the workspace database {database} is missing",
                hint="restore it from a backup, or check database_url in .mlwarden/config.toml",
            )

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A serialized write transaction; commits on success, rolls back on any exception.

        Callbacks registered with ``after_commit`` run once the transaction has committed (and are
        dropped if it rolls back).
        """
        with self.engine.connect() as conn:
            options: dict[str, str] = {_BEGIN_OPTION: "IMMEDIATE"}
            if self.dialect == "postgresql":
                # READ COMMITTED whatever the server default: each statement after the lock must see what
                # the previous writer committed (a snapshot taken before the lock would not).
                options["isolation_level"] = "READ COMMITTED"
            conn = conn.execution_options(**options)
            try:
                with conn.begin():
                    if self.dialect == "postgresql":
                        conn.execute(_PG_LOCK, {"k": _PG_LOCK_CLASS})
                    yield conn
            finally:
                callbacks = conn.info.pop(_AFTER_COMMIT, [])
        for callback in callbacks:
            callback()

    def make_durable(self) -> None:
        """Force every committed transaction to stable storage.

        SQLite runs with synchronous=NORMAL, where the last commits may not survive a power cut. Before
        anything leaves the database (a checkpoint exported to a witness, the signer's own record) the
        write-ahead log is synced, so the outside world never remembers more than the disk does. Syncing
        the log is enough: SQLite syncs the database file itself whenever it copies the log into it.

        The database file itself must never be opened here: closing any descriptor of it drops every
        POSIX lock this process holds on it, SQLite's shared lock included. Another process closing its
        last connection would then think it the only user, fold the log into the database and delete
        it, while this process still appends to the deleted file: committed events lost, and the audit
        tree would no longer match the checkpoints already signed. The log file carries no locks.
        PostgreSQL commits are durable already (synchronous_commit).
        """
        if self.dialect != "sqlite":
            return
        database = self.engine.url.database
        if not database:
            return
        try:
            fd = os.open(database + "-wal", os.O_RDONLY)
        except FileNotFoundError:
            return  # no log: every commit was folded into the database file, which SQLite synced
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read transaction (a consistent snapshot on SQLite WAL; never takes the writer lock)."""
        with self.engine.connect() as conn:
            options: dict[str, str] = {_BEGIN_OPTION: "DEFERRED"}
            if self.dialect == "postgresql":
                # One snapshot for the whole read, as SQLite gives: verification runs several queries
                # and must not see appends that land between them.
                options["isolation_level"] = "REPEATABLE READ"
            conn = conn.execution_options(**options)
            with conn.begin():
                yield conn

    def dispose(self) -> None:
        self.engine.dispose()


def after_commit(conn: Connection, callback: Callable[[], None]) -> None:
    """Run ``callback`` after the write transaction of ``conn`` commits (never if it rolls back)."""
    conn.info.setdefault(_AFTER_COMMIT, []).append(callback)


def _make_engine(url: str) -> Engine:
    try:
        parsed = make_url(url)
    except Exception as exc:  # SQLAlchemy raises ArgumentError and friends
        raise ConfigError(f"invalid database URL: {exc}", hint="use e.g. postgresql+psycopg://...") from exc
    if parsed.get_backend_name() == "sqlite":
        # Pooled: reopening SQLite per transaction would rerun the PRAGMAs and, as the last connection
        # closed, checkpoint and delete the WAL every time (several fsyncs per audit event).
        engine = create_engine(url)
        _configure_sqlite(engine)
        return engine
    if parsed.get_backend_name() == "postgresql":
        return create_engine(url, pool_pre_ping=True)
    raise ConfigError(
        f"unsupported database backend {parsed.get_backend_name()!r}",
        hint="use sqlite:///PATH or postgresql+psycopg://USER:PASSWORD@HOST/DB",
    )


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take transaction control away from the sqlite3 module so BEGIN IMMEDIATE is ours to emit.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA journal_mode = WAL")
        # NORMAL in WAL mode: a crash (even SIGKILL) never loses or tears a committed transaction;
        # only a power cut can drop the last ones. See docs/audit.md for the trade-off.
        cur.execute("PRAGMA synchronous = NORMAL")
        cur.execute("PRAGMA foreign_keys = ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get(_BEGIN_OPTION, "DEFERRED")
        conn.exec_driver_sql("BEGIN IMMEDIATE" if mode == "IMMEDIATE" else "BEGIN")
