"""Expo Updates manifests attached to releases, and the assets they list

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 01:10:00

A release served to expo-updates devices has one Expo manifest, fixed when
it is attached (the exact bytes served, with the publisher's RSA signature
when the app checks signatures). Its assets are stored as blobs of their
own and served at stable URLs by sha256.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "expo_updates",
        sa.Column("release_id", sa.Integer(), sa.ForeignKey("releases.id"), nullable=False),
        sa.Column("update_id", sa.String(length=36), nullable=False),
        sa.Column("runtime_version", sa.String(length=64), nullable=False),
        sa.Column("manifest", sa.LargeBinary(), nullable=False),
        sa.Column("signature", sa.Text(), nullable=True),
        sa.Column("key_id", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("release_id"),
        sa.UniqueConstraint("update_id"),
    )
    op.create_table(
        "expo_assets",
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("content_type", sa.String(length=100), nullable=False),
        sa.Column("length", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("sha256"),
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_table("expo_assets")
    op.drop_table("expo_updates")
