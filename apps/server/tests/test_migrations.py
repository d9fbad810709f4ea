"""The migrations build exactly the schema the models describe."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

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
