"""The ingestion gate: contracts and policies per dataset, and a verdict for every ingestion.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from mlwarden.store.migrations.triggers import drop_append_only, forbid_update_and_delete

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_IMMUTABLE = "gate records are append-only: a later record supersedes an earlier one"


def upgrade() -> None:
    op.create_table(
        "dataset_documents",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("dataset_id", sa.String(32), sa.ForeignKey("datasets.id"), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("document", sa.Text, nullable=True),
        sa.Column("digest", sa.String(80), nullable=True),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
    )
    op.create_index("ix_dataset_documents_dataset", "dataset_documents", ["dataset_id", "kind", "created_at"])
    op.create_table(
        "dataset_gates",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("dataset_id", sa.String(32), sa.ForeignKey("datasets.id"), nullable=False),
        sa.Column("ingestion_id", sa.String(32), nullable=False),
        sa.Column("verdict", sa.String(16), nullable=False),
        sa.Column("report", sa.Text, nullable=False),
        sa.Column("sample", sa.String(80), nullable=True),
        sa.Column("approval_request", sa.String(32), nullable=True),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
    )
    op.create_index("ix_dataset_gates_ingestion", "dataset_gates", ["ingestion_id", "created_at"])
    op.create_index("ix_dataset_gates_dataset", "dataset_gates", ["dataset_id", "created_at"])
    op.create_table(
        "dataset_profiles",
        sa.Column("ingestion_id", sa.String(32), primary_key=True),
        sa.Column("dataset_id", sa.String(32), sa.ForeignKey("datasets.id"), nullable=False),
        sa.Column("profile", sa.String(80), nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
    )
    for table in ("dataset_documents", "dataset_gates", "dataset_profiles"):
        forbid_update_and_delete(table, _IMMUTABLE)


def downgrade() -> None:
    for table in ("dataset_profiles", "dataset_gates", "dataset_documents"):
        drop_append_only(table)
    op.drop_table("dataset_profiles")
    op.drop_index("ix_dataset_gates_dataset", table_name="dataset_gates")
    op.drop_index("ix_dataset_gates_ingestion", table_name="dataset_gates")
    op.drop_table("dataset_gates")
    op.drop_index("ix_dataset_documents_dataset", table_name="dataset_documents")
    op.drop_table("dataset_documents")
