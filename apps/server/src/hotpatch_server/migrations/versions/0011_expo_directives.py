"""Expo rollBackToEmbedded directives, one per (app, platform, channel, runtime version)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01 01:40:00

A publisher rolls an Expo channel back to the bundle embedded in the binary
with a directive (signed on the publisher's machine when the app checks
signatures); updates committed before it are no longer served.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "expo_directives",
        sa.Column("app_id", sa.String(length=128), sa.ForeignKey("apps.id"), nullable=False),
        sa.Column("platform", sa.String(length=16), nullable=False),
        sa.Column("channel", sa.String(length=64), nullable=False),
        sa.Column("runtime_version", sa.String(length=64), nullable=False),
        sa.Column("commit_time", sa.String(length=24), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("signature", sa.Text(), nullable=True),
        sa.Column("key_id", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("app_id", "platform", "channel", "runtime_version"),
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_table("expo_directives")
