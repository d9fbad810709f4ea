"""An expo-updates app updates from a real HotPatch server process.

The device is tests/clients/expo/device.js: the requests expo-updates makes,
its answers parsed with Expo's own ``@expo/multipart-body-parser`` and its
signatures checked with ``@expo/code-signing-certificates`` (and
node-forge) by the rules the device applies, installed with ``npm ci`` from
tests/clients/expo/package-lock.json. Each ``start`` is one launch of the
app, as a new Node process with the device's state on disk between launches.
The code-signing key is made by Expo's library and used by the real
``hotpatch`` CLI, which signs on the publisher's side.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from hotpatch_core.expo import commit_time
from hotpatch_core.testing import build_release
from hotpatch_server.testing import APP_ID, ServerProcess, server_process

CRASH = b"HOTPATCH_TEST_CRASH_ON_START"
EMBEDDED = "00000000-0000-4000-8000-00000000e3bd"
#: The embedded update's commit time: before every release below.
BUILT_AT = datetime(2026, 1, 1, tzinfo=UTC)
HOTPATCH = str(Path(sys.executable).with_name("hotpatch"))


@pytest.fixture(scope="session")
def expo_client(npm_installed: Callable[[str], Path]) -> Path:
    """The harness with its pinned npm dependencies installed (``npm ci``, once)."""
    return npm_installed("expo")


def _node(harness: Path, *args: str) -> dict[str, Any]:
    done = subprocess.run(
        [shutil.which("node") or "node", str(harness / "device.js"), *args],
        cwd=harness,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.stdout.strip(), done.stderr
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


class Phone:
    """One installed app: its state file, and the certificate it embeds (if any)."""

    def __init__(  # noqa: PLR0917 - what an app's build carries
        self,
        harness: Path,
        state: Path,
        server: str,
        client_id: str,
        certificate: Path | None = None,
        runtime: str = "1.0.0",
        built_at: datetime = BUILT_AT,
    ) -> None:
        """Install the app (nothing runs until :meth:`start`)."""
        self.harness, self.state = harness, state
        state.mkdir(parents=True)
        document: dict[str, Any] = {
            "url": f"{server}/expo/{APP_ID}/manifest",
            "platform": "android",
            "runtimeVersion": runtime,
            "clientId": client_id,
            "requestHeaders": {"expo-channel-name": "production"},
            "embedded": {"id": EMBEDDED, "commitTime": commit_time(built_at)},
            "current": {"id": EMBEDDED, "commitTime": commit_time(built_at)},
            "recentFailed": [],
            "updates": {},
            "dir": str(state / "updates"),
            "codeSigning": (
                {"certificate": str(certificate), "keyId": "main"} if certificate else None
            ),
        }
        (state / "state.json").write_text(json.dumps(document))

    def start(self) -> dict[str, Any]:
        """Launch the app once; return what ran and what the check did."""
        result = _node(self.harness, "start", str(self.state / "state.json"))
        assert "error" not in result, result["error"]
        return result

    def start_failing(self) -> str:
        """Launch the app once, expecting the update check to fail; return the device's error."""
        result = _node(self.harness, "start", str(self.state / "state.json"))
        assert "error" in result, result
        error: str = result["error"]
        return error


@pytest.fixture
def expo_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A real server process with the test app."""
    with server_process(tmp_path / "server") as server:
        yield server


def _release(
    server: ServerProcess,
    tmp_path: Path,
    sequence: int,
    bundle: bytes,
    *sign: str,
    created_at: datetime | None = None,
) -> dict[str, Any]:
    """Publish an Expo-shaped release, then attach (and sign) it with the real CLI."""
    png = b"\x89PNG\r\n\x1a\n" + bytes([sequence]) * 32
    key = hashlib.md5(png, usedforsecurity=False).hexdigest()
    built = build_release(
        {"index.android.bundle": bundle, f"assets/{key}.png": png},
        app_id=APP_ID,
        version=f"1.0.{sequence}",
        sequence=sequence,
        binary_range="1.x",
        created_at=created_at or BUILT_AT + timedelta(days=sequence),
    )
    response = server.publish(built.manifest, built.archive)
    assert response.status_code == 201, response.text
    release_id = str(response.json()["id"])
    done = subprocess.run(
        [
            HOTPATCH, "expo", "attach", release_id, "--runtime-version", "1.0.0", *sign,
            "--api-url", server.base_url, "--token", server.publisher_key, "--app", APP_ID,
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    attached: dict[str, Any] = json.loads(done.stdout)
    attached["id"] = int(release_id)
    return attached


def _stats(server: ServerProcess, release_id: int) -> dict[str, Any]:
    response = httpx.get(
        f"{server.base_url}/releases/{release_id}/stats",
        headers={"Authorization": f"Bearer {server.publisher_key}"},
    )
    response.raise_for_status()
    stats: dict[str, Any] = response.json()
    return stats


def test_a_signed_device_life_update_crash_rollback(
    expo_client: Path, expo_server: ServerProcess, tmp_path: Path
) -> None:
    """Update, run, a crashing update reported by the next request and never offered again."""
    keys = _node(expo_client, "keygen", str(tmp_path / "keys"))
    sign = (
        "--expo-signing-key", keys["privateKey"], "--expo-certificate", keys["certificate"],
        "--expo-key-id", "main",
    )  # fmt: skip
    good = _release(expo_server, tmp_path, 1, b"console.log('release 1');\n" * 20, *sign)
    assert good["signed"] is True
    phone = Phone(
        expo_client,
        tmp_path / "phone",
        expo_server.base_url,
        "6a1f9c2e-0b7d-4e3a-9c51-2f8e7d6b5a41",
        certificate=Path(keys["certificate"]),
    )

    first = phone.start()  # the embedded bundle runs; the check downloads release 1
    assert first["running"] is None
    assert (first["check"], first["events"]) == ("manifest", [f"downloaded {good['updateId']}"])
    second = phone.start()  # release 1 runs; nothing newer: a 204 (no signature needed)
    assert second["running"] == good["updateId"]
    assert second["code"].startswith("console.log('release 1');")
    assert second["check"] == "noUpdate"
    assert _stats(expo_server, good["id"])["installations"]["applied"] == 1

    bad = _release(expo_server, tmp_path, 2, b"console.log('release 2');\n" + CRASH, *sign)
    third = phone.start()
    assert third["events"] == [f"downloaded {bad['updateId']}"]
    assert phone.start() == {"running": bad["updateId"], "events": [], "crashed": True}
    fifth = phone.start()  # the launcher falls back; the request names the failed update
    assert fifth["running"] == good["updateId"]
    assert fifth["check"] == "noUpdate"
    stats = _stats(expo_server, bad["id"])
    assert stats["installations"]["rolled_back"] == 1
    assert stats["failuresByPhase"] == {"rolled_back/first_launch": 1}

    # Another device still gets release 2; a third release reaches the first device.
    other = Phone(
        expo_client,
        tmp_path / "other",
        expo_server.base_url,
        "7b2f9c2e-0b7d-4e3a-9c51-2f8e7d6b5a42",
        certificate=Path(keys["certificate"]),
    )
    assert other.start()["offered"] == bad["updateId"]
    fixed = _release(expo_server, tmp_path, 3, b"console.log('release 3');\n", *sign)
    assert phone.start()["events"] == [f"downloaded {fixed['updateId']}"]
    assert phone.start()["running"] == fixed["updateId"]


def test_a_device_refuses_what_its_certificate_did_not_sign(
    expo_client: Path, expo_server: ServerProcess, tmp_path: Path
) -> None:
    """An unsigned update, or one signed by another key, never reaches a signing device."""
    ours = _node(expo_client, "keygen", str(tmp_path / "ours"))
    theirs = _node(expo_client, "keygen", str(tmp_path / "theirs"))
    _release(
        expo_server, tmp_path, 1, b"console.log('signed by someone else');\n",
        "--expo-signing-key", theirs["privateKey"], "--expo-certificate", theirs["certificate"],
    )  # fmt: skip
    phone = Phone(
        expo_client,
        tmp_path / "phone",
        expo_server.base_url,
        "8c3f9c2e-0b7d-4e3a-9c51-2f8e7d6b5a43",
        certificate=Path(ours["certificate"]),
    )
    assert phone.start_failing() == "Manifest download was successful, but signature was incorrect"
    unsigned = _release(expo_server, tmp_path, 2, b"console.log('unsigned');\n")
    assert "not signed" in phone.start_failing()
    assert json.loads((tmp_path / "phone" / "state.json").read_text())["updates"] == {}
    plain = Phone(
        expo_client,
        tmp_path / "plain",
        expo_server.base_url,
        "9d4f9c2e-0b7d-4e3a-9c51-2f8e7d6b5a44",
    )
    assert plain.start()["events"] == [f"downloaded {unsigned['updateId']}"]


def test_a_runtime_no_release_targets_gets_nothing(
    expo_client: Path, expo_server: ServerProcess, tmp_path: Path
) -> None:
    """A binary of another runtime version is told there is no update (a directive)."""
    _release(expo_server, tmp_path, 1, b"console.log('for runtime 1.0.0');\n")
    phone = Phone(
        expo_client,
        tmp_path / "phone",
        expo_server.base_url,
        "ae5f9c2e-0b7d-4e3a-9c51-2f8e7d6b5a45",
        runtime="2.0.0",
    )
    result = phone.start()
    assert (result["check"], result["events"]) == ("noUpdate", [])


def test_a_channel_rolled_back_to_the_embedded_bundle(
    expo_client: Path, expo_server: ServerProcess, tmp_path: Path
) -> None:
    """`hotpatch expo rollback-to-embedded`: a signed directive the device obeys, then forward."""
    keys = _node(expo_client, "keygen", str(tmp_path / "keys"))
    sign = ("--expo-signing-key", keys["privateKey"], "--expo-certificate", keys["certificate"])
    # The directive's commit time is the server's clock: every other time here is relative
    # to the one clock the test, the server and the device share.
    now = expo_server.now()
    first = _release(
        expo_server, tmp_path, 1, b"console.log('release 1');\n", *sign,
        created_at=now - timedelta(hours=1),
    )  # fmt: skip
    phone = Phone(
        expo_client,
        tmp_path / "phone",
        expo_server.base_url,
        "be6f9c2e-0b7d-4e3a-9c51-2f8e7d6b5a46",
        certificate=Path(keys["certificate"]),
        built_at=now - timedelta(hours=2),
    )
    phone.start()
    assert phone.start()["running"] == first["updateId"]
    done = subprocess.run(
        [HOTPATCH, "expo", "rollback-to-embedded", "--platform", "android",
         "--runtime-version", "1.0.0", *sign, "--api-url", expo_server.base_url,
         "--token", expo_server.publisher_key, "--app", APP_ID, "--json"],
        capture_output=True, text=True, timeout=120, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["signed"] is True
    told = phone.start()  # the directive verifies with the embedded certificate
    assert (told["running"], told["check"]) == (first["updateId"], "rollBackToEmbedded")
    back = phone.start()
    assert (back["running"], back["check"]) == (None, "noUpdate")  # the embedded bundle runs
    # An update committed after the directive moves the device forward again.
    later = _release(
        expo_server, tmp_path, 2, b"console.log('release 2');\n", *sign,
        created_at=expo_server.now() + timedelta(minutes=1),
    )  # fmt: skip
    assert phone.start()["events"] == [f"downloaded {later['updateId']}"]
    assert phone.start()["running"] == later["updateId"]
