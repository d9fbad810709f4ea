"""Several server processes against one PostgreSQL (and Redis) behave as one server."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from hotpatch_core.release import sign_release
from hotpatch_core.testing import build_release, make_pki
from hotpatch_server.testing import assert_no_offer, free_port, wait_until_serving

COMMAND = str(Path(sys.executable).with_name("hotpatch-server"))
PG_URL = os.environ.get("HOTPATCH_TEST_DATABASE_URL", "")
REDIS_URL = os.environ.get("HOTPATCH_TEST_REDIS_URL", "")


async def _execute(url: str, statement: str) -> None:
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            await connection.execute(text(statement))
    finally:
        await engine.dispose()


@pytest.fixture
def shared_database() -> Iterator[str]:
    """A fresh PostgreSQL database for this test."""
    if not PG_URL:
        pytest.skip("needs HOTPATCH_TEST_DATABASE_URL (set by .ci/run)")
    name = f"hotpatch_mp_{uuid.uuid4().hex[:8]}"
    try:
        asyncio.run(_execute(PG_URL, f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001 - unreachable PostgreSQL means skip
        pytest.skip(f"PostgreSQL unreachable: {exc}")
    yield PG_URL.rsplit("/", 1)[0] + f"/{name}"
    asyncio.run(_execute(PG_URL, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def test_publish_on_one_process_check_on_another(shared_database: str, tmp_path: Path) -> None:
    """A release published through process A is offered, and downloadable, through process B."""
    env = {
        **os.environ,
        "DATABASE_URL": shared_database,
        "JWT_SECRET": "m" * 48,
        "HOTPATCH_DATA_DIR": str(tmp_path),
    }
    if REDIS_URL:
        env["REDIS_URL"] = REDIS_URL
        env["HOTPATCH_REDIS_PREFIX"] = f"mp-{uuid.uuid4().hex[:8]}"
    pki = make_pki()
    root = tmp_path / "root.json"
    root.write_bytes(pki.root_bytes)

    def admin(*args: str) -> str:
        done = subprocess.run(
            [COMMAND, *args], env=env, capture_output=True, text=True, timeout=120, check=True
        )
        return done.stdout

    admin("migrate")
    admin("create-app", "com.example.app", "--trust-root", str(root))
    key = admin("create-key", "--name", "ci", "--role", "publisher", "--app", "com.example.app")
    key = key.strip().splitlines()[-1]
    ports = [free_port(), free_port()]
    processes = [
        subprocess.Popen(
            [COMMAND, "serve", "--port", str(port)],
            env={**env, "HOTPATCH_PUBLIC_URL": f"http://127.0.0.1:{port}"},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for port in ports
    ]
    bases = [f"http://127.0.0.1:{port}" for port in ports]
    try:
        for base, process in zip(bases, processes, strict=True):
            assert wait_until_serving(f"{base}/health", process).status_code == 200
        params = {
            "appId": "com.example.app",
            "platform": "android",
            "deviceId": "device-1",
            "nativeVersion": "1.0.0",
        }
        assert_no_offer(httpx.get(f"{bases[1]}/update/check", params=params).json())
        built = build_release({"index.android.bundle": b"shared" * 100}, sequence=1)
        published = httpx.post(
            f"{bases[0]}/releases",
            data={"appId": "com.example.app"},
            files={
                "manifest": ("m.json", sign_release(built.manifest, [pki.publisher])),
                "archive": ("a.zip", built.archive),
            },
            headers={"Authorization": f"Bearer {key}"},
            timeout=30,
        )
        assert published.status_code == 201, published.text
        deadline = time.monotonic() + 10  # the cache lifetime bounds it without Redis
        answer: dict[str, object] = {}
        while time.monotonic() < deadline:
            answer = httpx.get(f"{bases[1]}/update/check", params=params).json()
            if answer["updateAvailable"]:
                break
            time.sleep(0.2)
        assert answer["hash"] == built.manifest.archive.sha256
        download = httpx.get(str(answer["bundleUrl"]), timeout=30)
        assert download.content == built.archive
        listing = httpx.get(
            f"{bases[1]}/releases", headers={"Authorization": f"Bearer {key}"}
        ).json()
        assert [r["sequence"] for r in listing] == [1]
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            _, errors = process.communicate(timeout=30)
            assert "Traceback" not in errors, errors
