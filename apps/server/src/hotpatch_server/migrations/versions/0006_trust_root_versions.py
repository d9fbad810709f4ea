"""every version of an app's trust root is kept, for devices to walk N -> N+1

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 19:00:00

Before this revision only the current root was stored; it becomes the first
row of each app's history (older versions were not kept and cannot be
recovered: a device that embeds one of them needs the root it was rotated
from installed with ``hotpatch-server rotate-trust-root`` again, or a new binary).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "trust_roots",
        sa.Column("app_id", sa.String(length=128), sa.ForeignKey("apps.id"), nullable=False),
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("envelope", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("app_id", "version"),
    )
    op.execute(
        "INSERT INTO trust_roots (app_id, version, envelope, created_at) "
        "SELECT id, trust_root_version, trust_root, created_at FROM apps"
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_table("trust_roots")
