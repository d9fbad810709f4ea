"""Server test harness: the real app in-process, on SQLite and (when configured) PostgreSQL."""

from __future__ import annotations

import asyncio
import base64
import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import attrs
import pytest
from litestar.testing import TestClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from hotpatch_core.release import sign_release
from hotpatch_core.testing import PKI, BuiltRelease, build_release, make_pki
from hotpatch_server.app import create_app
from hotpatch_server.migrate import upgrade
from hotpatch_server.settings import Settings

PG_URL = os.environ.get("HOTPATCH_TEST_DATABASE_URL", "")
APP_ID = "com.example.app"
OTHER_APP = "com.other.app"
TABLES = ["installations", "refresh_tokens", "audit_log", "devices", "releases", "api_keys", "apps"]


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


class Clock:
    """A settable clock for the app."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@attrs.define
class Server:
    """The app under test, with helpers to act as an admin, a publisher and a device."""

    client: TestClient[Any]
    settings: Settings
    clock: Clock
    pki: PKI
    admin_key: str
    publisher_key: str

    def auth(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.publisher_key}"}

    def create_app(self, app_id: str, pki: PKI) -> Any:
        return self.client.post(
            "/apps",
            json={"id": app_id, "trustRoot": base64.b64encode(pki.root_bytes).decode()},
            headers=self.auth(self.admin_key),
        )

    def create_key(self, role: str, apps: list[str], **extra: Any) -> str:
        response = self.client.post(
            "/keys",
            json={"name": f"{role}-key", "role": role, "apps": apps, **extra},
            headers=self.auth(self.admin_key),
        )
        assert response.status_code == 201, response.text
        key: str = response.json()["key"]
        return key

    def build(self, **kwargs: Any) -> BuiltRelease:
        files = kwargs.pop("files", None) or {
            "index.android.bundle": f"release {kwargs.get('sequence', 1)}".encode() * 20,
            "assets/logo.png": b"\x89PNG" + bytes(100),
        }
        return build_release(files, app_id=kwargs.pop("app_id", APP_ID), **kwargs)

    def publish(
        self,
        built: BuiltRelease,
        *,
        envelope: bytes | None = None,
        archive: bytes | None = None,
        key: str | None = None,
        app_id: str | None = None,
        fields: dict[str, str] | None = None,
    ) -> Any:
        envelope = envelope if envelope is not None else sign_release(built.manifest, [self.pki.publisher])
        data = {"appId": app_id or built.manifest.app_id, "rollout": "100", **(fields or {})}
        return self.client.post(
            "/releases",
            data=data,
            files={
                "manifest": ("manifest.json", envelope, "application/json"),
                "archive": ("release.zip", archive if archive is not None else built.archive, "application/zip"),
            },
            headers=self.auth(key),
        )

    def check(self, device_id: str = "device-1", **params: Any) -> Any:
        query = {
            "appId": APP_ID,
            "platform": "android",
            "channel": "production",
            "deviceId": device_id,
            "nativeVersion": "1.0.0",
            **params,
        }
        response = self.client.get("/update/check", params=query)
        assert response.status_code == 200, response.text
        return response.json()

    def release_rows(self) -> int:
        listing = self.client.get("/releases", headers=self.auth(self.admin_key))
        return len(listing.json())

    def blobs(self) -> list[Path]:
        root = self.settings.blob_dir
        return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def _bootstrap_admin(settings: Settings) -> str:
    from hotpatch_server.auth import Role, create_api_key  # noqa: PLC0415

    async def go() -> str:
        from sqlalchemy.ext.asyncio import async_sessionmaker  # noqa: PLC0415

        engine = create_async_engine(settings.database_url)
        async with async_sessionmaker(engine)() as session:
            _, key = await create_api_key(
                session, name="admin", role=Role.ADMIN, apps=["*"], now=datetime.now(UTC)
            )
            await session.commit()
        await engine.dispose()
        return key

    return asyncio.run(go())


@pytest.fixture
def server(database_url: str, tmp_path: Path) -> Iterator[Server]:
    """The app on ``database_url`` with an admin key, app com.example.app and a publisher key."""
    settings = attrs.evolve(
        Settings.from_env(
            {
                "HOTPATCH_DATA_DIR": str(tmp_path / "data"),
                "DATABASE_URL": database_url,
                "JWT_SECRET": "x" * 48,
                "HOTPATCH_PUBLIC_URL": "http://testserver.local",
            }
        ),
        device_flush_seconds=0.05,
    )
    upgrade(settings.database_url)
    admin_key = _bootstrap_admin(settings)
    clock = Clock()
    app = create_app(settings, clock=clock, migrate=False)
    pki = make_pki()
    with TestClient(app, base_url="http://testserver.local") as client:
        harness = Server(client, settings, clock, pki, admin_key, "")
        assert harness.create_app(APP_ID, pki).status_code == 201
        harness.publisher_key = harness.create_key("publisher", [APP_ID])
        yield harness
