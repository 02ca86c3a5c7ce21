"""Experiment tracking: runs, their parameters, metrics, tags, inputs and ends. All append-only.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from mlwarden.store.migrations.triggers import drop_append_only, forbid_update_and_delete

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_IMMUTABLE = "runs are a record: what was logged stays as it was logged"
_TABLES = ("runs", "run_ends", "run_params", "run_tags", "run_metrics", "run_inputs", "run_artifacts")


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("project", sa.String(64), sa.ForeignKey("projects.name"), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("started_at", sa.String(32), nullable=False),
        sa.Column("environment", sa.Text, nullable=False),
    )
    op.create_index("ix_runs_project", "runs", ["project", "started_at"])
    op.create_table(
        "run_ends",
        sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.id"), primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("ended_at", sa.String(32), nullable=False),
    )
    op.create_table(
        "run_params",
        sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.id"), primary_key=True),
        sa.Column("key", sa.String(256), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("batch", sa.Integer, nullable=False),
    )
    op.create_table(
        "run_tags",
        sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.id"), primary_key=True),
        sa.Column("key", sa.String(256), primary_key=True),
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("batch", sa.Integer, nullable=False),
    )
    op.create_table(
        "run_metrics",
        sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.id"), nullable=False),
        sa.Column("key", sa.String(256), nullable=False),
        sa.Column("step", sa.BigInteger, nullable=False),
        sa.Column("value", sa.Float, nullable=False),
        sa.Column("at", sa.String(32), nullable=False),
        sa.Column("batch", sa.Integer, nullable=False),
    )
    op.create_index("ix_run_metrics_run", "run_metrics", ["run_id", "key", "step"])
    op.create_index("ix_run_metrics_batch", "run_metrics", ["run_id", "batch"])  # the next batch's number
    op.create_table(
        "run_inputs",
        sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.id"), primary_key=True),
        sa.Column("dataset_id", sa.String(32), sa.ForeignKey("datasets.id"), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("digest", sa.String(80), nullable=False),
    )
    op.create_table(
        "run_artifacts",
        sa.Column("run_id", sa.String(32), sa.ForeignKey("runs.id"), primary_key=True),
        sa.Column("name", sa.String(256), primary_key=True),
        sa.Column("digest", sa.String(80), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
    )
    for table in _TABLES:
        forbid_update_and_delete(table, _IMMUTABLE)


def downgrade() -> None:
    for table in reversed(_TABLES):
        drop_append_only(table)
    op.drop_index("ix_run_metrics_batch", table_name="run_metrics")
    op.drop_index("ix_run_metrics_run", table_name="run_metrics")
    op.drop_index("ix_runs_project", table_name="runs")
    for table in reversed(_TABLES):
        op.drop_table(table)
