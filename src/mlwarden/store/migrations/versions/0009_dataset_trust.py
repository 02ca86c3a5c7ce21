"""Trusted dataset versions: the reference the poisoning defenses measure against. Append-only: the
dataset's trusted version is its newest row (version NULL: trust withdrawn).

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from mlwarden.store.migrations.triggers import drop_append_only, forbid_update_and_delete

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dataset_trust",
        sa.Column("dataset_id", sa.String(32), sa.ForeignKey("datasets.id"), primary_key=True),
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("version", sa.Integer, nullable=True),
        sa.Column("digest", sa.String(80), nullable=True),
        sa.Column("note", sa.Text, nullable=True),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("at", sa.String(32), nullable=False),
    )
    forbid_update_and_delete("dataset_trust", "trust is a record: a change is a new row")


def downgrade() -> None:
    drop_append_only("dataset_trust")
    op.drop_table("dataset_trust")
