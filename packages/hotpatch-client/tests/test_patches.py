"""Differential updates on the device: a patch from the running bundle, and the fallback."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable

from hotpatch_client import Agent, SyncStatus
from hotpatch_client.testing import (
    MemoryFileSystem,
    PublishedRelease,
    RepositorySimulator,
    confirm_update,
    sample_bundle,
)

AgentFactory = Callable[..., Agent]
V1 = sample_bundle("v1", extra=3)
V2 = {**V1, "index.android.bundle": V1["index.android.bundle"] + b"console.log('fix');\n"}


def _on_v1(
    sim: RepositorySimulator, fs: MemoryFileSystem, make_agent: AgentFactory
) -> tuple[Agent, PublishedRelease]:
    v1 = sim.publish(V1)
    agent = make_agent(fs)
    confirm_update(agent)
    sim.requests.clear()
    return agent, v1


def _installed(fs: MemoryFileSystem, release: PublishedRelease) -> dict[str, bytes]:
    root = f"releases/{release.manifest_id}/files/"
    return {p.removeprefix(root): fs.read_file(p) for p in fs.files() if p.startswith(root)}


def _archive_files(release: PublishedRelease) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(release.built.archive)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def test_a_device_on_v1_is_patched_to_v2(
    sim: RepositorySimulator, fs: MemoryFileSystem, make_agent: AgentFactory
) -> None:
    """Only the patch is downloaded; the result is byte-identical to v2 and verifies."""
    agent, v1 = _on_v1(sim, fs, make_agent)
    v2 = sim.publish(V2)
    patch = sim.make_patch(v1, v2)
    offer = agent.check()
    assert offer is not None
    archive = v2.built.manifest.archive.length
    assert (offer.size, offer.patch_size, offer.download_size) == (archive, len(patch), len(patch))
    assert offer.epoch == v2.built.manifest.epoch
    result = agent.sync()
    assert (result.status, result.patched, result.error) == (SyncStatus.STAGED, True, None)
    assert result.downloaded_bytes == len(patch) < v2.built.manifest.archive.length / 10
    assert sim.archive_requests() == []  # the archive itself was never fetched
    assert _installed(fs, v2) == _archive_files(v2) == V2
    assert set(agent.verify_bundles().values()) == {None}
    path = agent.on_launch()
    assert path is not None
    assert v2.manifest_id in path


def test_a_corrupt_patch_falls_back_to_the_archive_and_is_reported(
    sim: RepositorySimulator, fs: MemoryFileSystem, make_agent: AgentFactory
) -> None:
    """A patch whose output fails the signed hashes is dropped; the full archive installs."""
    agent, v1 = _on_v1(sim, fs, make_agent)
    v2 = sim.publish(V2)
    patch = bytearray(sim.make_patch(v1, v2))
    patch[-5] ^= 0xFF
    sim.patches[(v1.manifest_id, v2.manifest_id)] = bytes(patch)
    result = agent.sync()
    assert (result.status, result.patched) == (SyncStatus.STAGED, False)
    fetched = [r.url.path.split("/")[1] for r in sim.requests if r.method == "GET"]
    assert fetched[-2:] == ["patches", "blobs"]  # the patch, then the archive
    assert _installed(fs, v2) == V2
    failed = [r for r in sim.reports if r["status"] == "failed"]
    assert len(failed) == 1
    assert "fell back to the full archive" in failed[0]["reason"]
    assert v2.manifest_id not in agent.state.failed  # the release itself is fine


def test_a_patch_for_another_base_is_not_applied(
    sim: RepositorySimulator, fs: MemoryFileSystem, make_agent: AgentFactory
) -> None:
    """A patch made from a release this device does not have is never used."""
    agent, v1 = _on_v1(sim, fs, make_agent)
    other = sim.publish(sample_bundle("other"))
    v2 = sim.publish(V2)
    sim.patches[(v1.manifest_id, v2.manifest_id)] = sim.make_patch(other, v2)
    result = agent.sync()
    assert (result.status, result.patched) == (SyncStatus.STAGED, False)
    assert _installed(fs, v2) == V2


def test_a_patch_claimed_larger_than_the_archive_is_ignored(
    sim: RepositorySimulator, fs: MemoryFileSystem, make_agent: AgentFactory
) -> None:
    """The unsigned size hint never makes the device download more than the full archive."""
    agent, v1 = _on_v1(sim, fs, make_agent)
    v2 = sim.publish(V2)
    sim.make_patch(v1, v2)
    sim.patch_size = v2.built.manifest.archive.length * 100
    offer = agent.check()
    assert offer is not None
    assert (offer.patch_size, offer.download_size) == (None, v2.built.manifest.archive.length)
    result = agent.sync()
    assert (result.status, result.patched) == (SyncStatus.STAGED, False)
    assert [r.url.path for r in sim.archive_requests()] == [f"/blobs/{v2.manifest_id}"]
