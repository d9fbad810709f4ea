"""patches between releases

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 05:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "patches",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("app_id", sa.String(length=128), nullable=False),
        sa.Column("base_manifest_id", sa.String(length=64), nullable=False),
        sa.Column("target_manifest_id", sa.String(length=64), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("length", sa.BigInteger(), nullable=False),
        sa.Column("archive_length", sa.BigInteger(), nullable=False),
        sa.Column("downloads", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["app_id"], ["apps.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("base_manifest_id", "target_manifest_id"),
    )
    op.create_index("ix_patches_target_manifest_id", "patches", ["target_manifest_id"])
    op.create_index("ix_patches_sha256", "patches", ["sha256"])


def downgrade() -> None:
    """Revert this revision."""
    op.drop_index("ix_patches_sha256", table_name="patches")
    op.drop_index("ix_patches_target_manifest_id", table_name="patches")
    op.drop_table("patches")
