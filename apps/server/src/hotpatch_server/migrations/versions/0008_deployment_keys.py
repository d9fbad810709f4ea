"""CodePush deployment keys, each naming one app, platform and channel

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 21:10:00

Devices running react-native-code-push send a deployment key with every
check and report; it is looked up by its sha256, like API keys.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "deployment_keys",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("app_id", sa.String(length=128), sa.ForeignKey("apps.id"), nullable=False),
        sa.Column("platform", sa.String(length=16), nullable=False),
        sa.Column("channel", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key_hash"),
    )
    op.create_index("ix_deployment_keys_app_id", "deployment_keys", ["app_id"])


def downgrade() -> None:
    """Revert this revision."""
    op.drop_index("ix_deployment_keys_app_id", table_name="deployment_keys")
    op.drop_table("deployment_keys")
