"""PostgreSQL goes away under a real server process, and comes back (issue 18).

Before: a check of a channel not yet cached, a publish or a report got 500
with a traceback in the log per request; the cache logged a traceback per
refresh and the device tracker one per flush, and dropped the check-ins it
could not write. The test makes a PostgreSQL cluster of its own with
``initdb`` in a temporary directory (never the machine's shared server),
stops it under the server and starts it again.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import attrs
import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from hotpatch_core.testing import build_release
from hotpatch_server.testing import APP_ID, ServerProcess, free_port, server_process


def _postgres_bin() -> Path | None:
    found = shutil.which("initdb")
    if found is not None:
        return Path(found).parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return versions[-1].parent if versions else None


@attrs.define
class PrivatePostgres:
    """A PostgreSQL cluster of the test's own, on a free loopback port, trust auth."""

    directory: Path
    bin: Path
    port: int = attrs.field(factory=free_port)

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str) -> None:
        # Infrastructure, not our code: it runs on the real clock even when the
        # suite runs under libfaketime, and as the postgres user when we are root.
        env = {k: v for k, v in os.environ.items() if not k.startswith(("FAKETIME", "LD_PRELOAD"))}
        command = [str(self.bin / tool), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=60, check=False
        )
        if done.returncode != 0:
            pytest.fail(f"{tool} failed: {done.stderr.strip()[-400:]}")

    def init(self) -> None:
        self.directory.mkdir()
        if os.geteuid() == 0:
            shutil.chown(self.directory, "postgres")
        self._run("initdb", "-D", str(self.directory / "data"), "-A", "trust", "-U", "postgres")

    def start(self) -> None:
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off"
        log = str(self.directory / "log")
        self._run("pg_ctl", "-D", str(self.directory / "data"), "-o", options, "-l", log, "-w",
                  "start")  # fmt: skip

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.directory / "data"), "-m", "fast", "-w", "stop")


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    """A PostgreSQL made for this test, stopped and removed at its end."""
    found = _postgres_bin()
    if found is None:
        pytest.skip("initdb is not installed (apt-get install postgresql)")
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        pytest.skip("as root, initdb needs runuser to run as the postgres user")
    # Not under pytest's private directory: the postgres user must reach it.
    place = Path(tempfile.mkdtemp(prefix="hotpatch-pg-"))
    place.chmod(0o755)
    database = PrivatePostgres(place / "pg", found)
    database.init()
    database.start()
    yield database
    subprocess.run(  # stop it whatever state the test left it in
        ["runuser", "-u", "postgres", "--"] * (os.geteuid() == 0)
        + [str(found / "pg_ctl"), "-D", str(database.directory / "data"), "-m", "immediate",
           "stop"],
        capture_output=True, check=False,
    )  # fmt: skip
    shutil.rmtree(place, ignore_errors=True)


def _check(server: ServerProcess, device: str, **params: str) -> httpx.Response:
    query = {"appId": APP_ID, "platform": "android", "deviceId": device, "nativeVersion": "1.0.0"}
    return httpx.get(f"{server.base_url}/update/check", params={**query, **params}, timeout=10)


def _devices(url: str) -> set[str]:
    async def read() -> set[str]:
        engine = create_async_engine(url)
        try:
            async with engine.connect() as connection:
                rows = await connection.execute(text("SELECT device_id FROM devices"))
                return {row[0] for row in rows}
        finally:
            await engine.dispose()

    return asyncio.run(read())


def test_a_database_restart_costs_503s_with_retry_after_and_loses_nothing(
    private_postgres: PrivatePostgres, tmp_path: Path
) -> None:
    """Stop PostgreSQL under a serving process, use the API, start it again.

    While it is away: checks of a channel the process has loaded are answered
    from its cache; a channel it has not, a publish, a report, the API and
    ``/health`` get 503 with ``Retry-After``. Once it is back, without a
    restart of the server: the pool reconnects, the check-ins made during the
    outage are written, and a publish succeeds. The log has one line for the
    outage and one for the recovery, and no traceback.
    """
    log = tmp_path / "server.log"
    with (
        log.open("w") as output,
        server_process(
            tmp_path / "server", output=output, DATABASE_URL=private_postgres.url,
            JWT_SECRET="s" * 48, HOTPATCH_CACHE_SECONDS="0.5",
            HOTPATCH_DEVICE_FLUSH_SECONDS="0.2", HOTPATCH_AUTO_PATCHES="0",
        ) as server,
    ):  # fmt: skip
        v1 = build_release({"index.android.bundle": b"v1" * 100}, app_id=APP_ID, version="1.0.1")
        assert server.publish(v1.manifest, v1.archive).status_code == 201
        offered = _check(server, "device-1").json()
        assert offered["updateAvailable"]

        private_postgres.stop()
        time.sleep(1.0)  # the cache entry expires: its refresh fails, the stale entry serves
        for device in ("device-1", "outage-1", "outage-2"):
            during = _check(server, device)
            assert during.status_code == 200, during.text
            assert during.json()["manifestId"] == offered["manifestId"]
        v2 = build_release(
            {"index.android.bundle": b"v2" * 100}, app_id=APP_ID, version="1.0.2", sequence=2
        )
        report = {"id": "r-1", "appId": APP_ID, "deviceId": "device-1",
                  "manifestId": offered["manifestId"], "status": "applied"}  # fmt: skip
        refused = [
            _check(server, "device-1", channel="beta"),
            server.publish(v2.manifest, v2.archive),
            httpx.post(f"{server.base_url}/installations", json=report, timeout=10),
            httpx.get(
                f"{server.base_url}/releases",
                headers={"Authorization": f"Bearer {server.publisher_key}"},
                timeout=10,
            ),
            httpx.get(f"{server.base_url}/health", timeout=10),
        ]
        for response in refused:
            assert response.status_code == 503, response.text
            assert response.headers["retry-after"] == "5"
        time.sleep(0.5)  # several device flushes fail meanwhile

        private_postgres.start()
        deadline = time.monotonic() + 20
        while httpx.get(f"{server.base_url}/health", timeout=10).status_code != 200:
            assert time.monotonic() < deadline, "the server did not reconnect by itself"
            time.sleep(0.2)
        assert _check(server, "device-1", channel="beta").status_code == 200
        assert server.publish(v2.manifest, v2.archive).status_code == 201
        deadline = time.monotonic() + 10
        while not {"outage-1", "outage-2"} <= _devices(private_postgres.url):
            assert time.monotonic() < deadline, "check-ins made during the outage were lost"
            time.sleep(0.2)
        blobs = [p for p in (tmp_path / "server" / "blobs").rglob("*") if p.is_file()]
        assert len(blobs) == 2  # v1 and v2 (no patches made): the refused publish left nothing

    text_log = log.read_text()
    assert text_log.count("The database is unavailable") == 1, text_log
    assert text_log.count("The database is back") == 1, text_log
    assert "Traceback" not in text_log
