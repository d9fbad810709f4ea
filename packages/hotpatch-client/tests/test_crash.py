"""Durable install, proven: crash or fail at every file-system operation (SECURITY.md).

For every k in 1..N operations of a full install (and of a revert), the
device crashes at operation k, losing whatever was not fsynced; a new agent
starts on what survived. The launchable bundle must be exactly the old or
the new one, every file matching its signed hash, and the high-water mark
must never have gone down. Then the same with an I/O error, a full disk and
a read-only disk at operation k: the agent reports a typed error, nothing
half-written is used, and once the disk recovers the update completes.
"""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Callable, Iterator

import pytest

from hotpatch_client import Agent, StorageError, SyncStatus
from hotpatch_client.install import FILES, verify_installed
from hotpatch_client.storage import release_dir
from hotpatch_client.testing import (
    FakeClock,
    MemoryFileSystem,
    PublishedRelease,
    RepositorySimulator,
    SimulatedCrash,
    confirm_update,
    sample_bundle,
)
from hotpatch_core.machine import DeviceState, ReportStatus, trusted_root

AgentFactory = Callable[..., Agent]


def _position(state: DeviceState) -> tuple[int, int]:
    marks = list(state.high_water.values())
    return marks[0].position() if marks else (0, 0)


def _release(sim: RepositorySimulator, manifest_id: str) -> PublishedRelease:
    return next(r for r in sim.releases if r.manifest_id == manifest_id)


def _assert_sound(
    fs: MemoryFileSystem, sim: RepositorySimulator, clock: FakeClock, allowed: set[str | None]
) -> Agent:
    """Restart on ``fs``: the launched bundle is one of ``allowed`` and hash-valid; no leftovers."""
    agent = Agent(sim.config(), http=sim.client(), fs=fs, clock=clock)
    path = agent.on_launch()
    running = agent.state.running
    running_id = running.manifest_id if running else None
    assert running_id in allowed
    for bundle in agent.state.installed():
        files = _release(sim, bundle.manifest_id).built.manifest.files
        verify_installed(fs, f"{release_dir(bundle.manifest_id)}/{FILES}", files)
    assert set(agent.verify_bundles().values()) <= {None}  # and the stored envelopes verify
    if running_id is not None:
        assert path is not None
        assert path.endswith(f"{running_id}/{FILES}/index.android.bundle")
    else:
        assert path is None
    on_disk = set(fs.listdir("releases"))
    assert on_disk == {b.manifest_id for b in agent.state.installed()}, "orphans or missing dirs"
    assert not [n for n in fs.listdir("") if n.endswith(".tmp")]
    return agent


def _base(sim: RepositorySimulator, clock: FakeClock) -> tuple[MemoryFileSystem, str, str]:
    """A durable disk with v1 confirmed while the server offers v2; returns (disk, v1, v2)."""
    v1 = sim.publish(sample_bundle("v1", extra=3))
    fs = MemoryFileSystem()
    with Agent(sim.config(), http=sim.client(), fs=fs, clock=clock) as agent:
        confirm_update(agent)
    v2 = sim.publish(sample_bundle("v2", extra=4))
    return fs.after_crash(), v1.manifest_id, v2.manifest_id


def _install(fs: MemoryFileSystem, sim: RepositorySimulator, clock: FakeClock) -> None:
    with Agent(sim.config(), http=sim.client(), fs=fs, clock=clock) as agent:
        agent.on_launch()
        result = agent.sync()
        if result.error is not None:
            raise result.error


def _survivors(
    base: MemoryFileSystem, work: Callable[[MemoryFileSystem], None]
) -> Iterator[MemoryFileSystem]:
    """For every k of ``work``'s operations on a copy of ``base``: what survives a crash at k."""
    counter = base.after_crash()
    work(counter)
    for k in range(1, counter.operations + 1):
        fs = base.after_crash()
        fs.crash_at = k
        with pytest.raises(SimulatedCrash):
            work(fs)
        yield fs.after_crash()


def test_crash_at_every_operation_of_an_install(clock: FakeClock) -> None:
    """Crash at every operation of an install."""
    sim = RepositorySimulator()
    base, v1, v2 = _base(sim, clock)
    with Agent(sim.config(), http=sim.client(), fs=base.after_crash(), clock=clock) as probe:
        mark_before = _position(probe.state)
    outcomes = {v1: 0, v2: 0}
    for survivor in _survivors(base, lambda fs: _install(fs, sim, clock)):
        agent = _assert_sound(survivor, sim, clock, {v1, v2})
        assert _position(agent.state) >= mark_before
        running = agent.state.running
        assert running is not None
        outcomes[running.manifest_id] += 1
        # Recovery is complete: a healthy sync now finishes the update.
        if running.manifest_id == v1:
            assert agent.sync().status in {SyncStatus.STAGED, SyncStatus.UP_TO_DATE}
            assert agent.state.pending is not None or agent.state.trial is not None
        agent.close()
        _assert_sound(survivor, sim, clock, {v2}).close()
    assert sum(outcomes.values()) > 30  # a real install: files, fsyncs, renames, the state
    assert outcomes[v1] > 0
    assert outcomes[v2] > 0  # crashes after the state pointed at v2 launch v2


def test_crash_at_every_operation_of_a_patched_install(clock: FakeClock) -> None:
    """The same proof when v2 is built from a patch against the installed v1."""
    sim = RepositorySimulator()
    base, v1, v2 = _base(sim, clock)
    sim.make_patch(_release(sim, v1), _release(sim, v2))
    with Agent(sim.config(), http=sim.client(), fs=base.after_crash(), clock=clock) as agent:
        agent.on_launch()
        assert agent.sync().patched
    for survivor in _survivors(base, lambda fs: _install(fs, sim, clock)):
        _assert_sound(survivor, sim, clock, {v1, v2}).close()


def test_crash_at_every_operation_of_a_revert(clock: FakeClock) -> None:
    """Crash at every operation of a revert."""
    sim = RepositorySimulator()
    base, v1, v2 = _base(sim, clock)
    with Agent(sim.config(), http=sim.client(), fs=base, clock=clock) as agent:
        agent.on_launch()
        assert agent.sync().status is SyncStatus.STAGED
    for _ in range(2):  # two launches of v2 that never become ready
        with Agent(sim.config(), http=sim.client(), fs=base, clock=clock) as agent:
            assert agent.on_launch() is not None
            assert agent.state.running is not None
            assert agent.state.running.manifest_id == v2
    base = base.after_crash()

    def revert(fs: MemoryFileSystem) -> None:
        with Agent(sim.config(), http=sim.client(), fs=fs, clock=clock) as agent:
            agent.on_launch()

    crashes = 0
    for survivor in _survivors(base, revert):
        crashes += 1
        agent = _assert_sound(survivor, sim, clock, {v1})
        assert v2 in agent.state.failed
        reports = agent._reports.pending()
        assert any(r.status is ReportStatus.ROLLED_BACK and r.manifest_id == v2 for _, r in reports)
        assert agent.sync().status is SyncStatus.UP_TO_DATE  # v2 is never fetched again
        assert [r["status"] for r in sim.reports if r["manifestId"] == v2] == ["rolled_back"]
        sim.reports.clear()
        agent.close()
    assert crashes >= 5


@pytest.mark.parametrize(
    ("code", "sticky"),
    [(errno.EIO, False), (errno.ENOSPC, True), (errno.EROFS, True)],
    ids=["io-error", "disk-full", "read-only"],
)
def test_storage_failure_at_every_operation(clock: FakeClock, code: int, sticky: bool) -> None:
    """An I/O error once, or a disk that stays full / read-only, at each operation of an install."""
    sim = RepositorySimulator()
    base, v1, v2 = _base(sim, clock)
    counter = base.after_crash()
    _install(counter, sim, clock)
    for k in range(1, counter.operations + 1):
        fs = base.after_crash()
        fs.fail_at, fs.fail_errno, fs.sticky = k, code, sticky
        agent = Agent(sim.config(), http=sim.client(), fs=fs, clock=clock)
        with contextlib.suppress(StorageError):  # the app starts its embedded bundle
            agent.on_launch()
        result = agent.sync()
        if result.error is not None:
            assert not isinstance(result.error, OSError)
        # Whatever happened, a crash now leaves a sound device ...
        _assert_sound(fs.after_crash(), sim, clock, {v1, v2}).close()
        # ... and once the disk recovers, the same agent completes the update.
        fs.heal()
        result = agent.sync()
        assert result.error is None, (k, result.error)
        state = agent.state
        staged = state.pending or state.trial or state.confirmed
        assert staged is not None
        assert staged.manifest_id == v2
        agent.close()
        _assert_sound(fs.after_crash(), sim, clock, {v2}).close()


def test_crash_at_every_operation_of_a_root_rotation(clock: FakeClock) -> None:
    """A10: crash at every operation of a sync that walks to root v2 and installs K2's release.

    After each crash the device trusts v1 or v2, never anything else or a
    torn state; it launches v1 or v2; and a healthy sync then finishes the
    walk and the update.
    """
    sim = RepositorySimulator()
    v1 = sim.publish(sample_bundle("v1", extra=3))
    base = MemoryFileSystem()
    with Agent(sim.config(), http=sim.client(), fs=base, clock=clock) as agent:
        confirm_update(agent)
    sim.rotate()
    v2 = sim.publish(sample_bundle("v2", extra=4))
    versions = set()
    for survivor in _survivors(base, lambda fs: _install(fs, sim, clock)):
        with Agent(sim.config(), http=sim.client(), fs=survivor, clock=clock) as agent:
            agent.on_launch()
            running = agent.state.running
            assert running is not None
            assert running.manifest_id in {v1.manifest_id, v2.manifest_id}
            version = trusted_root(agent.state, agent.config.device_config()).version
            assert version in {1, 2}
            versions.add(version)
            assert not [n for n in survivor.listdir("") if n.endswith(".tmp")]
            result = agent.sync()
            assert result.error is None
            assert trusted_root(agent.state, agent.config.device_config()).version == 2
            staged = agent.state.pending or agent.state.trial or agent.state.confirmed
            assert staged is not None
            assert staged.manifest_id == v2.manifest_id
    assert versions == {1, 2}  # crashes land before and after the root was made durable
