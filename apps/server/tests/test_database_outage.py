"""PostgreSQL goes away under a real server process, and comes back (issue 18).

Before: a check of a channel not yet cached, a publish or a report got 500
with a traceback in the log per request; the cache logged a traceback per
refresh and the device tracker one per flush, and dropped the check-ins it
could not write. The test makes a PostgreSQL cluster of its own with
``initdb`` in a temporary directory (never the machine's shared server),
stops it under the server and starts it again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from hotpatch_core.testing import build_release
from hotpatch_server.fault_injection import PrivatePostgres, postgres_bin
from hotpatch_server.testing import APP_ID, ServerProcess, server_process


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    """A PostgreSQL made for this test, stopped and removed at its end."""
    if (why := PrivatePostgres.available()) is not None:
        pytest.skip(why)
    database = PrivatePostgres(postgres_bin() or Path())
    database.init()
    database.start()
    yield database
    database.remove()


def _check(server: ServerProcess, device: str, **params: str) -> httpx.Response:
    query = {"appId": APP_ID, "platform": "android", "deviceId": device, "nativeVersion": "1.0.0"}
    return httpx.get(f"{server.base_url}/update/check", params={**query, **params}, timeout=10)


def _devices(url: str) -> set[str]:
    async def read() -> set[str]:
        engine = create_async_engine(url)
        try:
            async with engine.connect() as connection:
                rows = await connection.execute(text("SELECT device_id FROM devices"))
                return {row[0] for row in rows}
        finally:
            await engine.dispose()

    return asyncio.run(read())


def test_a_database_restart_costs_503s_with_retry_after_and_loses_nothing(
    private_postgres: PrivatePostgres, tmp_path: Path
) -> None:
    """Stop PostgreSQL under a serving process, use the API, start it again.

    While it is away: checks of a channel the process has loaded are answered
    from its cache; a channel it has not, a publish, a report, the API and
    ``/health`` get 503 with ``Retry-After``. Once it is back, without a
    restart of the server: the pool reconnects, the check-ins made during the
    outage are written, and a publish succeeds. The log has one line for the
    outage and one for the recovery, and no traceback.
    """
    log = tmp_path / "server.log"
    with (
        log.open("w") as output,
        server_process(
            tmp_path / "server", output=output, DATABASE_URL=private_postgres.url,
            JWT_SECRET="s" * 48, HOTPATCH_CACHE_SECONDS="0.5",
            HOTPATCH_DEVICE_FLUSH_SECONDS="0.2", HOTPATCH_AUTO_PATCHES="0",
        ) as server,
    ):  # fmt: skip
        v1 = build_release({"index.android.bundle": b"v1" * 100}, app_id=APP_ID, version="1.0.1")
        assert server.publish(v1.manifest, v1.archive).status_code == 201
        offered = _check(server, "device-1").json()
        assert offered["updateAvailable"]

        private_postgres.stop()
        time.sleep(1.0)  # the cache entry expires: its refresh fails, the stale entry serves
        for device in ("device-1", "outage-1", "outage-2"):
            during = _check(server, device)
            assert during.status_code == 200, during.text
            assert during.json()["manifestId"] == offered["manifestId"]
        v2 = build_release(
            {"index.android.bundle": b"v2" * 100}, app_id=APP_ID, version="1.0.2", sequence=2
        )
        report = {"id": "r-1", "appId": APP_ID, "deviceId": "device-1",
                  "manifestId": offered["manifestId"], "status": "applied"}  # fmt: skip
        refused = [
            _check(server, "device-1", channel="beta"),
            server.publish(v2.manifest, v2.archive),
            httpx.post(f"{server.base_url}/installations", json=report, timeout=10),
            httpx.get(
                f"{server.base_url}/releases",
                headers={"Authorization": f"Bearer {server.publisher_key}"},
                timeout=10,
            ),
            httpx.get(f"{server.base_url}/health", timeout=10),
        ]
        for response in refused:
            assert response.status_code == 503, response.text
            assert response.headers["retry-after"] == "5"
        time.sleep(0.5)  # several device flushes fail meanwhile

        private_postgres.start()
        deadline = time.monotonic() + 20
        while httpx.get(f"{server.base_url}/health", timeout=10).status_code != 200:
            assert time.monotonic() < deadline, "the server did not reconnect by itself"
            time.sleep(0.2)
        assert _check(server, "device-1", channel="beta").status_code == 200
        assert server.publish(v2.manifest, v2.archive).status_code == 201
        deadline = time.monotonic() + 10
        while not {"outage-1", "outage-2"} <= _devices(private_postgres.url):
            assert time.monotonic() < deadline, "check-ins made during the outage were lost"
            time.sleep(0.2)
        blobs = [p for p in (tmp_path / "server" / "blobs").rglob("*") if p.is_file()]
        assert len(blobs) == 2  # v1 and v2 (no patches made): the refused publish left nothing

    text_log = log.read_text()
    assert text_log.count("The database is unavailable") == 1, text_log
    assert text_log.count("The database is back") == 1, text_log
    assert "Traceback" not in text_log
