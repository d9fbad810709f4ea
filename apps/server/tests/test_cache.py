from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from hotpatch_server.cache import ActiveReleases
from hotpatch_server.migrate import upgrade


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
