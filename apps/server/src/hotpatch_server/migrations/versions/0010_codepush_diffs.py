"""CodePush diff updates: a zip of changed files per (release, base package hash)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 01:30:00

A react-native-code-push device names its running package by its hash; the
diff made from that package to a release is served instead of the whole
archive when there is one.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "codepush_diffs",
        sa.Column("target_manifest_id", sa.String(length=64), nullable=False),
        sa.Column("base_hash", sa.String(length=64), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("length", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("target_manifest_id", "base_hash"),
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_table("codepush_diffs")
