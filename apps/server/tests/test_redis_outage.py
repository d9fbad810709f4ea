"""Redis goes away under a real server process, and comes back (issue 18, the Redis probe).

Before: ``/health`` kept answering ``ok`` with Redis down, the invalidation
listener logged a full traceback every 0.2 s, and a publish or a report
needing a shared rate limit failed. The test starts a Redis of its own
(never the machine's shared one), stops it under the server and starts it
again.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from hotpatch_core.testing import build_release
from hotpatch_server.fault_injection import PrivateRedis
from hotpatch_server.testing import APP_ID, ServerProcess, server_process


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    """A Redis started for this test, stopped at its end."""
    if (why := PrivateRedis.available()) is not None:
        pytest.skip(why)
    redis = PrivateRedis(tmp_path)
    redis.start()
    yield redis
    redis.stop()


def _health(server: ServerProcess) -> tuple[int, object]:
    response = httpx.get(f"{server.base_url}/health", timeout=5)
    return response.status_code, response.json()


def _wait_for(server: ServerProcess, expected: object, seconds: float = 15) -> None:
    deadline = time.monotonic() + seconds
    while (seen := _health(server)) != expected:
        if time.monotonic() > deadline:
            pytest.fail(f"/health answered {seen}, not {expected}")
        time.sleep(0.2)


def _publish(server: ServerProcess, sequence: int) -> str:
    built = build_release(
        {"index.android.bundle": f"release {sequence}".encode()},
        app_id=APP_ID,
        sequence=sequence,
        version=f"1.0.{sequence}",
    )
    response = server.publish(built.manifest, built.archive)
    assert response.status_code == 201, response.text
    manifest_id: str = response.json()["manifestId"]
    return manifest_id


def _check(server: ServerProcess, device: str) -> httpx.Response:
    return httpx.get(
        f"{server.base_url}/update/check",
        params={"appId": APP_ID, "platform": "android", "channel": "production",
                "deviceId": device, "nativeVersion": "1.0.0"},
    )  # fmt: skip


def test_the_server_serves_through_a_redis_outage_and_says_so_once(
    tmp_path: Path, private_redis: PrivateRedis
) -> None:
    """Degraded, not down: every request is served; one log line out, one back."""
    with (
        (tmp_path / "server.log").open("w+") as log,
        server_process(tmp_path / "data", output=log, REDIS_URL=private_redis.url) as server,
    ):
        assert _health(server) == (200, {"status": "ok", "database": "ok", "cache": "ok"})
        _publish(server, 1)
        private_redis.stop()
        _wait_for(server, (200, {"status": "degraded", "database": "ok", "cache": "unavailable"}))
        second = _publish(server, 2)  # a shared rate limit and an announcement, without Redis
        assert _check(server, "device-1").json()["manifestId"] == second
        report = httpx.post(
            f"{server.base_url}/installations",
            json={"id": "r-1", "appId": APP_ID, "deviceId": "device-1",
                  "manifestId": second, "status": "applied"},
        )  # fmt: skip
        assert report.status_code in {200, 201}, report.text
        time.sleep(3)  # several reconnection attempts of the invalidation listener
        private_redis.start()
        _wait_for(server, (200, {"status": "ok", "database": "ok", "cache": "ok"}))
        assert _publish(server, 3) == _check(server, "device-2").json()["manifestId"]
    text = (tmp_path / "server.log").read_text()
    assert text.count("Redis is unavailable") == 1, text
    assert text.count("Redis is back") == 1, text
    assert "Traceback" not in text
