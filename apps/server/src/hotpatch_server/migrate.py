"""Run the schema migrations (Alembic) against a database URL."""

from __future__ import annotations

import os
from pathlib import Path

from alembic import command
from alembic.config import Config

from hotpatch_server.settings import sqlite_path

__all__ = ["alembic_config", "upgrade"]

_SCRIPTS = Path(__file__).with_name("migrations")


def alembic_config(database_url: str) -> Config:
    """Return an Alembic configuration for ``database_url`` using the packaged scripts."""
    config = Config()
    config.set_main_option("script_location", str(_SCRIPTS))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Migrate the database at ``database_url`` to ``revision`` (blocking; not in an event loop).

    A SQLite database file is made private (0600) first; SQLite gives its
    journal and WAL files the same mode.
    """
    _private_sqlite_file(database_url)
    command.upgrade(alembic_config(database_url), revision)


def _private_sqlite_file(database_url: str) -> None:
    path = sqlite_path(database_url)
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_NOFOLLOW, 0o600))
    path.chmod(0o600)
