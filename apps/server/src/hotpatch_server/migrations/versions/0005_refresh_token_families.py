"""refresh tokens belong to a family that reuse revokes

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 17:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table("refresh_tokens") as batch:
        batch.add_column(sa.Column("family", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True))
        batch.create_index("ix_refresh_tokens_family", ["family"])


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("refresh_tokens") as batch:
        batch.drop_index("ix_refresh_tokens_family")
        batch.drop_column("revoked_at")
        batch.drop_column("family")
