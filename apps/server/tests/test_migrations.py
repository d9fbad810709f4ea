"""The migrations build exactly the schema the models describe."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, text

from hotpatch_server.migrate import alembic_config, upgrade
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


def test_installation_reports_survive_the_move_to_per_device_ids(tmp_path: Path) -> None:
    """0007 keeps every report; going back keeps the first holder of each id."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'reports.db'}"
    upgrade(url, "0006")
    engine = create_engine(f"sqlite:///{tmp_path / 'reports.db'}")
    insert = text(
        "INSERT INTO installations (id, app_id, device_id, manifest_id, status, reason, "
        "created_at) VALUES (:id, 'com.a.b', :device, :m, 'applied', '', '2026-11-29 12:00:00')"
    )
    select_all = text("SELECT app_id, device_id, id FROM installations ORDER BY device_id, id")
    try:
        with engine.begin() as connection:
            for report_id, device in (("r1", "d1"), ("r2", "d1"), ("r3", "d2")):
                connection.execute(insert, {"id": report_id, "device": device, "m": "a" * 64})
        upgrade(url)
        with engine.begin() as connection:
            before = connection.execute(select_all).all()
            connection.execute(insert, {"id": "r1", "device": "d2", "m": "b" * 64})
        command.downgrade(alembic_config(url), "0006")
        with engine.connect() as connection:
            after = connection.execute(select_all).all()
    finally:
        engine.dispose()
    assert [tuple(r) for r in before] == [("com.a.b", "d1", "r1"), ("com.a.b", "d1", "r2"),
                                          ("com.a.b", "d2", "r3")]  # fmt: skip
    assert [tuple(r) for r in after] == [tuple(r) for r in before]
