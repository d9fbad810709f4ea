"""The server process killed (SIGKILL) mid-publish, restarted, and cleaned up (issue 18).

A kill can land between storing an archive and committing its release (a
blob nothing references), or while an upload is being received (a file
left in ``tmp``). After ``hotpatch-server cleanup`` the data is consistent:
every release has its archive, every stored blob is referenced, nothing is
left in ``tmp``, and the server serves and publishes as before.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from hotpatch_core.testing import build_release
from hotpatch_server.testing import APP_ID, ServerProcess, server_process, serving

ADMIN = str(Path(sys.executable).with_name("hotpatch-server"))


def _referenced(database: Path) -> set[str]:
    with sqlite3.connect(database) as connection:
        rows = connection.execute(
            "SELECT archive_sha256 FROM releases UNION SELECT sha256 FROM patches "
            "UNION SELECT sha256 FROM codepush_diffs UNION SELECT sha256 FROM expo_assets"
        )
        return {row[0] for row in rows}


def _stored(data: Path) -> set[str]:
    return {p.name for p in (data / "blobs").glob("??/*") if p.is_file()}


def _cleanup(server: ServerProcess, *args: str) -> str:
    done = subprocess.run(
        [ADMIN, "cleanup", *args], env=server.env, capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def _publish_in_background(server: ServerProcess, sequence: int) -> threading.Thread:
    built = build_release(
        {"index.android.bundle": os.urandom(600_000), "assets/a.png": os.urandom(200_000)},
        app_id=APP_ID, version=f"1.0.{sequence}", sequence=sequence, compresslevel=0,
    )  # fmt: skip

    def publish() -> None:
        with contextlib.suppress(httpx.HTTPError):  # killed under it: checked after the restart
            server.publish(built.manifest, built.archive)

    thread = threading.Thread(target=publish, daemon=True)
    thread.start()
    return thread


def _start(server: ServerProcess, port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [ADMIN, "serve", "--port", str(port)], env=server.env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{server.base_url}/health", timeout=2).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        assert process.poll() is None, "the server did not start again"
        assert time.monotonic() < deadline, "the server did not come back"
        time.sleep(0.2)


def test_kills_during_publishes_leave_data_a_cleanup_makes_consistent(tmp_path: Path) -> None:
    """Six publishes, each interrupted by SIGKILL at a random moment, then restarts and cleanup."""
    data = tmp_path / "server"
    pick = random.Random(18)
    with server_process(data) as server:
        port = int(server.base_url.rsplit(":", 1)[1])
        process: subprocess.Popen[str] | subprocess.Popen[bytes] = server.process
        for sequence in range(1, 7):
            thread = _publish_in_background(server, sequence)
            time.sleep(pick.uniform(0.0, 0.25))
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)
            thread.join(timeout=30)
            process = _start(server, port)  # restarted on the same data
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)

        # What a lost commit leaves, made certain: an archive no row names, an upload leftover.
        orphan = hashlib.sha256(b"orphan").hexdigest()
        (data / "blobs" / orphan[:2]).mkdir(parents=True, exist_ok=True)
        (data / "blobs" / orphan[:2] / orphan).write_bytes(b"orphan")
        (data / "tmp").mkdir(exist_ok=True)
        (data / "tmp" / "upload-leftover").write_bytes(b"half")

        assert orphan not in _cleanup(server, "--grace-hours", "1")  # too young to go
        assert orphan in _stored(data)
        assert orphan in _cleanup(server, "--grace-hours", "0", "--dry-run")
        assert orphan in _stored(data)
        _cleanup(server, "--grace-hours", "0")
        referenced = _referenced(data / "hotpatch.db")
        stored = _stored(data)
        assert referenced == stored  # every release has its archive; nothing else is kept
        assert not [p for p in (data / "tmp").iterdir() if p.is_file()]

        with serving(server.env, port):
            releases = httpx.get(
                f"{server.base_url}/releases",
                headers={"Authorization": f"Bearer {server.publisher_key}"},
                timeout=10,
            ).json()
            next_sequence = max((r["sequence"] for r in releases), default=0) + 1
            final = build_release(
                {"index.android.bundle": b"after"}, app_id=APP_ID,
                version="2.0.0", sequence=next_sequence,
            )  # fmt: skip
            assert server.publish(final.manifest, final.archive).status_code == 201
            check = httpx.get(
                f"{server.base_url}/update/check",
                params={"appId": APP_ID, "platform": "android", "deviceId": "d",
                        "nativeVersion": "1.0.0"},
                timeout=10,
            )  # fmt: skip
            assert check.json()["sequence"] == next_sequence
