"""Issue 18: the server's clock jumps forward and back by hours (docs/reliability.md).

Every wall-clock decision of the server goes through its one clock (the
harness's :class:`FakeClock`), so a jump is set on it. What users see:

- download URLs: a forward jump past a URL's expiry makes it 410 ("check
  again"), and the next check hands out one that works; a backward jump
  makes URLs live longer by the jump (the archives are content-addressed and
  verified on the device, so this opens nothing);
- access tokens: a forward jump past their lifetime makes them 401, and the
  refresh token gets a new pair; a backward jump makes them live longer by
  the jump;
- rate limits: fixed windows, so each jump starts a new window (at most one
  extra window's budget per jump) and the limit holds inside it;
- channel heads: never signed earlier than one this process already signed.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest

from hotpatch_core.envelope import decode_envelope
from hotpatch_server.testing import Server, in_process_server

JUMP = timedelta(hours=3)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    """The app with one-hour download URLs."""
    with in_process_server(tmp_path / "data", download_url_seconds=3600) as harness:
        yield harness


def _get(server: Server, url: str) -> httpx.Response:
    return server.client.get(httpx.URL(url).raw_path.decode())


def test_download_urls_across_clock_jumps(server: Server) -> None:
    """Forward past expiry: 410, and a fresh check works; back: URLs stay valid."""
    server.published(1)
    before = server.check()["bundleUrl"]
    assert _get(server, before).status_code == httpx.codes.OK
    server.clock.wall += JUMP
    expired = _get(server, before)
    assert expired.status_code == httpx.codes.GONE
    assert expired.json()["type"].endswith("/url-expired")
    fresh = server.check()["bundleUrl"]
    assert _get(server, fresh).status_code == httpx.codes.OK
    server.clock.wall -= 2 * JUMP
    assert _get(server, fresh).status_code == httpx.codes.OK
    assert _get(server, server.check()["bundleUrl"]).status_code == httpx.codes.OK


def test_access_tokens_across_clock_jumps(server: Server) -> None:
    """Forward past the lifetime: 401, the refresh token renews; back: still accepted."""
    tokens = server.client.post("/auth/token", json={"apiKey": server.publisher_key}).json()
    bearer = {"Authorization": f"Bearer {tokens['accessToken']}"}
    assert server.client.get("/releases", headers=bearer).status_code == httpx.codes.OK
    server.clock.wall += JUMP
    refused = server.client.get("/releases", headers=bearer)
    assert refused.status_code == httpx.codes.UNAUTHORIZED
    renewed = server.client.post("/auth/refresh", json={"refreshToken": tokens["refreshToken"]})
    assert renewed.status_code == httpx.codes.OK
    bearer = {"Authorization": f"Bearer {renewed.json()['accessToken']}"}
    assert server.client.get("/releases", headers=bearer).status_code == httpx.codes.OK
    server.clock.wall -= 2 * JUMP
    assert server.client.get("/releases", headers=bearer).status_code == httpx.codes.OK


def _exhaust(server: Server) -> int:
    """Ask for tokens until refused; return how many were granted."""
    granted = 0
    while True:
        answer = server.client.post("/auth/token", json={"apiKey": server.publisher_key})
        if answer.status_code == httpx.codes.TOO_MANY_REQUESTS:
            assert int(answer.headers["retry-after"]) >= 1
            return granted
        assert answer.status_code == httpx.codes.OK, answer.text
        granted += 1
        assert granted <= 1000, "the limit never applied"


def test_rate_limits_across_clock_jumps(server: Server) -> None:
    """Each jump starts one new window: the same budget again, never more, then 429."""
    budget = _exhaust(server)
    assert budget > 0
    server.clock.wall += JUMP
    assert _exhaust(server) == budget
    server.clock.wall -= 2 * JUMP
    assert _exhaust(server) == budget


def _issued(server: Server) -> datetime:
    answer = server.check()
    payload = json.loads(decode_envelope(base64.b64decode(answer["head"])).payload)
    return datetime.fromisoformat(payload["issuedAt"])


def test_channel_heads_do_not_go_back_with_the_clock(server: Server) -> None:
    """After a jump back, heads keep the newest time signed; a publish re-signs at it."""
    server.published(1)
    server.clock.wall += JUMP
    ahead = _issued(server)
    server.clock.wall -= 2 * JUMP
    assert _issued(server) == ahead
    server.published(2)  # the channel changes while the clock is behind
    assert _issued(server) == ahead
    assert server.check()["sequence"] == 2
