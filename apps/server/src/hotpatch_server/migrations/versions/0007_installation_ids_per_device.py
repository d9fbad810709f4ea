"""installation report ids are unique per app and device, and as long as they validate

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 19:40:00

The primary key was the client-chosen id alone, so a report filed under
another app squatted a victim's id and its rollback was never stored; and
ids of 65 to 128 characters passed validation but not VARCHAR(64). The
table is rebuilt with the key (app_id, device_id, id) and id VARCHAR(128).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_COLUMNS = (
    "app_id, device_id, id, release_id, manifest_id, status, phase, reason, patched_from, "
    "created_at"
)


_FIRST_HOLDER = (
    "length(i.id) <= 64 AND NOT EXISTS (SELECT 1 FROM installations AS o WHERE o.id = i.id "
    "AND (o.app_id, o.device_id) < (i.app_id, i.device_id))"
)


def _create(name: str, id_length: int, key: tuple[str, ...]) -> None:
    op.create_table(
        name,
        sa.Column("app_id", sa.String(length=128), nullable=False),
        sa.Column("device_id", sa.String(length=128), nullable=False),
        sa.Column("id", sa.String(length=id_length), nullable=False),
        sa.Column("release_id", sa.Integer(), sa.ForeignKey("releases.id"), nullable=True),
        sa.Column("manifest_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("phase", sa.String(length=16), nullable=True),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("patched_from", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint(*key),
    )


def _rebuild(id_length: int, key: tuple[str, ...], copy: str) -> None:
    op.drop_index("ix_installation_device", table_name="installations")
    op.drop_index("ix_installations_manifest_id", table_name="installations")
    _create("installations_new", id_length, key)
    op.execute(f"INSERT INTO installations_new ({_COLUMNS}) {copy}")
    op.drop_table("installations")
    op.rename_table("installations_new", "installations")
    op.create_index("ix_installation_device", "installations", ["app_id", "device_id", "status"])
    op.create_index("ix_installations_manifest_id", "installations", ["manifest_id"])


def upgrade() -> None:
    """Apply this revision."""
    copy = f"SELECT {_COLUMNS} FROM installations"  # noqa: S608 - constant names, no input
    _rebuild(128, ("app_id", "device_id", "id"), copy)


def downgrade() -> None:
    """Revert this revision (ids longer than 64 characters, or repeated across devices, go)."""
    # The first holder of each id keeps it; constant names, no input.
    first = f"SELECT {_COLUMNS} FROM installations AS i WHERE {_FIRST_HOLDER}"  # noqa: S608
    _rebuild(64, ("id",), first)
