"""Issue 18, presigned downloads from a faulty object store, to a real device agent.

A real ``hotpatch-server`` process stores archives in moto's S3 server; the
download URLs it hands out point at a :class:`FaultProxy` in front of moto.
While the store answers 503 or hangs, the device's sync fails with a
retryable network error within its deadline and nothing is staged (the
device keeps running what it runs); once the store is back, the same device
installs the release.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hotpatch_client import Agent, AgentConfig, NetworkError, SyncStatus, device_http_client
from hotpatch_client.testing import sample_bundle
from hotpatch_client.transfer import DownloadPolicy
from hotpatch_core.manifest import Platform
from hotpatch_core.testing import build_release
from hotpatch_server.fault_injection import FaultProxy, Mode, MotoS3
from hotpatch_server.testing import APP_ID, ServerProcess, server_process

#: The device's whole-request deadline in these tests (seconds).
DEADLINE = 2.0


@pytest.fixture
def store() -> Iterator[tuple[MotoS3, FaultProxy]]:
    """Moto's S3 server and a fault proxy in front of it."""
    moto = MotoS3()
    moto.start()
    try:
        with FaultProxy(("127.0.0.1", moto.port)) as proxy:
            yield moto, proxy
    finally:
        moto.stop()


@pytest.fixture
def server(tmp_path: Path, store: tuple[MotoS3, FaultProxy]) -> Iterator[ServerProcess]:
    """A server process whose archives are in the bucket, reached through the proxy."""
    moto, proxy = store
    with server_process(
        tmp_path / "server",
        S3_BUCKET=moto.bucket,
        S3_ENDPOINT=f"http://{proxy.address}",
        AWS_ACCESS_KEY_ID="test",
        AWS_SECRET_ACCESS_KEY="test",
        HOTPATCH_AUTO_PATCHES="0",
    ) as process:
        yield process


def test_a_download_from_a_failing_store_stages_nothing_and_succeeds_later(
    tmp_path: Path, server: ServerProcess, store: tuple[MotoS3, FaultProxy]
) -> None:
    """503 and a hang each fail the sync in bounded time, retryably; FORWARD installs."""
    _, proxy = store
    release = build_release(sample_bundle("v1"), app_id=APP_ID, version="1.0.1")
    assert server.publish(release.manifest, release.archive).status_code == 201
    config = AgentConfig(
        server_url=server.base_url,
        app_id=APP_ID,
        platform=Platform.ANDROID,
        native_version="1.0.0",
        trust_root=server.pki.root,
        device_id="device-1",
        download=DownloadPolicy(
            request_deadline=DEADLINE, read_timeout=DEADLINE, retries=1, backoff=0.1
        ),
    )
    with (
        device_http_client(timeout=DEADLINE) as http,
        Agent(config, http=http, storage_dir=tmp_path / "device") as agent,
    ):
        agent.on_launch()
        for mode in (Mode.HTTP_503, Mode.HANG):
            proxy.set(mode)
            started = time.monotonic()
            result = agent.sync()
            assert time.monotonic() - started < 3 * DEADLINE + 5, mode
            assert result.status is SyncStatus.FAILED, mode
            assert isinstance(result.error, NetworkError), result.error
            assert result.error.retryable
            assert agent.state.pending is None
            assert agent.state.confirmed is None
        proxy.set(Mode.FORWARD)
        result = agent.sync()
        assert result.status is SyncStatus.STAGED, result.error
        assert agent.on_launch() is not None
