"""The migrations build exactly the schema the models describe."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, text

from hotpatch_server.migrate import upgrade
from hotpatch_server.models import Base


def test_migrations_match_the_models(tmp_path: Path) -> None:
    """Upgrading an empty database to head leaves nothing for autogenerate to add or change."""
    database = tmp_path / "schema.db"
    upgrade(f"sqlite+aiosqlite:///{database}")
    engine = create_engine(f"sqlite:///{database}")
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            differences = compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()
    assert differences == []


def test_existing_apps_keep_their_current_root_as_the_first_served_version(
    tmp_path: Path,
) -> None:
    """0006 copies each app's current trust root into the version history devices walk."""
    database = tmp_path / "old.db"
    upgrade(f"sqlite+aiosqlite:///{database}", "0005")
    engine = create_engine(f"sqlite:///{database}")
    try:
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO apps (id, name, trust_root, trust_root_version, created_at) "
                    "VALUES ('com.acme.shop', 'Shop', :root, 3, '2026-11-29 12:00:00')"
                ),
                {"root": b"root v3 envelope"},
            )
        upgrade(f"sqlite+aiosqlite:///{database}")
        with engine.connect() as connection:
            rows = connection.execute(
                text("SELECT app_id, version, envelope FROM trust_roots")
            ).all()
    finally:
        engine.dispose()
    assert [tuple(row) for row in rows] == [("com.acme.shop", 3, b"root v3 envelope")]
