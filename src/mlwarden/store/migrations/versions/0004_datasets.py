"""Datasets, their ingestions and their immutable versions.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from mlwarden.store.migrations.triggers import drop_append_only, forbid_update_and_delete

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_IMMUTABLE = "dataset versions and ingestions are immutable"


def upgrade() -> None:
    op.create_table(
        "datasets",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("project", sa.String(64), sa.ForeignKey("projects.name"), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("schema", sa.Text, nullable=False),
        sa.Column("schema_digest", sa.String(80), nullable=False),
        sa.Column("label_column", sa.String(256), nullable=True),
        sa.Column("protected", sa.Boolean, nullable=False),
        sa.Column("required_approvals", sa.Integer, nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.UniqueConstraint("project", "name", name="uq_datasets_project_name"),
    )
    op.create_table(
        "dataset_ingestions",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("dataset_id", sa.String(32), sa.ForeignKey("datasets.id"), nullable=False),
        sa.Column("source", sa.String(128), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("input_name", sa.String(256), nullable=False),
        sa.Column("input_format", sa.String(16), nullable=False),
        sa.Column("input_digest", sa.String(80), nullable=True),
        sa.Column("row_count", sa.BigInteger, nullable=False),
        sa.Column("segment", sa.String(80), nullable=False),
        sa.Column("segment_root", sa.String(64), nullable=False),
        sa.Column("note", sa.Text, nullable=True),
    )
    op.create_index("ix_dataset_ingestions_dataset", "dataset_ingestions", ["dataset_id", "created_at"])
    op.create_table(
        "dataset_versions",
        sa.Column("dataset_id", sa.String(32), sa.ForeignKey("datasets.id"), primary_key=True),
        sa.Column("number", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("digest", sa.String(80), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("row_count", sa.BigInteger, nullable=False),
        sa.Column("tree", sa.Text, nullable=False),
        sa.Column("manifest", sa.Text, nullable=False),
        sa.Column("ingestion_id", sa.String(32), sa.ForeignKey("dataset_ingestions.id"), nullable=True),
        sa.Column("undid", sa.Text, nullable=True),
        sa.Column("approval_request", sa.String(32), nullable=True),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
        sa.Column("note", sa.Text, nullable=True),
    )
    op.create_index("ix_dataset_versions_digest", "dataset_versions", ["digest"])
    for table in ("dataset_ingestions", "dataset_versions"):
        forbid_update_and_delete(table, _IMMUTABLE)


def downgrade() -> None:
    for table in ("dataset_versions", "dataset_ingestions"):
        drop_append_only(table)
    op.drop_index("ix_dataset_versions_digest", table_name="dataset_versions")
    op.drop_table("dataset_versions")
    op.drop_index("ix_dataset_ingestions_dataset", table_name="dataset_ingestions")
    op.drop_table("dataset_ingestions")
    op.drop_table("datasets")
