"""Issue 18, object store faults: S3 answering 503, hanging, or slow, under a real publish.

moto's S3 server runs behind a :class:`FaultProxy`; the app (in-process)
talks to the proxy. A publish the store refuses fails with 503
``storage-unavailable`` and ``Retry-After`` after botocore's retries, in a
bounded time, and leaves no release row, no object and no temporary file;
a slow store only makes it slower; device checks never touch the store.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from hotpatch_server.fault_injection import FaultProxy, Mode, MotoS3
from hotpatch_server.testing import Server, in_process_server

#: The object store timeout the tests run with (seconds per attempt).
TIMEOUT = 1.0


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoS3]:
    """Moto's S3 server, with the bucket."""
    s3 = MotoS3()
    s3.start()
    yield s3
    s3.stop()


@pytest.fixture
def proxy(moto: MotoS3) -> Iterator[FaultProxy]:
    """A fault proxy in front of moto, forwarding; the bucket emptied first."""
    client = moto.client()
    for key in moto.objects():
        client.delete_object(Bucket=moto.bucket, Key=key)
    with FaultProxy(("127.0.0.1", moto.port), delay=0.05) as faults:
        yield faults


@pytest.fixture
def server(tmp_path: Path, moto: MotoS3, proxy: FaultProxy) -> Iterator[Server]:
    """The app storing archives in moto's bucket through the proxy."""
    with in_process_server(
        tmp_path / "data",
        s3_bucket=moto.bucket,
        s3_endpoint=f"http://{proxy.address}",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        s3_timeout=TIMEOUT,
    ) as harness:
        yield harness


def _leftovers(server: Server) -> list[Path]:
    tmp = server.settings.data_dir / "tmp"
    return sorted(tmp.iterdir()) if tmp.exists() else []


def _publish_fails_cleanly(server: Server, moto: MotoS3, sequence: int) -> float:
    """Publish, expect 503 storage-unavailable; return the seconds it took."""
    rows, objects = server.release_rows(), moto.objects()
    started = time.monotonic()
    response = server.publish(server.build(sequence=sequence))
    took = time.monotonic() - started
    assert response.status_code == httpx.codes.SERVICE_UNAVAILABLE, response.text
    assert response.json()["type"].endswith("/storage-unavailable")
    assert response.headers["retry-after"] == "5"
    assert server.release_rows() == rows
    assert moto.objects() == objects
    assert _leftovers(server) == []
    return took


def test_a_store_answering_503_fails_the_publish_after_retries_and_keeps_nothing(
    server: Server, moto: MotoS3, proxy: FaultProxy
) -> None:
    """Three attempts reach the store (botocore's standard retries), then a clear 503."""
    server.published(1)
    proxy.set(Mode.HTTP_503)
    before = proxy.connections
    _publish_fails_cleanly(server, moto, 2)
    assert proxy.connections - before >= 3
    proxy.set(Mode.FORWARD)
    built = server.build(sequence=2)
    assert server.publish(built).status_code == httpx.codes.CREATED
    assert f"archives/{built.manifest.archive.sha256}" in moto.objects()


def test_a_hanging_store_fails_the_publish_in_bounded_time(
    server: Server, moto: MotoS3, proxy: FaultProxy
) -> None:
    """Each attempt ends at HOTPATCH_S3_TIMEOUT; the publish does not hang with the store."""
    proxy.set(Mode.HANG)
    took = _publish_fails_cleanly(server, moto, 1)
    # 3 attempts of TIMEOUT each plus botocore's backoff (under 1 s, then 2 s).
    assert took < 3 * TIMEOUT + 3 + 5
    proxy.set(Mode.FORWARD)
    assert server.published(1)["sequence"] == 1


def test_a_slow_store_only_slows_the_publish(
    server: Server, moto: MotoS3, proxy: FaultProxy
) -> None:
    """Every chunk delayed, under the timeout: the publish succeeds and the object is whole."""
    proxy.set(Mode.SLOW)
    built = server.build(sequence=1)
    assert server.publish(built).status_code == httpx.codes.CREATED
    body = moto.client().get_object(
        Bucket=moto.bucket, Key=f"archives/{built.manifest.archive.sha256}"
    )
    assert body["Body"].read() == built.archive


def test_checks_are_answered_while_the_store_is_down(server: Server, proxy: FaultProxy) -> None:
    """Download URLs are presigned locally: a device's check never waits on the store."""
    server.published(1)
    proxy.set(Mode.HANG)
    started = time.monotonic()
    for device in range(20):
        assert server.check(f"device-{device}")["bundleUrl"].startswith(f"http://{proxy.address}/")
    assert time.monotonic() - started < 5
