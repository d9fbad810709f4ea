"""Server test harness: the real app in-process, on SQLite and (when configured) PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from hotpatch_server.migrate import upgrade
from hotpatch_server.testing import Server, in_process_server

PG_URL = os.environ.get("HOTPATCH_TEST_DATABASE_URL", "")
TABLES = [
    "codepush_diffs",
    "expo_directives",
    "expo_updates",
    "expo_assets",
    "patches",
    "installations",
    "refresh_tokens",
    "audit_log",
    "devices",
    "releases",
    "api_keys",
    "deployment_keys",
    "trust_roots",
    "apps",
]


async def _admin_execute(url: str, *statements: str) -> None:
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            for statement in statements:
                await connection.execute(text(statement))
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
def postgres_url(worker_id: str) -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for this test worker."""
    if not PG_URL:
        pytest.skip("PostgreSQL tests need HOTPATCH_TEST_DATABASE_URL (set by .ci/run)")
    name = f"hotpatch_test_{worker_id}_{uuid.uuid4().hex[:8]}"
    try:
        asyncio.run(_admin_execute(PG_URL, f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001 - any failure to reach PostgreSQL means skip
        pytest.skip(f"PostgreSQL at HOTPATCH_TEST_DATABASE_URL is unreachable: {exc}")
    url = PG_URL.rsplit("/", 1)[0] + f"/{name}"
    upgrade(url)
    yield url
    asyncio.run(_admin_execute(PG_URL, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each server test runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'hotpatch.db'}"
    url: str = request.getfixturevalue("postgres_url")
    asyncio.run(_admin_execute(url, f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE"))
    return url


@pytest.fixture
def server(database_url: str, tmp_path: Path) -> Iterator[Server]:
    """The app on ``database_url`` with an admin key, app com.example.app and a publisher key."""
    with in_process_server(tmp_path / "data", database_url) as harness:
        yield harness
