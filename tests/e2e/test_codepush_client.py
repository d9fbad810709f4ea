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
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from hotpatch_cli.codepush import SIGNATURE_PATH, signature_file
from hotpatch_core.testing import build_release
from hotpatch_server.testing import APP_ID, ServerProcess, server_process

CRASH = b"HOTPATCH_TEST_CRASH_ON_START"


@pytest.fixture(scope="session")
def codepush_client(npm_installed: Callable[[str], Path]) -> Path:
    """The harness with its pinned npm dependencies installed (``npm ci``, once)."""
    return npm_installed("codepush")


class Phone:
    """One installed app: its state directory, binary version and deployment key."""

    def __init__(
        self,
        harness: Path,
        state: Path,
        server: str,
        key: str,
        version: str,
        *,
        public_key: Path | None = None,
    ) -> None:
        """Install the app (nothing runs until :meth:`launch`); ``public_key`` is its key."""
        self.harness, self.state, self.server = harness, state, server
        self.key, self.version, self.public_key = key, version, public_key

    def launch(self, *, failing: bool = False) -> dict[str, Any]:
        """Start the app once; return what happened (sync status, events, errors).

        With ``failing``, sync must end in an error (which the client rethrows).
        """
        done = subprocess.run(
            [
                shutil.which("node") or "node",
                str(self.harness / "device.js"),
                str(self.state),
                self.server,
                self.key,
                self.version,
                *([str(self.public_key)] if self.public_key else []),
            ],
            cwd=self.harness,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.stdout.strip(), done.stderr
        result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        assert ("error" in result) == failing, result
        return result


def _release(
    server: ServerProcess,
    sequence: int,
    bundle: bytes,
    binary_range: str,
    signed_with: Path | None = None,
) -> int:
    files = {
        "index.android.bundle": bundle,
        "drawable-mdpi/assets_logo.png": b"\x89PNG" + bytes([sequence]) * 64,
    }
    if signed_with is not None:  # what `hotpatch release --codepush-signing-key` adds
        build = signed_with.parent / f"build-{sequence}"
        for name, data in files.items():
            (build / name).parent.mkdir(parents=True, exist_ok=True)
            (build / name).write_bytes(data)
        sources = {name: build / name for name in files}
        files[SIGNATURE_PATH] = signature_file(
            sources, signed_with, datetime(2026, 1, 1, tzinfo=UTC)
        )
    built = build_release(
        files,
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


def _rsa_pair(folder: Path) -> tuple[Path, Path]:
    """An RSA key pair as `openssl genrsa` and `openssl rsa -pubout` make them."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    folder.mkdir(parents=True, exist_ok=True)
    private, public = folder / "private.pem", folder / "public.pem"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return private, public


def test_a_signed_release_verifies_with_the_apps_public_key(
    codepush_client: Path, codepush_server: tuple[ServerProcess, str, str], tmp_path: Path
) -> None:
    """With CodePushPublicKey, only updates signed by its private key are installed."""
    server, _admin_key, key = codepush_server
    private, public = _rsa_pair(tmp_path / "ours")
    other, _ = _rsa_pair(tmp_path / "theirs")
    _release(server, 1, b"console.log('signed');\n", "1.x", signed_with=private)
    phone = Phone(
        codepush_client, tmp_path / "phone", server.base_url, key, "1.0.0", public_key=public
    )
    assert phone.launch()["status"] == "UPDATE_INSTALLED"
    assert phone.launch()["running"] == "v1"

    _release(server, 2, b"console.log('unsigned');\n", "1.x")
    unsigned = phone.launch(failing=True)
    assert "no JWT signature" in unsigned["error"]
    _release(server, 3, b"console.log('someone else');\n", "1.x", signed_with=other)
    forged = phone.launch(failing=True)
    assert "not signed by a trusted party" in forged["error"]
    assert forged["events"] == []  # nothing installed: the app keeps running v1
    # An app without the key takes the signed and the unsigned releases alike.
    plain = Phone(codepush_client, tmp_path / "plain", server.base_url, key, "1.0.0")
    assert plain.launch()["events"] == ["downloaded v3", "installed v3"]


def _legacy(harness: Path, server: ServerProcess, key: str, *args: str) -> dict[str, Any]:
    """Run the legacy acquisition SDK (code-push 2.0.7) once; return its answer."""
    done = subprocess.run(
        [shutil.which("node") or "node", str(harness / "legacy.js"), server.base_url, key,
         "1.0.0", "legacy-device", *args],
        cwd=harness, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.stdout.strip(), done.stderr
    answer: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    assert "error" not in answer, answer["error"]
    return answer


def test_the_legacy_sdk_checks_and_reports(
    codepush_client: Path, codepush_server: tuple[ServerProcess, str, str]
) -> None:
    """react-native-code-push 5.6 and older (code-push SDK 2.0.7) use the camelCase API."""
    server, admin_key, key = codepush_server
    release = _release(server, 1, b"console.log('legacy');\n", "1.x")
    offered = _legacy(codepush_client, server, key, "check")["result"]
    assert offered["label"] == "v1"
    assert offered["appVersion"] == "1.0.0"
    assert offered["downloadUrl"].startswith(server.base_url + "/blobs/")
    archive = httpx.get(offered["downloadUrl"]).content
    assert len(archive) == offered["packageSize"]
    assert _legacy(codepush_client, server, key, "download", "v1") == {"result": None}
    assert _legacy(codepush_client, server, key, "deploy", "v1", "DeploymentFailed") == {
        "result": None
    }
    again = _legacy(codepush_client, server, key, "check", "", offered["packageHash"])
    assert again == {"result": None}  # nothing newer, and v1 is excluded for this device
    assert _stats(server, admin_key, release)["installations"]["rolled_back"] == 1


def test_a_device_applies_a_diff_update(
    codepush_client: Path, codepush_server: tuple[ServerProcess, str, str], tmp_path: Path
) -> None:
    """A device on a release downloads only the changed files and ends with the new package."""
    server, _admin_key, key = codepush_server
    picture = bytes(range(256)) * 400
    first = build_release(
        {"index.android.bundle": b"console.log('one');\n" * 40, "assets/big.png": picture,
         "assets/old.png": b"\x89PNG removed in v2"},
        app_id=APP_ID, version="1.0.1", sequence=1, binary_range="1.x",
    )  # fmt: skip
    assert server.publish(first.manifest, first.archive).status_code == 201
    phone = Phone(codepush_client, tmp_path / "phone", server.base_url, key, "1.0.0")
    assert phone.launch()["events"] == ["downloaded v1", "installed v1"]
    assert phone.launch()["running"] == "v1"
    v1_hash = _offered(server, key, "another")["package_hash"]
    second = build_release(
        {"index.android.bundle": b"console.log('two');\n" * 40, "assets/big.png": picture},
        app_id=APP_ID, version="1.0.2", sequence=2, binary_range="1.x",
    )  # fmt: skip
    published = server.publish(second.manifest, second.archive)
    assert published.status_code == 201
    deadline = time.monotonic() + 30  # the diff is made in the background after the publish
    while (
        _offered(server, key, "probe", label="v1", package_hash=v1_hash)["package_size"]
        == (published.json()["size"])
    ):
        assert time.monotonic() < deadline, "no CodePush diff was made"
        time.sleep(0.2)
    update = phone.launch()
    assert update["events"] == ["downloaded v2 (diff)", "installed v2"], update
    assert phone.launch()["running"] == "v2"  # the folder hash matched: the diff was exact
