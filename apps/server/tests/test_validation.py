"""Validation is exact and equal to the columns (docs/security.md S4, issue: validation)."""

from __future__ import annotations

import asyncio
import base64
import re
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import String, select
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from hotpatch_core.testing import make_pki
from hotpatch_core.versions import Version
from hotpatch_server import fields
from hotpatch_server.devices import query as device_query
from hotpatch_server.devices import tracker as device_tracker
from hotpatch_server.migrate import upgrade
from hotpatch_server.models import ApiKey, App, DeploymentKey, Device, Installation
from hotpatch_server.testing import Server


def _length(column: object) -> int:
    kind = getattr(column, "type", None)
    assert isinstance(kind, String)
    assert kind.length is not None
    return kind.length


#: Each validator of text that is stored, and every column it is stored in.
STORED = [
    (fields.APP_ID, [App.id, Device.app_id, Installation.app_id]),
    (device_query.DEVICE_ID, [Device.device_id, Installation.device_id, Installation.id]),
    (device_query.CHANNEL, [Device.channel, DeploymentKey.channel]),
    (device_query.NATIVE_TEXT, [Device.native_version]),
    (device_query.MANIFEST_ID, [Device.current_manifest_id, Installation.manifest_id]),
    (device_query.PLATFORM, [Device.platform, DeploymentKey.platform]),
]


@pytest.mark.parametrize(("pattern", "columns"), STORED, ids=[p.pattern[:24] for p, _ in STORED])
def test_every_stored_validator_fits_its_columns(
    pattern: re.Pattern[str], columns: list[object]
) -> None:
    """Whatever a validator accepts, each column it lands in can store (no NUL, not too long)."""

    @settings(max_examples=200, deadline=None)
    @given(st.from_regex(pattern, fullmatch=True))
    def fits(value: str) -> None:
        assert pattern.fullmatch(value)
        assert "\x00" not in value
        for column in columns:
            assert len(value) <= _length(column)

    fits()


def test_name_limits_are_the_columns() -> None:
    """Display names are capped at exactly the name columns' length."""
    assert fields.NAME_CHARS == _length(App.name) == _length(ApiKey.name)
    assert _length(App.id) == fields.APP_ID_CHARS


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/apps", {"id": "a" * 129}, "id"),
        ("/apps", {"id": "bad\x00id"}, "id"),
        ("/apps", {"id": "com.ok.app\n"}, "id"),
        ("/apps", {"id": "com.ok.app", "name": "x" * 201}, "name"),
        ("/apps", {"id": "com.ok.app", "name": "nul\x00name"}, "name"),
        ("/keys", {"name": "nul\x00", "role": "viewer", "apps": ["*"]}, "name"),
        ("/keys", {"name": "k" * 201, "role": "viewer", "apps": ["*"]}, "name"),
        ("/keys", {"name": "k", "role": "viewer", "apps": ["bad id"]}, "apps"),
        ("/keys", {"name": "k", "role": "viewer", "apps": ["a" * 129]}, "apps"),
    ],
)
def test_admin_bodies_refuse_nul_and_over_long_names(
    server: Server, path: str, body: dict[str, object], field: str
) -> None:
    """NUL, control characters and over-long names are a 422 naming the field, never a 500."""
    if path == "/apps":
        body = {"trustRoot": base64.b64encode(make_pki().root_bytes).decode(), **body}
    answer = server.client.post(path, json=body, headers=server.auth(server.admin_key))
    assert answer.status_code == 422, answer.text
    assert answer.json()["field"] == field


def test_one_bad_row_never_drops_a_device_batch(database_url: str) -> None:
    """A row the database refuses is skipped alone: the rest of the batch is written."""
    upgrade(database_url)
    now = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)

    async def go() -> list[str]:
        engine = create_async_engine(database_url)
        sessions = async_sessionmaker(engine, expire_on_commit=False)
        try:
            async with sessions() as session:
                session.add(App(id="com.b.app", name="b", trust_root=b"r", trust_root_version=1,
                                created_at=now))  # fmt: skip
                await session.commit()
            tracker = device_tracker.DeviceTracker(sessions)
            for device in ("good-1", "x" * 300 + "\x00", "good-2"):  # too long, and a NUL
                query = device_query.CheckQuery("com.b.app", "android", "production", device,
                                           Version(1, 0, 0), "1.0.0", None, None)  # fmt: skip
                tracker.note(query, now)
            await tracker.flush()
            async with sessions() as session:
                return sorted((await session.execute(select(Device.device_id))).scalars())
        finally:
            await engine.dispose()

    written = asyncio.run(go())
    assert {"good-1", "good-2"} <= set(written)
