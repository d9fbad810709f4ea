"""Issue 18: devices that hang up mid-download leak no file handle in the server process.

Local storage streams archives through the server (``/blobs/{sha256}``). A
real ``hotpatch-server`` process serves a 16 MB archive to clients that read
a little and then close, or reset, the connection; afterwards the process
holds no descriptor of the archive, and serves it whole to the next device.
"""

from __future__ import annotations

import hashlib
import os
import socket
import struct
import sys
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from hotpatch_core.testing import build_release
from hotpatch_server.testing import APP_ID, server_process

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="reads /proc/<pid>/fd (Linux)"
)


def _open_blobs(pid: int, blobs: Path) -> list[str]:
    """Return the files under ``blobs`` that process ``pid`` holds open."""
    held = []
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = str(fd.readlink())
        except OSError:
            continue  # closed while we looked
        if target.startswith(str(blobs)):
            held.append(target)
    return held


def _hang_up(url: str, *, reset: bool, while_open: Callable[[], None] = lambda: None) -> None:
    """GET ``url`` over a raw socket, read 64 KiB, call ``while_open``, and close (or reset)."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname or "", parts.port or 80), timeout=10) as sock:
        sock.sendall(
            f"GET {parts.path}?{parts.query} HTTP/1.1\r\nHost: {parts.netloc}\r\n\r\n".encode()
        )
        received = 0
        while received < 64 * 1024:
            chunk = sock.recv(65536)
            assert chunk, "the server closed first"
            received += len(chunk)
        while_open()
        if reset:  # RST instead of FIN, as a phone losing its network looks
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def test_client_disconnects_leave_no_open_archive(tmp_path: Path) -> None:
    """Twenty downloads abandoned (half closed, half reset): no descriptor stays open."""
    data = tmp_path / "server"
    with server_process(data, HOTPATCH_AUTO_PATCHES="0") as server:
        bundle = os.urandom(16 * 1024 * 1024)
        built = build_release(
            {"index.android.bundle": bundle}, app_id=APP_ID, version="1.0.1", compresslevel=0
        )
        assert server.publish(built.manifest, built.archive).status_code == 201
        url = httpx.get(
            f"{server.base_url}/update/check",
            params={"appId": APP_ID, "platform": "android", "deviceId": "d",
                    "nativeVersion": "1.0.0"},
            timeout=10,
        ).json()["bundleUrl"]  # fmt: skip
        blobs, pid = data / "blobs", server.process.pid

        def held_now() -> None:  # the probe sees a download in flight
            assert _open_blobs(pid, blobs)

        _hang_up(url, reset=False, while_open=held_now)
        for attempt in range(20):
            _hang_up(url, reset=attempt % 2 == 1)
        deadline = time.monotonic() + 10
        while held := _open_blobs(pid, blobs):
            assert time.monotonic() < deadline, f"still open after the clients left: {held}"
            time.sleep(0.1)
        whole = httpx.get(url, timeout=60)
        assert whole.status_code == 200
        assert hashlib.sha256(whole.content).hexdigest() == built.manifest.archive.sha256
