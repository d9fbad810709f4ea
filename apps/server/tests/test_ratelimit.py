from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import attrs
import pytest
from litestar.testing import TestClient

from hotpatch_core.testing import make_pki
from hotpatch_server.app import create_app
from hotpatch_server.migrate import upgrade
from hotpatch_server.settings import Settings
from hotpatch_server.testing import APP_ID, FakeClock, Server, assert_no_offer, bootstrap_admin

REDIS_URL = os.environ.get("HOTPATCH_TEST_REDIS_URL", "")


def _settings(tmp_path: Path, **changes: Any) -> Settings:
    base = Settings.from_env(
        {
            "HOTPATCH_DATA_DIR": str(tmp_path / "data"),
            "HOTPATCH_PUBLIC_URL": "http://testserver.local",
        }
    )
    return attrs.evolve(base, **changes)


@pytest.fixture
def redis_url() -> str:
    """The test Redis, or skip."""
    if not REDIS_URL:
        pytest.skip("Redis tests need HOTPATCH_TEST_REDIS_URL (set by .ci/run)")
    import redis  # noqa: PLC0415 - only to probe reachability

    try:
        redis.Redis.from_url(REDIS_URL, socket_timeout=2).ping()
    except redis.RedisError as exc:
        pytest.skip(f"Redis at HOTPATCH_TEST_REDIS_URL is unreachable: {exc}")
    return REDIS_URL


def _server(settings: Settings, client: TestClient[Any], clock: FakeClock, admin: str) -> Server:
    return Server(client, settings, clock, make_pki(), admin, "")


def test_auth_burst_gets_429_with_retry_after(tmp_path: Path) -> None:
    """Bursts on /auth/token are limited: 429 with Retry-After (S5)."""
    settings = _settings(tmp_path, rate_limit_scale=0.1)  # 2 per minute
    upgrade(settings.database_url)
    with TestClient(create_app(settings, clock=FakeClock(), migrate=False)) as client:
        statuses = [
            client.post("/auth/token", json={"apiKey": "hp_x"}).status_code for _ in range(4)
        ]
        limited = client.post("/auth/token", json={"apiKey": "hp_x"})
    assert statuses[:2] == [401, 401]
    assert 429 in statuses[2:]
    assert limited.status_code == 429
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    assert limited.json()["type"].endswith("rate-limited")


def test_device_checks_and_reports_are_limited_per_device(tmp_path: Path) -> None:
    """One device flooding checks or reports is limited; another device is not (S5, S10)."""
    settings = _settings(tmp_path, rate_limit_scale=0.1)  # 3 checks, 6 reports per minute
    upgrade(settings.database_url)
    with TestClient(create_app(settings, clock=FakeClock(), migrate=False)) as client:
        params = {
            "appId": APP_ID,
            "platform": "android",
            "deviceId": "flood",
            "nativeVersion": "1.0",
        }
        checks = [client.get("/update/check", params=params).status_code for _ in range(5)]
        other = client.get("/update/check", params={**params, "deviceId": "calm"}).status_code
        report = {
            "appId": APP_ID,
            "deviceId": "flood",
            "manifestId": "a" * 64,
            "status": "rolled_back",
        }
        reports = [
            client.post("/installations", json={**report, "id": f"r{i}"}).status_code
            for i in range(10)
        ]
    assert checks[:3] == [200, 200, 200]
    assert checks[3:] == [429, 429]
    assert other == 200
    assert reports[:6] == [201] * 6
    assert set(reports[6:]) == {429}


def test_reports_and_registrations_are_limited_per_client_address(tmp_path: Path) -> None:
    """Inventing a device id per request does not escape the per-address budget (S10)."""
    settings = _settings(tmp_path, rate_limit_scale=0.01)  # 12 a minute per address
    upgrade(settings.database_url)
    with TestClient(create_app(settings, clock=FakeClock(), migrate=False)) as client:
        statuses = []
        for index in range(16):
            device = f"bot-{index}"
            if index % 2:
                body = {"appId": APP_ID, "deviceId": device, "platform": "android",
                        "nativeVersion": "1.0"}  # fmt: skip
                statuses.append(client.post("/devices", json=body).status_code)
            else:
                body = {"id": f"r{index}", "appId": APP_ID, "deviceId": device,
                        "manifestId": "a" * 64, "status": "rolled_back"}  # fmt: skip
                statuses.append(client.post("/installations", json=body).status_code)
    assert set(statuses[:12]) <= {201}
    assert set(statuses[12:]) == {429}


def test_redis_shares_budgets_and_invalidations_across_instances(
    tmp_path: Path, redis_url: str
) -> None:
    """Two app instances on one database and Redis: one budget, and a publish is seen at once."""
    prefix = f"hotpatch-test-{uuid.uuid4().hex[:8]}"
    settings = _settings(
        tmp_path,
        redis_url=redis_url,
        redis_prefix=prefix,
        rate_limit_scale=0.1,
        active_cache_seconds=600.0,
    )
    upgrade(settings.database_url)
    clock = FakeClock()
    admin = bootstrap_admin(settings, clock())
    with (
        TestClient(
            create_app(settings, clock=clock, migrate=False), base_url="http://testserver.local"
        ) as one,
        TestClient(
            create_app(settings, clock=clock, migrate=False), base_url="http://testserver.local"
        ) as two,
    ):
        first = _server(settings, one, clock, admin)
        assert first.create_app(APP_ID, first.pki).status_code == 201
        first.publisher_key = first.create_key("publisher", [APP_ID])
        second = _server(settings, two, clock, admin)
        assert_no_offer(second.check("device-1"))  # primes two's cache
        assert first.publish(first.build(sequence=1)).status_code == 201
        assert _eventually(lambda: second.check("device-2")["updateAvailable"])
        hits = [c.post("/auth/token", json={"apiKey": "hp_x"}).status_code for c in (one, two, one)]
    assert hits == [401, 401, 429]


def _eventually(condition: Any, seconds: float = 5.0) -> bool:
    import time  # noqa: PLC0415

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False
