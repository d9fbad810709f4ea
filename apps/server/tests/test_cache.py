from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from hotpatch_server import cache as cache_module
from hotpatch_server.cache import ActiveReleases
from hotpatch_server.migrate import upgrade
from hotpatch_server.testing import APP_ID, Server


def test_cache_stays_bounded_under_unknown_keys(tmp_path: Path) -> None:
    """Checks for endless made-up app ids never grow the cache past its bound."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'cache.db'}"
    upgrade(url)

    async def go() -> int:
        engine = create_async_engine(url)
        cache = ActiveReleases(async_sessionmaker(engine), ttl=60.0, max_keys=5)
        sizes = []
        for index in range(40):
            assert await cache.get(f"com.junk.app{index}", "android", "production") == ()
            sizes.append(len(cache._entries))
        await engine.dispose()
        return max(sizes)

    assert asyncio.run(go()) <= 5


def test_reports_never_invalidate_the_cache_and_exclusions_stay_bounded(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A flood of rolled_back reports reloads nothing; each release remembers a bounded set."""
    published = server.publish(server.build(sequence=1, version="1.0.1"))
    assert published.status_code == 201, published.text
    manifest_id = published.json()["manifestId"]
    monkeypatch.setattr(cache_module, "MAX_EXCLUDED_DEVICES", 5)
    dropped: list[object] = []
    monkeypatch.setattr(ActiveReleases, "forget", lambda _self, key: dropped.append(key))
    assert server.check("bot-0")["updateAvailable"] is True
    for index in range(20):
        server.clock.advance(seconds=1)  # distinct times: "newest" is well defined
        report = {"id": f"r{index}", "appId": APP_ID, "deviceId": f"bot-{index}",
                  "manifestId": manifest_id, "status": "rolled_back"}  # fmt: skip
        assert server.client.post("/installations", json=report).status_code == 201
    assert dropped == []  # twenty reports, not one invalidation

    async def load() -> tuple[set[str], set[str]]:
        engine = create_async_engine(server.settings.database_url)
        cache = ActiveReleases(async_sessionmaker(engine), ttl=3600.0)
        key = (APP_ID, "android", "production")
        try:
            (loaded,) = await cache.get(*key)
            from_database = set(loaded.rolled_back_devices)
            for index in range(20, 30):
                cache.exclude(key, manifest_id, f"late-{index}")
            return from_database, set(loaded.rolled_back_devices)
        finally:
            await engine.dispose()

    from_database, after = asyncio.run(load())
    assert from_database == {f"bot-{index}" for index in range(15, 20)}  # the newest five
    assert after == from_database  # full: later reports add nothing in memory either


def test_a_report_stored_while_releases_load_is_not_lost(server: Server) -> None:
    """A rolled-back report during a load reaches that load's result, not only the old entry.

    Before, a reload that began before the report committed replaced the
    entry without the device: for one cache lifetime the device was offered
    the release it had just rolled back.
    """
    published = server.publish(server.build(sequence=1, version="1.0.1"))
    assert published.status_code == 201, published.text
    manifest_id = published.json()["manifestId"]

    async def load_while_reporting() -> set[str]:
        engine = create_async_engine(server.settings.database_url)
        cache = ActiveReleases(async_sessionmaker(engine), ttl=3600.0)
        key = (APP_ID, "android", "production")
        try:
            loading = asyncio.create_task(cache.get(*key))
            await asyncio.sleep(0)  # the load has started and waits on the database
            cache.exclude(key, manifest_id, "reported-during-load")
            (loaded,) = await loading
            return set(loaded.rolled_back_devices)
        finally:
            await engine.dispose()

    assert asyncio.run(load_while_reporting()) == {"reported-during-load"}
