"""Projects and per-project role bindings.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "projects",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("created_at", sa.String(32), nullable=False),
    )
    op.create_table(
        "role_bindings",
        sa.Column("project", sa.String(64), sa.ForeignKey("projects.name"), primary_key=True),
        sa.Column("user_id", sa.String(32), sa.ForeignKey("users.id"), primary_key=True),
        sa.Column("role", sa.String(32), primary_key=True),
        sa.Column("granted_at", sa.String(32), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("role_bindings")
    op.drop_table("projects")
