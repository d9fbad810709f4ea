"""A react-native-code-push app updates from a real HotPatch server process.

The client is the published JavaScript of ``react-native-code-push`` 9.0.1
and its ``code-push`` 4.2.3 acquisition SDK, installed with ``npm ci`` from
tests/clients/codepush/package-lock.json; what the phone's Android code does
(start-up rollback, download checks, unzip, folder hash) is ported beside it
in device.js. Each ``launch`` is one start of the app, as a new Node process
with the device's state kept on disk between starts.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from hotpatch_core.testing import build_release
from hotpatch_server.testing import APP_ID, ServerProcess, server_process

CRASH = b"HOTPATCH_TEST_CRASH_ON_START"


@pytest.fixture(scope="session")
def codepush_client(npm_installed: Callable[[str], Path]) -> Path:
    """The harness with its pinned npm dependencies installed (``npm ci``, once)."""
    return npm_installed("codepush")


class Phone:
    """One installed app: its state directory, binary version and deployment key."""

    def __init__(self, harness: Path, state: Path, server: str, key: str, version: str) -> None:
        """Install the app (nothing runs until :meth:`launch`)."""
        self.harness, self.state, self.server = harness, state, server
        self.key, self.version = key, version

    def launch(self) -> dict[str, Any]:
        """Start the app once; return what happened (sync status, events, errors)."""
        done = subprocess.run(
            [
                shutil.which("node") or "node",
                str(self.harness / "device.js"),
                str(self.state),
                self.server,
                self.key,
                self.version,
            ],
            cwd=self.harness,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.stdout.strip(), done.stderr
        result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        assert "error" not in result, result["error"]
        return result


def _release(server: ServerProcess, sequence: int, bundle: bytes, binary_range: str) -> int:
    built = build_release(
        {
            "index.android.bundle": bundle,
            "drawable-mdpi/assets_logo.png": b"\x89PNG" + bytes([sequence]) * 64,
        },
        app_id=APP_ID,
        version=f"1.0.{sequence}",
        sequence=sequence,
        binary_range=binary_range,
    )
    response = server.publish(built.manifest, built.archive)
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


@pytest.fixture
def codepush_server(tmp_path: Path) -> Iterator[tuple[ServerProcess, str, str]]:
    """A server process, an admin key, and an Android production deployment key from the CLI."""
    with server_process(tmp_path / "server") as server:
        admin = server.admin("create-key", "--name", "ops", "--role", "admin", "--app", APP_ID)
        admin_key = admin.strip().splitlines()[-1]
        created = subprocess.run(
            [
                str(Path(sys.executable).with_name("hotpatch")),
                "deployment-keys", "create", "--platform", "android", "--name", "store build",
                "--api-url", server.base_url, "--token", admin_key, "--app", APP_ID, "--json",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )  # fmt: skip
        yield server, admin_key, json.loads(created.stdout)["key"]


def _stats(server: ServerProcess, admin_key: str, release_id: int) -> dict[str, Any]:
    response = httpx.get(
        f"{server.base_url}/releases/{release_id}/stats",
        headers={"Authorization": f"Bearer {admin_key}"},
    )
    response.raise_for_status()
    stats: dict[str, Any] = response.json()
    return stats


def _offered(server: ServerProcess, key: str, device: str, **params: str) -> dict[str, Any]:
    response = httpx.get(
        f"{server.base_url}/v0.1/public/codepush/update_check",
        params={
            "deployment_key": key,
            "app_version": "1.0.0",
            "client_unique_id": device,
            **params,
        },
    )
    response.raise_for_status()
    info: dict[str, Any] = response.json()["update_info"]
    return info


def test_a_device_life_update_crash_rollback(
    codepush_client: Path, codepush_server: tuple[ServerProcess, str, str], tmp_path: Path
) -> None:
    """Update, confirm, a crashing update rolled back on the device and never offered again."""
    server, admin_key, key = codepush_server
    good = _release(server, 1, b"console.log('release 1');\n" * 50, "1.x")
    phone = Phone(codepush_client, tmp_path / "phone", server.base_url, key, "1.0.0")

    first = phone.launch()  # the binary's bundle runs; sync finds release 1
    assert first["running"] is None
    assert first["status"] == "UPDATE_INSTALLED", first
    assert first["events"] == ["downloaded v1", "installed v1"]

    second = phone.launch()  # release 1 runs, is confirmed, and is the newest
    assert second["running"] == "v1"
    assert second["status"] == "UP_TO_DATE", second
    assert _stats(server, admin_key, good)["installations"]["applied"] == 1

    bad = _release(server, 2, b"console.log('release 2');\n" + CRASH, "1.x")
    third = phone.launch()
    assert third["running"] == "v1"
    assert third["status"] == "UPDATE_INSTALLED"
    assert phone.launch() == {
        "running": "v2",
        "crashed": True,
        "events": ["crashed running v2"],
        "logs": [],
        "clientUniqueId": third["clientUniqueId"],
    }
    fifth = phone.launch()  # the device's own rollback, then the report
    assert fifth["events"][0] == "rolled back v2"
    assert fifth["running"] == "v1"
    assert fifth["status"] == "UP_TO_DATE"
    stats = _stats(server, admin_key, bad)
    assert stats["installations"]["rolled_back"] == 1
    assert stats["failuresByPhase"] == {"rolled_back/first_launch": 1}

    # The server never offers release 2 to that device again; other devices still get it.
    device = third["clientUniqueId"]
    assert _offered(server, key, device, label="v1")["is_available"] is False
    assert _offered(server, key, "fresh-device", label="v1")["label"] == "v2"


def test_binaries_no_release_targets(
    codepush_client: Path, codepush_server: tuple[ServerProcess, str, str], tmp_path: Path
) -> None:
    """A binary outside every range gets nothing; one below them is told to upgrade."""
    server, _admin_key, key = codepush_server
    _release(server, 1, b"console.log('for 2.x binaries');\n", "2.x")
    newer = Phone(codepush_client, tmp_path / "newer", server.base_url, key, "3.0.0")
    result = newer.launch()
    assert result["status"] == "UP_TO_DATE"
    assert result["events"] == []
    older = Phone(codepush_client, tmp_path / "older", server.base_url, key, "1.0")
    result = older.launch()
    assert result["status"] == "UP_TO_DATE"
    assert result["binaryMismatch"] == "2.x"  # handleBinaryVersionMismatchCallback
