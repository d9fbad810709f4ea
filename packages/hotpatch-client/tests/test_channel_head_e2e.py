"""Channel heads end to end: the real server app signs them, the real agent judges them (A5).

The app's trust root names the server's timestamp key. A mirror sits between
the device and the server: it forwards everything, except that it can answer
update checks with what it recorded earlier, or swap the offered release.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import attrs
import httpx
import pytest

from hotpatch_client import Agent, AgentConfig, SyncStatus
from hotpatch_client.testing import MemoryFileSystem, confirm_update, sample_bundle
from hotpatch_core.errors import ExpiredError, RollbackError, WithdrawnError
from hotpatch_core.manifest import Platform
from hotpatch_core.testing import make_pki
from hotpatch_server.testing import APP_ID, Server, in_process_server


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    """The real app on SQLite; the app's trust root names the server's timestamp key."""
    pki = make_pki(timestamp=True)
    with in_process_server(tmp_path / "server", pki=pki, timestamp_key=pki.timestamp) as harness:
        yield harness


@attrs.define
class Mirror:
    """Forwards to the server; answers checks with ``replay`` or with ``swap`` as the offer."""

    server: Server
    replay: dict[str, Any] | None = None
    swap: dict[str, Any] | None = None

    def handle(self, request: httpx.Request) -> httpx.Response:
        """Answer one device request."""
        if request.url.path == "/update/check" and self.replay is not None:
            return httpx.Response(200, json=self.replay)
        forwarded = self.server.client.request(
            request.method,
            request.url.path,
            params=request.url.params,
            headers={k: v for k, v in request.headers.items() if k.lower() != "host"},
            content=request.content,
        )
        if request.url.path == "/update/check" and self.swap is not None:
            answer = {**forwarded.json(), **self.swap}
            return httpx.Response(200, json=answer)
        return httpx.Response(
            forwarded.status_code, headers=forwarded.headers, content=forwarded.content
        )


def _agent(server: Server, mirror: Mirror, fs: MemoryFileSystem, device_id: str) -> Agent:
    config = AgentConfig(
        server_url="http://testserver.local",
        app_id=APP_ID,
        platform=Platform.ANDROID,
        native_version="1.0.0",
        trust_root=server.pki.root,
        device_id=device_id,
    )
    http = httpx.Client(transport=httpx.MockTransport(mirror.handle), base_url=config.server_url)
    return Agent(config, http=http, fs=fs, clock=server.clock)


def _publish(server: Server, sequence: int) -> dict[str, Any]:
    built = server.build(
        sequence=sequence, version=f"1.0.{sequence}", files=sample_bundle(f"v{sequence}")
    )
    response = server.publish(built)
    assert response.status_code == 201, response.text
    release: dict[str, Any] = response.json()
    return release


def _head(answer: dict[str, Any]) -> dict[str, Any]:
    envelope = json.loads(base64.b64decode(answer["head"]))
    document: dict[str, Any] = json.loads(base64.b64decode(envelope["payload"]))
    return document


def test_a5_a_withdrawn_release_is_refused_however_a_mirror_serves_it(server: Server) -> None:
    """The team archives v2 after a mirror recorded it; every way of serving it fails.

    - with the current head, which no longer lists it: ``WithdrawnError``;
    - replayed with its old head, to a device that has seen a newer head:
      ``RollbackError``;
    - replayed to a device that has not, once the old head expires (24 h):
      ``ExpiredError``. Before that, such a device takes it: the head's
      lifetime (``HOTPATCH_HEAD_LIFETIME``) bounds the replay.
    """
    _publish(server, 1)
    mirror = Mirror(server)
    seen_fs, fresh_fs = MemoryFileSystem(), MemoryFileSystem()
    with _agent(server, mirror, seen_fs, "device-1") as device:
        confirm_update(device)
        v1 = device.state.confirmed
        assert v1 is not None
        v2 = _publish(server, 2)
        recorded = server.check("device-1", currentManifestId=v1.manifest_id)
        assert recorded["manifestId"] == v2["manifestId"]
        assert [r["manifestId"] for r in _head(recorded)["releases"]] == [v2["manifestId"]]
        archived = server.client.delete(
            f"/releases/{v2['id']}", headers=server.auth(server.admin_key)
        )
        assert archived.status_code == 200, archived.text

        server.clock.advance(minutes=5)
        assert device.sync().status is SyncStatus.UP_TO_DATE  # the honest, current answer
        mirror.swap = {key: recorded[key] for key in recorded if key != "head"}
        assert isinstance(device.sync().error, WithdrawnError)
        mirror.swap, mirror.replay = None, recorded
        assert isinstance(device.sync().error, RollbackError)
        assert device.state.pending is None

    server.clock.advance(hours=24)
    with _agent(server, mirror, fresh_fs, "device-2") as fresh:
        fresh.on_launch()
        assert isinstance(fresh.sync().error, ExpiredError)
        assert fresh.state.pending is None
    assert not [p for p in fresh_fs.files() if p.startswith("downloads/")]


def test_heads_start_at_the_device_bundle_and_follow_rollout_changes(server: Server) -> None:
    """A device on v1 gets a head from v1 on; a rollout change is in the next head at once."""
    _publish(server, 1)
    v2 = _publish(server, 2)
    fresh = _head(server.check("device-1"))
    assert "after" not in fresh
    assert [r["sequence"] for r in fresh["releases"]] == [2, 1]
    v1_id = fresh["releases"][1]["manifestId"]
    on_v1 = _head(server.check("device-1", currentManifestId=v1_id))
    assert on_v1["after"] == {"epoch": 1, "sequence": 1}
    assert [r["sequence"] for r in on_v1["releases"]] == [2]
    changed = server.client.patch(
        f"/releases/{v2['id']}/rollout",
        json={"rolloutPercent": 5},
        headers=server.auth(server.publisher_key),
    )
    assert changed.status_code == 200, changed.text
    later = _head(server.check("device-1", currentManifestId=v1_id))
    assert later["releases"][0]["rolloutBasisPoints"] == 500
    assert later["issuedAt"] == on_v1["issuedAt"]  # the clock did not move; the content did
    assert later["expiresAt"] == on_v1["expiresAt"]


def test_the_default_head_lifetime_is_a_day(server: Server) -> None:
    """``HOTPATCH_HEAD_LIFETIME`` defaults to 24 hours: the longest a replayed answer lives."""
    head = _head(server.check("device-1"))
    issued, expires = (datetime.fromisoformat(head[k]) for k in ("issuedAt", "expiresAt"))
    assert expires - issued == timedelta(hours=24)
