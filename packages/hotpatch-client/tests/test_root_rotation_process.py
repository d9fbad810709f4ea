"""A10 end to end: a real ``hotpatch-server`` process, a real device agent, a key rotation.

The publisher key K1 is compromised. The team signs trust root v2 (new
publisher K2, new epoch) with its offline root key and installs it with
``hotpatch-server rotate-trust-root``. Devices that embed root v1 walk to v2
by themselves, with no app-store release: they install what K2 signs, and
the server no longer takes what K1 signs.

The app's root also names the server's timestamp key, so every answer the
device takes, before and after the rotation, comes with a current channel
head signed by the server process.
"""

from __future__ import annotations

from pathlib import Path

import httpx

from hotpatch_client import Agent, AgentConfig, SyncStatus
from hotpatch_client.testing import sample_bundle
from hotpatch_core.machine import trusted_root
from hotpatch_core.manifest import Platform
from hotpatch_core.testing import build_release, make_pki, rotate_pki
from hotpatch_server.testing import APP_ID, server_process


def test_devices_follow_a_rotation_without_a_store_release(tmp_path: Path) -> None:
    """Compromise -> rotation -> the device adopts v2, installs K2's release; K1 is refused."""
    pki = make_pki(timestamp=True)
    assert pki.timestamp is not None
    stamp = tmp_path / "timestamp.pem"
    stamp.write_bytes(pki.timestamp.to_pem())
    with (
        server_process(
            tmp_path / "server",
            pki,
            HOTPATCH_CACHE_SECONDS="0.2",
            HOTPATCH_TIMESTAMP_KEY_FILE=str(stamp),
        ) as server,
        httpx.Client(timeout=30) as http,
    ):
        config = AgentConfig(
            server_url=server.base_url,
            app_id=APP_ID,
            platform=Platform.ANDROID,
            native_version="1.0.0",
            trust_root=pki.root,  # embedded in the binary: never changes in this test
            device_id="device-1",
        )
        v1 = build_release(sample_bundle("v1"), app_id=APP_ID, version="1.0.1")
        assert server.publish(v1.manifest, v1.archive).status_code == 201
        with Agent(config, http=http, storage_dir=tmp_path / "device") as agent:
            agent.on_launch()
            assert agent.sync().status is SyncStatus.STAGED
            assert agent.state.head_seen  # the server process's head was verified
            agent.on_launch()
            agent.notify_ready()

        rotated = rotate_pki(pki)  # v2: K2 only, epoch 2, signed by v1's root key
        root_v2 = tmp_path / "trust-root-v2.json"
        root_v2.write_bytes(rotated.root_bytes)
        assert "now trusts root v2" in server.admin(
            "rotate-trust-root", APP_ID, "--trust-root", str(root_v2)
        )
        published = httpx.get(f"{server.base_url}/apps/{APP_ID}/roots/2", timeout=10)
        assert published.content == rotated.root_bytes
        assert httpx.get(f"{server.base_url}/apps/{APP_ID}/roots/3", timeout=10).status_code == 404

        leaked = build_release(sample_bundle("evil"), app_id=APP_ID, version="6.6.6", sequence=50)
        refused = server.publish(leaked.manifest, leaked.archive)
        assert refused.status_code == 422, refused.text
        v2 = build_release(sample_bundle("v2"), app_id=APP_ID, version="1.0.2", epoch=2, sequence=1)
        accepted = server.publish(v2.manifest, v2.archive, signer=rotated.publisher)
        assert accepted.status_code == 201, accepted.text

        with Agent(config, http=http, storage_dir=tmp_path / "device") as agent:
            agent.on_launch()
            result = agent.sync()
            assert result.status is SyncStatus.STAGED, result.error
            assert trusted_root(agent.state, config.device_config()) == rotated.root
            assert agent.on_launch() is not None
            running = agent.state.running
            assert running is not None
            assert (running.epoch, running.sequence) == (2, 1)
            agent.notify_ready()
            assert agent.flush_reports() == 1  # the server took the applied report of v2
