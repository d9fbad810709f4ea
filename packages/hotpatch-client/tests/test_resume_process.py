"""A download killed midway (a real process, a real server on loopback) resumes where it stopped."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from hotpatch_client import Agent, AgentConfig, SyncStatus
from hotpatch_core.manifest import Platform
from hotpatch_core.testing import build_release
from hotpatch_server.testing import APP_ID, server_process

# The device process: downloads slowly (its progress callback sleeps) so the
# test can kill it halfway.
DEVICE = """
import sys, time, httpx
from pathlib import Path
from hotpatch_client import Agent, AgentConfig
from hotpatch_core.manifest import Platform
from hotpatch_core.trust import load_trust_root

server, root, storage = sys.argv[1:4]
config = AgentConfig(server_url=server, app_id="com.example.app", platform=Platform.ANDROID,
                     native_version="1.0.0", trust_root=load_trust_root(Path(root).read_bytes()),
                     device_id="device-1")
with httpx.Client() as http, Agent(config, http=http, storage_dir=storage) as agent:
    agent.on_launch()
    agent.sync(lambda progress: time.sleep(0.05))
"""


def test_killed_download_fetches_only_the_rest(tmp_path: Path) -> None:
    """Killed download fetches only the rest."""
    with server_process(tmp_path / "server") as server:
        payload = random.Random(4).randbytes(4 * 1024 * 1024)  # incompressible
        built = build_release({"index.android.bundle": payload}, app_id=APP_ID)
        published = server.publish(built.manifest, built.archive)
        assert published.status_code == 201, published.text
        manifest_id = published.json()["manifestId"]
        length = built.manifest.archive.length
        root = tmp_path / "root.json"
        root.write_bytes(server.pki.root_bytes)
        storage = tmp_path / "device"
        part = storage / "downloads" / f"{manifest_id}.part"

        device = subprocess.Popen(
            [sys.executable, "-c", DEVICE, server.base_url, str(root), str(storage)],
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 60
        while not part.exists() or part.stat().st_size < length // 3:
            assert device.poll() is None, device.stderr.read() if device.stderr else ""
            assert time.monotonic() < deadline, "the device never got a third of the way"
            time.sleep(0.02)
        device.send_signal(signal.SIGKILL)
        device.wait()
        if device.stderr:
            device.stderr.close()
        kept = part.stat().st_size
        assert 0 < kept < length

        config = AgentConfig(
            server_url=server.base_url,
            app_id=APP_ID,
            platform=Platform.ANDROID,
            native_version="1.0.0",
            trust_root=server.pki.root,
            device_id="device-1",
        )
        with httpx.Client() as http, Agent(config, http=http, storage_dir=storage) as agent:
            agent.on_launch()
            result = agent.sync()
            assert result.status is SyncStatus.STAGED, result.error
            assert result.downloaded_bytes == length - kept
            path = agent.on_launch()
            assert path is not None
            assert Path(path).read_bytes() == payload
        assert not part.exists()
