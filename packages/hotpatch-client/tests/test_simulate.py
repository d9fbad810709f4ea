"""The fleet simulator: a staged rollout, a crashing release rolled back by every device."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from hotpatch_client import AgentConfig
from hotpatch_client.agent import SyncStatus
from hotpatch_client.codepush import CodePushConfig, CodePushDevice
from hotpatch_client.simulate import Fleet
from hotpatch_client.testing import sample_bundle
from hotpatch_core.manifest import Platform
from hotpatch_server.testing import APP_ID, Server, in_process_server, server_process

COMMAND = str(Path(sys.executable).with_name("hotpatch-client"))


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    """The real app on SQLite."""
    with in_process_server(tmp_path / "server") as harness:
        yield harness


def _publish(server: Server, sequence: int, rollout: int) -> int:
    built = server.build(
        sequence=sequence, version=f"1.0.{sequence}", files=sample_bundle(f"v{sequence}")
    )
    response = server.publish(built, fields={"rollout": str(rollout)})
    assert response.status_code == 201, response.text
    release_id: int = response.json()["id"]
    return release_id


def test_rollout_then_crash_rollback(server: Server, tmp_path: Path) -> None:
    """Rollout then crash rollback."""
    config = AgentConfig(
        server_url="http://testserver.local",
        app_id=APP_ID,
        platform=Platform.ANDROID,
        native_version="1.0.0",
        trust_root=server.pki.root,
    )
    first = _publish(server, 1, rollout=10)
    with Fleet(
        config,
        http=server.client,
        devices=40,
        storage=tmp_path / "fleet",
        crash_versions={"1.0.2"},
        concurrency=1,
    ) as fleet:
        round1 = fleet.run_round()
        assert round1.running == {"embedded": 40}
        assert 0 < round1.staged < 15  # about 10 % of 40
        widened = server.client.patch(
            f"/releases/{first}/rollout", json={"rolloutPercent": 100}, headers=server.auth()
        )
        assert widened.status_code == 200
        server.clock.advance(seconds=60)
        round2 = fleet.run_round()
        assert round2.running == {"embedded": 40 - round1.staged, "1.0.1": round1.staged}
        assert round1.staged + round2.staged == 40
        round3 = fleet.run_round()
        assert round3.running == {"1.0.1": 40}
        _publish(server, 2, rollout=100)  # crashes at launch
        server.clock.advance(seconds=60)
        assert fleet.run_round().staged == 40
        crash1 = fleet.run_round()
        assert (crash1.running, crash1.crashed) == ({"1.0.2": 40}, 40)
        crash2 = fleet.run_round()
        assert crash2.crashed == 40
        reverted = fleet.run_round()
        assert reverted.running == {"1.0.1": 40}
        assert reverted.crashed == 0
        assert reverted.rolled_back_devices == 40
        assert fleet.run_round().staged == 0  # nobody takes 1.0.2 again
        assert "40 have rolled back" in reverted.describe()


def test_a_mixed_fleet_of_hotpatch_and_codepush_devices(server: Server, tmp_path: Path) -> None:
    """CodePush devices take the same releases, crash, roll back and are counted alike."""
    config = AgentConfig(
        server_url="http://testserver.local",
        app_id=APP_ID,
        platform=Platform.ANDROID,
        native_version="1.0.0",
        trust_root=server.pki.root,
    )
    _publish(server, 1, rollout=100)
    with Fleet(
        config,
        http=server.client,
        devices=12,
        storage=tmp_path / "fleet",
        crash_versions={"1.0.2"},
        concurrency=1,
        codepush_devices=5,
        deployment_key=server.deployment_key(),
    ) as fleet:
        first = fleet.run_round()
        assert (first.staged, first.codepush_devices) == (12, 5)
        assert "12 devices (5 of them CodePush)" in first.describe()
        assert fleet.run_round().running == {"1.0.1": 12}
        bad = _publish(server, 2, rollout=100)
        server.clock.advance(seconds=60)
        assert fleet.run_round().staged == 12
        crashed = fleet.run_round()
        assert (crashed.running, crashed.crashed) == ({"1.0.2": 12}, 12)
        # A CodePush app rolls back at the next start; an agent after its threshold of crashes.
        fleet.run_round()
        reverted = fleet.run_round()
        assert reverted.running == {"1.0.1": 12}
        assert reverted.rolled_back_devices == 12
        assert fleet.run_round().staged == 0  # nobody takes 1.0.2 again
    stats = server.client.get(f"/releases/{bad}/stats", headers=server.auth()).json()
    assert stats["installations"]["rolled_back"] == 12


def test_command_against_a_real_server(tmp_path: Path) -> None:
    """Command against a real server."""
    with server_process(tmp_path / "server") as srv:
        from hotpatch_core.testing import build_release  # noqa: PLC0415

        built = build_release(sample_bundle("v1"), app_id=APP_ID, version="1.0.1")
        published = srv.publish(built.manifest, built.archive)
        assert published.status_code == 201, published.text
        root = tmp_path / "root.json"
        root.write_bytes(srv.pki.root_bytes)
        done = subprocess.run(
            [COMMAND, "simulate", "--server", srv.base_url, "--app", APP_ID,
             "--trust-root", str(root), "--devices", "5", "--rounds", "2", "--json"],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        rounds = [json.loads(line) for line in done.stdout.splitlines()]
        assert [r["staged"] for r in rounds] == [5, 0]
        assert rounds[1]["running"] == {"1.0.1": 5}

        from hotpatch_core.testing import make_pki  # noqa: PLC0415

        stranger = tmp_path / "stranger.json"
        stranger.write_bytes(make_pki().root_bytes)
        failed = subprocess.run(
            [COMMAND, "simulate", "--server", srv.base_url, "--app", APP_ID,
             "--trust-root", str(stranger), "--devices", "3", "--rounds", "2", "--json"],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert failed.returncode == 5, failed.stdout + failed.stderr
        assert "every device's sync failed in round 1 (UnknownKeyError x3" in failed.stderr
        assert "--trust-root must be the app's current trust root" in failed.stderr
        assert len(failed.stdout.splitlines()) == 1  # it stopped after the failed round
        nobody = subprocess.run(
            [COMMAND, "simulate", "--server", srv.base_url, "--app", "com.nobody.app",
             "--trust-root", str(root), "--devices", "3", "--rounds", "1"],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert nobody.returncode == 0  # the server answers "no update" for an unknown app
        assert "no device was offered an update" in nobody.stderr
        assert "com.nobody.app" in nobody.stderr


def test_command_reports_bad_input(tmp_path: Path) -> None:
    """Command reports bad input."""
    missing = subprocess.run(
        [COMMAND, "simulate", "--server", "http://127.0.0.1:9", "--app", APP_ID,
         "--trust-root", str(tmp_path / "nope.json")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert missing.returncode == 2
    assert "cannot use trust root" in missing.stderr
    assert "Traceback" not in missing.stderr
    from hotpatch_core.testing import make_pki  # noqa: PLC0415

    root = tmp_path / "root.json"
    root.write_bytes(make_pki().root_bytes)
    down = subprocess.run(
        [COMMAND, "simulate", "--server", "http://127.0.0.1:9", "--app", APP_ID,
         "--trust-root", str(root)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert down.returncode == 4
    assert "unreachable" in down.stderr


def test_a_codepush_device_applies_a_diff(server: Server, tmp_path: Path) -> None:
    """The simulated CodePush device takes a diff over its running package, hash-checked."""
    picture = b"".join(hashlib.sha256(b"%d" % i).digest() for i in range(3000))  # incompressible
    v1 = {"index.android.bundle": b"one" * 100, "assets/big.png": picture, "assets/old.png": b"x"}
    v2 = {"index.android.bundle": b"two" * 100, "assets/big.png": picture}
    for sequence, files in ((1, v1), (2, v2)):
        built = server.build(sequence=sequence, version=f"1.0.{sequence}", files=files)
        assert server.publish(built).status_code == 201
        if sequence == 1:
            device = CodePushDevice(
                CodePushConfig(
                    server_url="http://testserver.local",
                    deployment_key=server.deployment_key(),
                    app_version="1.0.0",
                    device_id="cp-1",
                ),
                http=server.client,
                storage=tmp_path / "device",
            )
            assert device.sync().status is SyncStatus.STAGED
            device.launch()
            device.notify_ready()
            assert device.running is not None
            assert device.running["label"] == "v1"
    server.clock.advance(seconds=60)
    result = device.sync()
    assert (result.status, result.label) == (SyncStatus.STAGED, "v2")
    assert result.downloaded < len(picture) / 10  # the diff, not the archive
    device.launch()
    assert device.running is not None
    folder = tmp_path / "device" / device.running["package_hash"]
    on_disk = {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }
    assert on_disk == v2
    assert device.sync().status is SyncStatus.UP_TO_DATE
