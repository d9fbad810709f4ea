"""The agent against the real server app in-process (its test client is an ``httpx.Client``)."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest

from hotpatch_client import Agent, AgentConfig, SyncStatus
from hotpatch_client.testing import MemoryFileSystem, confirm_update, sample_bundle
from hotpatch_core.archive import DEFAULT_LIMITS, ArchiveInput, write_archive
from hotpatch_core.manifest import MAX_MANIFEST_BYTES, Platform, encode_manifest
from hotpatch_server.testing import APP_ID, Server, assert_no_offer, in_process_server


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    """The real app on SQLite, with com.example.app and a publisher key."""
    with in_process_server(tmp_path / "server") as harness:
        yield harness


def _agent_config(server: Server, device_id: str = "device-1") -> AgentConfig:
    return AgentConfig(
        server_url="http://testserver.local",
        app_id=APP_ID,
        platform=Platform.ANDROID,
        native_version="1.0.0",
        trust_root=server.pki.root,
        device_id=device_id,
    )


def _agent(server: Server, fs: MemoryFileSystem, device_id: str = "device-1") -> Agent:
    config = _agent_config(server, device_id)
    return Agent(config, http=server.client, fs=fs, clock=server.clock)


def _publish(server: Server, sequence: int, label: str) -> dict[str, Any]:
    built = server.build(sequence=sequence, version=f"1.0.{sequence}", files=sample_bundle(label))
    response = server.publish(built)
    assert response.status_code == 201, response.text
    release: dict[str, Any] = response.json()
    return release


def _stats(server: Server, release: dict[str, Any]) -> dict[str, Any]:
    response = server.client.get(
        f"/releases/{release['id']}/stats", headers=server.auth(server.admin_key)
    )
    response.raise_for_status()
    stats: dict[str, Any] = response.json()
    return stats


def test_publish_check_download_apply_launch_ready_report(server: Server) -> None:
    """Publish check download apply launch ready report."""
    release = _publish(server, 1, "v1")
    fs = MemoryFileSystem()
    with _agent(server, fs) as agent:
        assert agent.on_launch() is None
        result = agent.sync()
        assert result.status is SyncStatus.STAGED, result.error
        path = agent.on_launch()
        assert path is not None
        assert (
            fs.read_file(path.removeprefix("mem:/")) == sample_bundle("v1")["index.android.bundle"]
        )
        agent.notify_ready()
        assert agent.flush_reports() == 1
        assert agent.sync().status is SyncStatus.UP_TO_DATE
    assert _stats(server, release)["installations"]["applied"] == 1


def test_crash_loop_is_reverted_reported_and_never_offered_again(server: Server) -> None:
    """Crash loop is reverted reported and never offered again."""
    v1 = _publish(server, 1, "v1")
    fs = MemoryFileSystem()
    with _agent(server, fs) as agent:
        confirm_update(agent)
        v2 = _publish(server, 2, "v2-crashes")
        assert agent.sync().status is SyncStatus.STAGED
        agent.on_launch()  # crashes before the first render ...
        agent.on_launch()  # ... twice
        path = agent.on_launch()  # reverted
        assert path is not None
        assert v1["manifestId"] in path
        assert agent.sync().reports_sent == 1
        assert agent.sync().status is SyncStatus.UP_TO_DATE
    stats = _stats(server, v2)
    assert stats["installations"]["rolled_back"] == 1
    assert stats["failuresByPhase"] == {"rolled_back/first_launch": 1}
    # The server itself never offers v2 to this device again, but does to others.
    assert_no_offer(server.check("device-1", currentManifestId=v1["manifestId"]))
    assert server.check("device-2", currentManifestId=v1["manifestId"])["updateAvailable"]


def test_paused_rollout_drops_a_half_finished_download(server: Server) -> None:
    """Paused rollout drops a half finished download."""
    release = _publish(server, 1, "v1")
    fs = MemoryFileSystem()
    with _agent(server, fs) as agent:
        agent.on_launch()
        assert agent.check() is not None
        paused = server.client.patch(
            f"/releases/{release['id']}/rollout",
            json={"paused": True},
            headers=server.auth(),
        )
        assert paused.status_code == 200, paused.text
        server.clock.advance(seconds=60)  # past the check cache's lifetime
        agent.close()
        restarted = _agent(server, fs)
        restarted.on_launch()
        assert restarted.sync().status is SyncStatus.UP_TO_DATE
        assert restarted.state.offer is None
        restarted.close()


def test_a_device_on_v1_receives_a_patch_to_v2(
    server: Server, rn_builds: dict[str, dict[str, bytes]]
) -> None:
    """The fixture app's v1 -> v2 bug fix arrives as a patch; the stats show the bytes saved."""
    v1_files, v2_files = rn_builds["v1"], rn_builds["v2"]
    built = server.build(sequence=1, version="1.0.1", files=v1_files)
    assert server.publish(built).status_code == 201
    fs = MemoryFileSystem()
    with _agent(server, fs) as agent:
        confirm_update(agent)
        second = server.build(sequence=2, version="1.0.2", files=v2_files)
        published = server.publish(second)
        assert published.status_code == 201
        v2 = published.json()
        result = agent.sync()
        assert (result.status, result.patched, result.error) == (SyncStatus.STAGED, True, None)
        assert result.downloaded_bytes < v2["size"] / 100  # a patch of a few hundred bytes
        path = agent.on_launch()
        assert path is not None
        root = f"releases/{v2['manifestId']}/files/"
        installed = {
            p.removeprefix(root): fs.read_file(p) for p in fs.files() if p.startswith(root)
        }
        assert installed == v2_files  # byte-identical to v2
        agent.notify_ready()
        assert agent.flush_reports() == 1  # applied, naming the base the patch was applied to
    stats = _stats(server, v2)
    assert stats["bytesSaved"] == v2["size"] - result.downloaded_bytes
    assert stats["bytesSaved"] > 0.99 * v2["size"]


def _memory_fs(files: dict[str, bytes]) -> MemoryFileSystem:
    fs = MemoryFileSystem()
    for path, data in files.items():
        parts = path.split("/")
        for depth in range(1, len(parts)):
            fs.mkdir("/".join(parts[:depth]))
        with fs.open_new(path) as handle:
            handle.write(data)
            fs.fsync(handle)
    return fs


@pytest.mark.parametrize("shipped_in", ["files", "injected", "changed"])
def test_a_first_update_is_a_patch_from_the_bundle_in_the_binary(
    server: Server, tmp_path: Path, rn_builds: dict[str, dict[str, bytes]], shipped_in: str
) -> None:
    """With the binary's bundle registered, a device that never updated is patched too.

    The device reads its embedded bundle through a file-system layer (the
    real files, or one injected) and computes its id itself: a binary whose
    bundle differs from the registered one is never offered that patch's
    result, it downloads the archive.
    """
    embedded_files, v2_files = rn_builds["v1"], rn_builds["v2"]
    built = server.build(sequence=1, version="1.0.1", files=v2_files)
    published = server.publish(built)
    assert published.status_code == 201
    release = published.json()
    # What `hotpatch embedded register` sends: a deterministic archive and its file list.
    archive = io.BytesIO()
    entries = write_archive(
        [ArchiveInput.of_bytes(p, d) for p, d in embedded_files.items()], archive
    )
    registered = server.client.post(
        f"/apps/{APP_ID}/embedded",
        json={
            "platform": "android",
            "nativeVersion": "1.0.0",
            "archive": base64.b64encode(archive.getvalue()).decode(),
            "files": [{"path": e.path, "sha256": e.sha256, "size": e.size} for e in entries],
        },
        headers=server.auth(),
    )
    assert registered.status_code == 201, registered.text
    shipped = tmp_path / "apk-assets"
    for path, data in embedded_files.items():
        (shipped / path).parent.mkdir(parents=True, exist_ok=True)
        (shipped / path).write_bytes(data)
    config = attrs.evolve(_agent_config(server), embedded_dir=str(shipped))
    injected = None
    if shipped_in != "files":
        changed = {path: data + b"\n" for path, data in list(embedded_files.items())[:1]}
        injected = _memory_fs(embedded_files | (changed if shipped_in == "changed" else {}))
    fs = MemoryFileSystem()
    with Agent(
        config, http=server.client, fs=fs, clock=server.clock, embedded_fs=injected
    ) as agent:
        assert agent.on_launch() is None  # the embedded bundle
        result = agent.sync()
        patched = shipped_in != "changed"
        assert (result.status, result.patched, result.error) == (SyncStatus.STAGED, patched, None)
        if not patched:
            assert result.downloaded_bytes == release["size"]
            return
        assert result.downloaded_bytes < release["size"] / 100
        root = f"releases/{release['manifestId']}/files/"
        installed = {
            p.removeprefix(root): fs.read_file(p) for p in fs.files() if p.startswith(root)
        }
        assert installed == v2_files
    embedded = agent._embedded()  # the id the device computed itself
    assert embedded is not None
    assert registered.json()["baseId"] == embedded.manifest_id


def test_a_damaged_stored_patch_falls_back_to_the_archive_and_saves_nothing(
    server: Server, rn_builds: dict[str, dict[str, bytes]]
) -> None:
    """Bits flipped in the stored patch: the sync still stages v2 from the archive, and says why."""
    v1 = server.publish(server.build(sequence=1, version="1.0.1", files=rn_builds["v1"]))
    assert v1.status_code == 201, v1.text
    fs = MemoryFileSystem()
    with _agent(server, fs) as agent:
        confirm_update(agent)
        published = server.publish(server.build(sequence=2, version="1.0.2", files=rn_builds["v2"]))
        assert published.status_code == 201, published.text
        v2 = published.json()
        offered = server.check(currentManifestId=v1.json()["manifestId"])["patch"]
        sha = offered["url"].split("/blobs/")[1].split("?")[0]
        (stored,) = [p for p in server.blobs() if p.name.startswith(sha)]
        damaged = bytearray(stored.read_bytes())
        middle = len(damaged) // 2
        for offset in range(middle, middle + 8):
            damaged[offset] ^= 0xFF
        stored.write_bytes(bytes(damaged))

        result = agent.sync()
        assert (result.status, result.patched, result.error) == (SyncStatus.STAGED, False, None)
        assert result.downloaded_bytes >= v2["size"]  # the whole archive after the patch
        assert agent.on_launch() is not None
        agent.notify_ready()
        agent.flush_reports()
        root = f"releases/{v2['manifestId']}/files/"
        installed = {
            p.removeprefix(root): fs.read_file(p) for p in fs.files() if p.startswith(root)
        }
        assert installed == rn_builds["v2"]
    stats = _stats(server, v2)
    assert stats["installations"]["applied"] == 1
    assert stats["installations"]["failed"] == 1  # the patch, reported with why
    assert "fell back to the full archive" in _reasons(server, v2)
    assert stats["bytesSaved"] == 0


def _reasons(server: Server, release: dict[str, Any]) -> str:
    """The reasons of the release's failed reports, as the server stored them."""
    import asyncio  # noqa: PLC0415

    from sqlalchemy import select  # noqa: PLC0415
    from sqlalchemy.ext.asyncio import create_async_engine  # noqa: PLC0415

    from hotpatch_server.models import Installation  # noqa: PLC0415

    async def read() -> str:
        engine = create_async_engine(server.settings.database_url)
        async with engine.connect() as connection:
            rows = await connection.execute(
                select(Installation.reason).where(Installation.manifest_id == release["manifestId"])
            )
            text = "\n".join(r for (r,) in rows)
        await engine.dispose()
        return text

    return asyncio.run(read())


def _files_at_ninety_percent_of_the_caps() -> dict[str, bytes]:
    """A release at 90 % of the file-count, manifest-size, path-length and path-depth caps."""
    caps = DEFAULT_LIMITS
    count = caps.max_files * 9 // 10
    depth = caps.max_depth * 9 // 10
    deep = "/".join(["d" * 25] * (depth - 1))
    deep += "/" + "f" * (caps.max_path_bytes * 9 // 10 - len(deep) - 1)
    files = {"index.android.bundle": b"globalThis.ok = true;\n", deep: b"deep"}
    # Long names make the signed file list reach 90 % of the manifest cap at 90 % of the files.
    pad = 155
    for index in range(count - len(files)):
        files[f"assets/{'a' * pad}/{index:05d}-{'b' * pad}.png"] = bytes([index % 251]) * 3
    return files


def test_a_release_at_ninety_percent_of_every_cap_reaches_a_device(server: Server) -> None:
    """Publish near the core's caps through the real server; the device checks and installs it."""
    files = _files_at_ninety_percent_of_the_caps()
    built = server.build(sequence=1, version="1.0.1", files=files, compresslevel=1)
    manifest_bytes = len(encode_manifest(built.manifest))
    assert 0.9 <= manifest_bytes / MAX_MANIFEST_BYTES < 1.0
    assert len(files) == DEFAULT_LIMITS.max_files * 9 // 10
    assert max(len(p.encode()) for p in files) == DEFAULT_LIMITS.max_path_bytes * 9 // 10
    assert max(p.count("/") + 1 for p in files) == DEFAULT_LIMITS.max_depth * 9 // 10
    published = server.publish(built)
    assert published.status_code == 201, published.text
    fs = MemoryFileSystem()
    with _agent(server, fs) as agent:
        agent.on_launch()
        result = agent.sync()
        assert (result.status, result.error) == (SyncStatus.STAGED, None)
        assert agent.on_launch() is not None
        root = f"releases/{published.json()['manifestId']}/files/"
        assert sum(1 for p in fs.files() if p.startswith(root)) == len(files)
        assert agent.verify_bundles() == {published.json()["manifestId"]: None}
