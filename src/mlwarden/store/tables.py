"""The metadata schema as SQLAlchemy Core tables.

Alembic migrations (``migrations/versions``) create these tables; this module is the typed handle the
code uses to query them. A test checks that the migrated database and these definitions agree.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

workspace_meta = Table(
    "workspace_meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

users = Table(
    "users",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("is_admin", Boolean, nullable=False),
    Column("disabled", Boolean, nullable=False),
    Column("password_hash", Text, nullable=True),
    Column("created_at", String(32), nullable=False),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("user_id", String(32), ForeignKey("users.id"), nullable=False),
    Column("name", String(128), nullable=False),
    Column("secret_hash", String(64), nullable=False),
    Column("created_at", String(32), nullable=False),
    Column("expires_at", String(32), nullable=True),
    Column("revoked_at", String(32), nullable=True),
)

# The audit log: one row per event (the canonical body is what the leaf hash covers; the other
# columns are copies for querying and are cross-checked against the body by `audit verify`).
audit_events = Table(
    "audit_events",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("ts", String(32), nullable=False),
    Column("actor", Text, nullable=False),
    Column("action", Text, nullable=False),
    Column("resource_type", Text, nullable=False),
    Column("resource_id", Text, nullable=False),
    Column("project", Text, nullable=True),
    Column("outcome", String(16), nullable=False),
    Column("body", LargeBinary, nullable=False),
    Column("leaf", LargeBinary(32), nullable=False),
    Index("ix_audit_events_actor", "actor"),
    Index("ix_audit_events_action", "action"),
    Index("ix_audit_events_ts", "ts"),
)

# Perfect subtree hashes: node (level, idx) covers leaves [idx << level, (idx + 1) << level).
audit_nodes = Table(
    "audit_nodes",
    metadata,
    Column("level", Integer, primary_key=True, autoincrement=False),
    Column("idx", Integer, primary_key=True, autoincrement=False),
    Column("hash", LargeBinary(32), nullable=False),
)

audit_checkpoints = Table(
    "audit_checkpoints",
    metadata,
    Column("size", Integer, primary_key=True, autoincrement=False),
    Column("root", LargeBinary(32), nullable=False),
    Column("note", Text, nullable=False),
    Column("created_at", String(32), nullable=False),
)

APPEND_ONLY_TABLES = ("audit_events", "audit_nodes", "audit_checkpoints")

# -- access control (migration 0002) ------------------------------------------------------------------

projects = Table(
    "projects",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("description", Text, nullable=False),
    Column("created_at", String(32), nullable=False),
)

role_bindings = Table(
    "role_bindings",
    metadata,
    Column("project", String(64), ForeignKey("projects.name"), primary_key=True),
    Column("user_id", String(32), ForeignKey("users.id"), primary_key=True),
    Column("role", String(32), primary_key=True),
    Column("granted_at", String(32), nullable=False),
)
