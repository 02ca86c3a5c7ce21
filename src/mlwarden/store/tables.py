"""The metadata schema as SQLAlchemy Core tables.

Alembic migrations (``migrations/versions``) create these tables; this module is the typed handle the
code uses to query them. A test checks that the migrated database and these definitions agree.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ColumnElement,
    Connection,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
    select,
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

approval_requests = Table(
    "approval_requests",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("kind", String(64), nullable=False),
    Column("project", String(64), ForeignKey("projects.name"), nullable=False),
    Column("resource_type", String(64), nullable=False),
    Column("resource_id", Text, nullable=False),
    Column("digest", String(80), nullable=False),
    Column("author_id", String(32), ForeignKey("users.id"), nullable=False),
    Column("required_count", Integer, nullable=False),
    Column("required_role", String(32), nullable=False),
    Column("status", String(16), nullable=False),
    Column("payload", Text, nullable=False),
    Column("created_at", String(32), nullable=False),
    Column("expires_at", String(32), nullable=False),
    Column("decided_at", String(32), nullable=True),
    Index("ix_approval_requests_status", "project", "status"),
)

approval_votes = Table(
    "approval_votes",
    metadata,
    Column("request_id", String(32), ForeignKey("approval_requests.id"), primary_key=True),
    Column("approver_id", String(32), ForeignKey("users.id"), primary_key=True),
    Column("decision", String(16), nullable=False),
    Column("digest", String(80), nullable=False),
    Column("comment", Text, nullable=True),
    Column("at", String(32), nullable=False),
)

# -- MFA (migration 0003) -----------------------------------------------------------------------------

# One TOTP factor per user. The secret is sealed (AES-256-GCM, mlwarden.identity.sealing); last_step is
# the last time step accepted, so each code works once (-1: none yet). locked_until is an ISO timestamp.
mfa_factors = Table(
    "mfa_factors",
    metadata,
    Column("user_id", String(32), ForeignKey("users.id"), primary_key=True),
    Column("secret_sealed", Text, nullable=False),
    Column("enrolled_at", String(32), nullable=False),
    Column("confirmed", Boolean, nullable=False),
    Column("last_step", Integer, nullable=False),
    Column("failures", Integer, nullable=False),
    Column("locked_until", String(32), nullable=True),
)

# Step-up grants: a fresh code for one action on one resource, valid a few minutes, used at most once.
mfa_step_ups = Table(
    "mfa_step_ups",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("user_id", String(32), ForeignKey("users.id"), nullable=False),
    Column("action", String(64), nullable=False),
    Column("resource_key", Text, nullable=False),
    Column("granted_at", String(32), nullable=False),
    Column("expires_at", String(32), nullable=False),
    Column("used_at", String(32), nullable=True),
    Index("ix_mfa_step_ups_user_action", "user_id", "action"),
)

# -- Datasets (migration 0004) ------------------------------------------------------------------------

# A dataset: its schema (the contract, JSON) and whether changes need an approved request.
datasets = Table(
    "datasets",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("project", String(64), ForeignKey("projects.name"), nullable=False),
    Column("name", String(128), nullable=False),
    Column("schema", Text, nullable=False),
    Column("schema_digest", String(80), nullable=False),
    Column("label_column", String(256), nullable=True),
    Column("protected", Boolean, nullable=False),
    Column("required_approvals", Integer, nullable=False),
    Column("created_at", String(32), nullable=False),
    Column("created_by", String(64), nullable=False),
    UniqueConstraint("project", "name", name="uq_datasets_project_name"),
)

# One batch brought in from a source: who, when, from what input, and the segment blob holding its rows
# (Parquet) with the RFC 6962 root of their row digests. Append-only.
dataset_ingestions = Table(
    "dataset_ingestions",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("dataset_id", String(32), ForeignKey("datasets.id"), nullable=False),
    Column("source", String(128), nullable=False),
    Column("actor", String(64), nullable=False),
    Column("created_at", String(32), nullable=False),
    Column("input_name", String(256), nullable=False),
    Column("input_format", String(16), nullable=False),
    Column("input_digest", String(80), nullable=True),
    Column("row_count", BigInteger, nullable=False),
    Column("segment", String(80), nullable=False),
    Column("segment_root", String(64), nullable=False),
    Column("note", Text, nullable=True),
    Index("ix_dataset_ingestions_dataset", "dataset_id", "created_at"),
)

# A version: its manifest (which rows of which ingestions, in order), the compact range of its row-digest
# tree (so an append costs O(batch)) and its digest. Append-only: a revert is a new version.
dataset_versions = Table(
    "dataset_versions",
    metadata,
    Column("dataset_id", String(32), ForeignKey("datasets.id"), primary_key=True),
    Column("number", Integer, primary_key=True, autoincrement=False),
    Column("digest", String(80), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("row_count", BigInteger, nullable=False),
    Column("tree", Text, nullable=False),
    Column("manifest", Text, nullable=False),
    Column("ingestion_id", String(32), ForeignKey("dataset_ingestions.id"), nullable=True),
    Column("undid", Text, nullable=True),
    Column("approval_request", String(32), nullable=True),
    Column("actor", String(64), nullable=False),
    Column("created_at", String(32), nullable=False),
    Column("note", Text, nullable=True),
    Index("ix_dataset_versions_digest", "digest"),
)

# -- Model scanner (migration 0005) -------------------------------------------------------------------

# Globals this workspace adds to the scanner's packaged allow-list ("module:qualname"), with the
# strongest use allowed (call, class or ref) and why. Reconciled with the log by `audit verify`.
scan_allowlist = Table(
    "scan_allowlist",
    metadata,
    Column("global_name", String(512), primary_key=True),
    Column("role", String(8), nullable=False),
    Column("reason", Text, nullable=False),
    Column("added_by", String(64), nullable=False),
    Column("added_at", String(32), nullable=False),
)

# -- Ingestion gate (migration 0006) ------------------------------------------------------------------

# A dataset's contract or gate policy (kind "contract" / "policy"), as set; the latest row of a kind is in
# force, a null document clears it. Append-only, so the policy any verdict was judged under can be found.
dataset_documents = Table(
    "dataset_documents",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("dataset_id", String(32), ForeignKey("datasets.id"), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("document", Text, nullable=True),
    Column("digest", String(80), nullable=True),
    Column("actor", String(64), nullable=False),
    Column("created_at", String(32), nullable=False),
    Index("ix_dataset_documents_dataset", "dataset_id", "kind", "created_at"),
)

# The gate's verdict on an ingestion (accepted, quarantined, rejected) with its findings and the batch's
# sample (a blob). Append-only: accepting a quarantined ingestion adds a record; the latest
# record of an ingestion is its status. A rejected batch has records but no ingestion row.
dataset_gates = Table(
    "dataset_gates",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("dataset_id", String(32), ForeignKey("datasets.id"), nullable=False),
    Column("ingestion_id", String(32), nullable=False),
    Column("verdict", String(16), nullable=False),
    Column("report", Text, nullable=False),
    Column("sample", String(80), nullable=True),
    Column("approval_request", String(32), nullable=True),
    Column("actor", String(64), nullable=False),
    Column("created_at", String(32), nullable=False),
    Index("ix_dataset_gates_ingestion", "ingestion_id", "created_at"),
    Index("ix_dataset_gates_dataset", "dataset_id", "created_at"),
)

# Each ingestion's profile (a JSON blob), made the first time a profile of a version holding it is asked
# for, then reused: a version's profile is the merge of its ingestions'. Insert-once.
dataset_profiles = Table(
    "dataset_profiles",
    metadata,
    Column("ingestion_id", String(32), primary_key=True),
    Column("dataset_id", String(32), ForeignKey("datasets.id"), nullable=False),
    Column("profile", String(80), nullable=False),
    Column("created_at", String(32), nullable=False),
)

# -- Experiment tracking (migration 0007) ---------------------------------------------------------------

# A run: who started it where, and the environment it ran in (code version, command, Python, packages,
# host) as JSON. Its end is a row of run_ends; everything logged is insert-only.
runs = Table(
    "runs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("project", String(64), ForeignKey("projects.name"), nullable=False),
    Column("name", String(128), nullable=False),
    Column("actor", String(64), nullable=False),
    Column("started_at", String(32), nullable=False),
    Column("environment", Text, nullable=False),
    Index("ix_runs_project", "project", "started_at"),
)
run_ends = Table(
    "run_ends",
    metadata,
    Column("run_id", String(32), ForeignKey("runs.id"), primary_key=True),
    Column("status", String(16), nullable=False),
    Column("ended_at", String(32), nullable=False),
)
run_params = Table(
    "run_params",
    metadata,
    Column("run_id", String(32), ForeignKey("runs.id"), primary_key=True),
    Column("key", String(256), primary_key=True),
    Column("value", Text, nullable=False),
    Column("batch", Integer, nullable=False),  # the run.log batch (and audit event) that brought it
)
# A tag can be set again: the row with the highest seq is its value.
run_tags = Table(
    "run_tags",
    metadata,
    Column("run_id", String(32), ForeignKey("runs.id"), primary_key=True),
    Column("key", String(256), primary_key=True),
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("value", Text, nullable=False),
    Column("batch", Integer, nullable=False),
)
# Metrics arrive in batches (one audit event each, whose digest covers the batch's rows).
run_metrics = Table(
    "run_metrics",
    metadata,
    Column("run_id", String(32), ForeignKey("runs.id"), nullable=False),
    Column("key", String(256), nullable=False),
    Column("step", BigInteger, nullable=False),
    Column("value", Float, nullable=False),
    Column("at", String(32), nullable=False),
    Column("batch", Integer, nullable=False),
    Index("ix_run_metrics_run", "run_id", "key", "step"),
    Index("ix_run_metrics_batch", "run_id", "batch"),  # max(batch) of a run without a scan
)
# Files a run produced (a model, a plot...), stored content-addressed in the blob store.
run_artifacts = Table(
    "run_artifacts",
    metadata,
    Column("run_id", String(32), ForeignKey("runs.id"), primary_key=True),
    Column("name", String(256), primary_key=True),
    Column("digest", String(80), nullable=False),
    Column("size", BigInteger, nullable=False),
)
run_inputs = Table(
    "run_inputs",
    metadata,
    Column("run_id", String(32), ForeignKey("runs.id"), primary_key=True),
    Column("dataset_id", String(32), ForeignKey("datasets.id"), primary_key=True),
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("digest", String(80), nullable=False),
)

# -- the model registry (0008): every table append-only; a stage or an alias is its newest row ----------
models = Table(
    "models",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("project", String(64), ForeignKey("projects.name"), nullable=False),
    Column("name", String(128), nullable=False),
    Column("actor", String(64), nullable=False),
    Column("created_at", String(32), nullable=False),
    UniqueConstraint("project", "name", name="uq_models_project_name"),
)
# A version: its files (JSON manifest of path, sha256, size; each file a blob), the OpenSSF model-signing
# bundle over them, its run and the run's inputs and metrics as they were at registration, its scan.
model_versions = Table(
    "model_versions",
    metadata,
    Column("model_id", String(32), ForeignKey("models.id"), primary_key=True),
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("digest", String(80), nullable=False),
    Column("format", String(32), nullable=False),
    Column("layout", String(16), nullable=False),  # "file" or "directory": how the files sit on disk
    Column("files", Text, nullable=False),
    Column("run_id", String(32), ForeignKey("runs.id"), nullable=True),
    Column("source", Text, nullable=True),
    Column("inputs", Text, nullable=False),
    Column("metrics", Text, nullable=False),
    Column("scan", Text, nullable=False),
    Column("signature", Text, nullable=False),
    Column("author_id", String(32), nullable=False),
    Column("actor", String(64), nullable=False),
    Column("created_at", String(32), nullable=False),
)
model_stages = Table(
    "model_stages",
    metadata,
    Column("model_id", String(32), ForeignKey("models.id"), primary_key=True),
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("version", Integer, nullable=False),
    Column("stage", String(16), nullable=False),
    Column("actor", String(64), nullable=False),
    Column("request_id", String(32), nullable=True),
    Column("reason", Text, nullable=True),
    Column("at", String(32), nullable=False),
)
model_aliases = Table(
    "model_aliases",
    metadata,
    Column("model_id", String(32), ForeignKey("models.id"), primary_key=True),
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("alias", String(64), nullable=False),
    Column("version", Integer, nullable=True),  # None: the alias was removed
    Column("actor", String(64), nullable=False),
    Column("at", String(32), nullable=False),
)
model_evaluations = Table(
    "model_evaluations",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("model_id", String(32), ForeignKey("models.id"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("model_digest", String(80), nullable=False),
    Column("dataset_id", String(32), ForeignKey("datasets.id"), nullable=False),
    Column("dataset_version", Integer, nullable=False),
    Column("dataset_digest", String(80), nullable=False),
    Column("metrics", Text, nullable=False),
    Column("actor", String(64), nullable=False),
    Column("at", String(32), nullable=False),
    Index("ix_model_evaluations_version", "model_id", "version"),
)
model_policies = Table(
    "model_policies",
    metadata,
    Column("project", String(64), ForeignKey("projects.name"), primary_key=True),
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("document", Text, nullable=False),
    Column("digest", String(80), nullable=False),
    Column("actor", String(64), nullable=False),
    Column("at", String(32), nullable=False),
)
# The version of a dataset the poisoning defenses trust (0009); the newest row counts, version NULL: none.
dataset_trust = Table(
    "dataset_trust",
    metadata,
    Column("dataset_id", String(32), ForeignKey("datasets.id"), primary_key=True),
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("version", Integer, nullable=True),
    Column("digest", String(80), nullable=True),
    Column("note", Text, nullable=True),
    Column("actor", String(64), nullable=False),
    Column("at", String(32), nullable=False),
)


def next_seq(conn: Connection, table: Table, *where: ColumnElement[bool]) -> int:
    """The next ``seq`` of an append-only history table among the rows matching ``where``: 1 for the first."""
    last = conn.execute(select(func.max(table.c.seq)).where(*where)).scalar()
    return 1 if last is None else int(last) + 1
