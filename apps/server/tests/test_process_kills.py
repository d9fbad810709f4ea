"""The server process killed (SIGKILL) mid-work, restarted, and cleaned up (issue 18).

A kill can land between storing an archive and committing its release (a
blob nothing references), or while an upload is being received (a file
left in ``tmp``). After ``hotpatch-server cleanup`` the data is consistent:
every release has its archive, every stored blob is referenced, nothing is
left in ``tmp``, and the server serves and publishes as before.
"""

from __future__ import annotations

import base64
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
from typing import Any

import attrs
import httpx

from hotpatch_core.manifest import ReleaseManifest, encode_manifest, manifest_id
from hotpatch_core.release import sign_release
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


def _kill_and_restart(server: ServerProcess, process: Any, port: int) -> subprocess.Popen[bytes]:
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)
    return _start(server, port)


def _report(server: ServerProcess, report: dict[str, str]) -> int | None:
    """Send one installation report; return the status, or None if the server died under it."""
    try:
        return httpx.post(f"{server.base_url}/installations", json=report, timeout=10).status_code
    except httpx.TransportError:
        return None


def _rows(database: Path, query: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(database) as connection:
        return list(connection.execute(query))


def _reports_under_kills(
    server: ServerProcess, process: Any, port: int, release: str, pick: random.Random
) -> tuple[Any, list[dict[str, str]], set[str]]:
    """Stream 300 reports, kill the server twice under them, resend all; return what was sent."""
    reports = [
        {"id": f"r{n}", "appId": APP_ID, "deviceId": f"device-{n % 25}",
         "manifestId": release, "status": "applied"}
        for n in range(300)
    ]  # fmt: skip
    acknowledged: set[str] = set()

    def send() -> None:
        for report in reports:
            if _report(server, report) in (200, 201):
                acknowledged.add(report["id"])

    for _ in range(2):
        thread = threading.Thread(target=send, daemon=True)
        thread.start()
        time.sleep(pick.uniform(0.2, 0.8))
        process = _kill_and_restart(server, process, port)
        thread.join(timeout=60)
    for report in reports:  # the devices' queues drain after the restart
        assert _report(server, report) in (200, 201)
    return process, reports, acknowledged


def _rollback_under_a_kill(
    server: ServerProcess, process: Any, port: int, v1: ReleaseManifest, pick: random.Random
) -> Any:
    """Roll back to v1, kill at random, check whole-or-absent, retry; return the process."""
    rollback = attrs.evolve(v1, sequence=3, rollback_of=manifest_id(encode_manifest(v1)))
    body = {"manifest": base64.b64encode(sign_release(rollback, [server.pki.publisher])).decode()}
    headers = {"Authorization": f"Bearer {server.publisher_key}"}
    releases = httpx.get(f"{server.base_url}/releases", headers=headers, timeout=10).json()
    source = next(r["id"] for r in releases if r["sequence"] == 1)

    def roll_back() -> None:
        with contextlib.suppress(httpx.HTTPError):
            httpx.patch(f"{server.base_url}/releases/{source}/rollback", json=body,
                        headers=headers, timeout=10)  # fmt: skip

    thread = threading.Thread(target=roll_back, daemon=True)
    thread.start()
    time.sleep(pick.uniform(0.0, 0.05))
    process = _kill_and_restart(server, process, port)
    thread.join(timeout=30)
    database = Path(server.env["HOTPATCH_DATA_DIR"]) / "hotpatch.db"
    rolled = _rows(database, "SELECT count(*) FROM releases WHERE sequence = 3")[0][0]
    audited = _rows(database, "SELECT count(*) FROM audit_log WHERE action = 'rollback'")[0][0]
    assert rolled == audited  # the release and its audit record, or neither
    retried = httpx.patch(f"{server.base_url}/releases/{source}/rollback", json=body,
                          headers=headers, timeout=10)  # fmt: skip
    assert retried.status_code == (409 if rolled else 200), retried.text
    return process


def test_kills_during_reports_rollbacks_and_patch_jobs(tmp_path: Path) -> None:
    """Reports: none lost, none counted twice; a rollback: whole or absent; a patch job: clean.

    Devices resend a report until it is acknowledged (the agent's queue), so
    after each kill the harness resends every report; the server stores each
    (app, device, id) once. A rollback is one transaction with its audit
    record. A patch job killed midway is not resumed (devices get the full
    archive); what it stored without a row goes in the cleanup pass.
    """
    data = tmp_path / "server"
    pick = random.Random(1818)
    with server_process(data, HOTPATCH_RATE_LIMIT_SCALE="100") as server:
        port = int(server.base_url.rsplit(":", 1)[1])
        process: Any = server.process
        bundle = os.urandom(3_000_000)
        v1 = build_release({"index.android.bundle": bundle}, app_id=APP_ID, version="1.0.1",
                           sequence=1, compresslevel=0)  # fmt: skip
        assert server.publish(v1.manifest, v1.archive).status_code == 201
        v1_id = manifest_id(encode_manifest(v1.manifest))

        # A patch job: v1 -> v2 is made after the publish answers; kill while it runs.
        changed = bundle[:2_000_000] + os.urandom(1_000_000)
        v2 = build_release({"index.android.bundle": changed}, app_id=APP_ID, version="1.0.2",
                           sequence=2, compresslevel=0)  # fmt: skip
        assert server.publish(v2.manifest, v2.archive).status_code == 201
        time.sleep(pick.uniform(0.0, 0.3))
        process = _kill_and_restart(server, process, port)

        process, reports, acknowledged = _reports_under_kills(server, process, port, v1_id, pick)
        process = _rollback_under_a_kill(server, process, port, v1.manifest, pick)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)

        database = data / "hotpatch.db"
        stored = _rows(database, "SELECT app_id, device_id, id FROM installations")
        assert len(stored) == len(set(stored)) == len(reports)  # none lost, none twice
        assert acknowledged <= {row[2] for row in stored}
        _cleanup(server, "--grace-hours", "0")
        assert _referenced(database) == _stored(data)  # no patch row without its blob, no orphan
        assert not [p for p in (data / "tmp").iterdir() if p.is_file()]
