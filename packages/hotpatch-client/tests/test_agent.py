"""The agent's behaviour as an app sees it: launches, updates, reverts, reports, resumes."""

from __future__ import annotations

import stat
from collections.abc import Callable
from pathlib import Path

import attrs
import pytest

from hotpatch_client import (
    Agent,
    AgentLockedError,
    DeviceLimits,
    DownloadPolicy,
    NetworkError,
    OsFileSystem,
    Progress,
    SyncStatus,
)
from hotpatch_client.install import LocalTamperingError
from hotpatch_client.testing import (
    FakeClock,
    MemoryFileSystem,
    RepositorySimulator,
    confirm_update,
    sample_bundle,
)
from hotpatch_core.errors import IllegalTransitionError, SchemaError, TooLargeError

AgentFactory = Callable[..., Agent]
V1 = sample_bundle("v1")
V2 = sample_bundle("v2", extra=3)


def _bundle_text(fs: MemoryFileSystem, path: str | None) -> bytes | None:
    return None if path is None else fs.read_file(path.removeprefix("mem:/"))


def test_first_launch_runs_the_embedded_bundle_then_the_update(
    sim: RepositorySimulator, fs: MemoryFileSystem, make_agent: AgentFactory
) -> None:
    """First launch runs the embedded bundle then the update."""
    agent = make_agent(fs)
    with pytest.raises(IllegalTransitionError):
        agent.bundle_path()
    assert agent.on_launch() is None
    sim.publish(V1)
    result = agent.sync()
    assert result.status is SyncStatus.STAGED
    assert agent.bundle_path() is None  # staged bundles wait for the next launch
    path = agent.on_launch()
    assert _bundle_text(fs, path) == V1["index.android.bundle"]
    agent.notify_ready()
    assert agent.sync().reports_sent == 1
    assert [(r["status"], r.get("phase")) for r in sim.reports] == [("applied", None)]


def test_crash_loop_reverts_and_never_fetches_the_release_again(
    sim: RepositorySimulator, fs: MemoryFileSystem, make_agent: AgentFactory
) -> None:
    """Crash loop reverts and never fetches the release again."""
    v1 = sim.publish(V1)
    agent = make_agent(fs)
    confirm_update(agent)
    v2 = sim.publish(V2)
    assert agent.sync().status is SyncStatus.STAGED
    for _ in range(2):  # the new bundle crashes before its first render
        assert _bundle_text(fs, agent.on_launch()) == V2["index.android.bundle"]
    assert _bundle_text(fs, agent.on_launch()) == V1["index.android.bundle"]
    assert v2.manifest_id in agent.state.failed
    assert not fs.is_dir(f"releases/{v2.manifest_id}")
    sim.requests.clear()
    assert agent.sync().status is SyncStatus.UP_TO_DATE
    assert sim.archive_requests() == []
    rolled = [r for r in sim.reports if r["manifestId"] == v2.manifest_id]
    assert [(r["status"], r["phase"]) for r in rolled] == [("rolled_back", "first_launch")]
    assert agent.state.confirmed is not None
    assert agent.state.confirmed.manifest_id == v1.manifest_id


def test_confirmed_bundle_is_never_reverted(
    sim: RepositorySimulator, fs: MemoryFileSystem, make_agent: AgentFactory
) -> None:
    """Confirmed bundle is never reverted."""
    sim.publish(V1)
    agent = make_agent(fs)
    confirm_update(agent)
    for _ in range(5):
        assert _bundle_text(fs, agent.on_launch()) == V1["index.android.bundle"]


def test_mandatory_update_restarts_now_and_apply_restarts_on_request(
    sim: RepositorySimulator, fs: MemoryFileSystem, make_agent: AgentFactory
) -> None:
    """Mandatory update restarts now and apply restarts on request."""
    restarts: list[str] = []
    agent = make_agent(fs, restart=lambda: restarts.append("restart"))
    agent.on_launch()
    sim.publish(V1, mandatory=True)
    assert agent.sync().status is SyncStatus.RESTART_REQUESTED
    assert restarts == ["restart"]
    agent.on_launch()
    sim.publish(V2)
    assert agent.sync().status is SyncStatus.STAGED
    assert restarts == ["restart"]
    agent.apply()
    assert restarts == ["restart", "restart"]
    agent.on_launch()
    with pytest.raises(IllegalTransitionError):
        agent.apply()  # nothing staged any more


def test_binary_update_discards_ota_bundles(
    sim: RepositorySimulator, fs: MemoryFileSystem, make_agent: AgentFactory
) -> None:
    """Binary update discards ota bundles."""
    sim.publish(V1)
    agent = make_agent(fs)
    confirm_update(agent)
    agent.close()
    newer_binary = make_agent(fs, native_version="2.0.0")
    assert newer_binary.on_launch() is None
    assert fs.listdir("releases") == []


def test_progress_is_reported_for_every_stage(
    sim: RepositorySimulator, fs: MemoryFileSystem, make_agent: AgentFactory
) -> None:
    """Progress is reported for every stage."""
    release = sim.publish(sample_bundle("big", extra=20))
    seen: list[Progress] = []
    agent = make_agent(fs)
    agent.on_launch()
    agent.sync(seen.append)
    downloads = [p for p in seen if p.stage == "download"]
    assert downloads[-1].done == downloads[-1].total == release.built.manifest.archive.length
    installs = [p.done for p in seen if p.stage == "install"]
    assert installs == sorted(installs)
    assert installs[-1] == release.built.manifest.archive.uncompressed_size


def test_interrupted_download_resumes_with_a_range_request(
    sim: RepositorySimulator, fs: MemoryFileSystem, make_agent: AgentFactory, clock: FakeClock
) -> None:
    """Interrupted download resumes with a range request."""
    release = sim.publish(sample_bundle("big", extra=40))
    length = release.built.manifest.archive.length
    sim.cut_after = length // 3
    agent = make_agent(fs)
    agent.on_launch()
    result = agent.sync()
    assert result.status is SyncStatus.STAGED
    requests = sim.archive_requests()
    assert [r.headers.get("range") for r in requests] == [None, f"bytes={length // 3}-"]
    assert len(clock.slept) == 1  # one backoff between the attempts


def test_partial_download_survives_a_restart(
    sim: RepositorySimulator, fs: MemoryFileSystem, make_agent: AgentFactory
) -> None:
    """Partial download survives a restart."""
    release = sim.publish(sample_bundle("big", extra=40))
    length = release.built.manifest.archive.length
    sim.cut_after = length // 2
    agent = make_agent(fs, download=DownloadPolicy(retries=0))
    agent.on_launch()
    result = agent.sync()
    assert isinstance(result.error, NetworkError)
    assert fs.size(f"downloads/{release.manifest_id}.part") == length // 2
    agent.close()  # the process exits; the next one starts on the same storage
    again = make_agent(fs)
    again.on_launch()
    sim.requests.clear()
    assert again.sync().status is SyncStatus.STAGED
    assert [r.headers.get("range") for r in sim.archive_requests()] == [f"bytes={length // 2}-"]


def test_server_ignoring_range_restarts_from_zero(
    sim: RepositorySimulator, fs: MemoryFileSystem, make_agent: AgentFactory
) -> None:
    """Server ignoring range restarts from zero."""
    release = sim.publish(sample_bundle("big", extra=40))
    sim.cut_after = release.built.manifest.archive.length // 2
    sim.ignore_range = True
    agent = make_agent(fs)
    agent.on_launch()
    assert agent.sync().status is SyncStatus.STAGED
    assert _bundle_text(fs, agent.on_launch()) == sample_bundle("big")["index.android.bundle"]


def test_transient_errors_are_retried_with_growing_backoff(
    sim: RepositorySimulator, fs: MemoryFileSystem, make_agent: AgentFactory, clock: FakeClock
) -> None:
    """Transient errors are retried with growing backoff."""
    sim.publish(V1)
    sim.statuses = [503, 502, 429]
    agent = make_agent(fs)
    agent.on_launch()
    assert agent.sync().status is SyncStatus.STAGED
    assert len(clock.slept) == 3
    assert clock.slept[2] > clock.slept[0]


def test_retries_are_bounded_and_a_client_error_is_not_retried(
    sim: RepositorySimulator, fs: MemoryFileSystem, make_agent: AgentFactory, clock: FakeClock
) -> None:
    """Retries are bounded and a client error is not retried."""
    release = sim.publish(V1)
    sim.statuses = [500] * 10
    agent = make_agent(fs)
    agent.on_launch()
    result = agent.sync()
    assert isinstance(result.error, NetworkError)
    assert len(clock.slept) == 4  # DownloadPolicy.retries
    sim.statuses = [403]
    result = agent.sync()
    assert isinstance(result.error, NetworkError)
    assert not result.error.retryable
    assert len(clock.slept) == 4
    failures = [r for r in sim.reports if r["manifestId"] == release.manifest_id]
    assert {(r["status"], r["phase"]) for r in failures} == {("failed", "download")}
    assert agent.sync().status is SyncStatus.STAGED  # the server recovered


def test_unreachable_server_is_a_network_error(fs: MemoryFileSystem, clock: FakeClock) -> None:
    """Unreachable server is a network error."""
    import httpx  # noqa: PLC0415

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    sim = RepositorySimulator()
    client = httpx.Client(transport=httpx.MockTransport(refuse))
    with Agent(sim.config(), http=client, fs=fs, clock=clock) as agent:
        agent.on_launch()
        with pytest.raises(NetworkError):
            agent.check()
        assert agent.sync().status is SyncStatus.FAILED
        assert agent.on_launch() is None


def test_reports_wait_in_a_durable_queue_until_the_server_takes_them(
    sim: RepositorySimulator, fs: MemoryFileSystem, make_agent: AgentFactory
) -> None:
    """Reports wait in a durable queue until the server takes them."""
    sim.publish(V1)
    agent = make_agent(fs)
    agent.on_launch()
    agent.sync()
    agent.on_launch()
    sim.reports_status = 503
    agent.notify_ready()
    assert agent.flush_reports() == 0
    agent.close()
    restarted = make_agent(fs.after_crash())  # queued durably: survives even a crash
    assert restarted.pending_reports() == 1
    assert restarted.flush_reports() == 0
    sim.reports_status = None
    assert restarted.flush_reports() == 1
    assert restarted.flush_reports() == 0
    assert [r["status"] for r in sim.reports] == ["applied"]


def test_a_report_the_server_refuses_is_dropped(
    sim: RepositorySimulator, fs: MemoryFileSystem, make_agent: AgentFactory
) -> None:
    """A report the server refuses is dropped."""
    sim.publish(V1)
    agent = make_agent(fs)
    confirm_update(agent)
    sim.reports_status = 422
    assert agent.flush_reports() == 0
    assert agent.pending_reports() == 0


def test_archive_changed_between_hashing_and_extraction_is_local_not_the_release(
    sim: RepositorySimulator, fs: MemoryFileSystem, make_agent: AgentFactory
) -> None:
    """A15: the downloaded file is altered in place after it was hashed."""
    release = sim.publish(V1)
    part = f"downloads/{release.manifest_id}.part"

    def tamper(progress: Progress) -> None:
        if progress.stage == "install" and progress.done == 0:
            data = bytearray(fs.read_file(part))
            data[-30] ^= 0xFF  # inside the central directory or the last entry
            data[40] ^= 0xFF  # inside the first entry's data
            fs.write_file(part, bytes(data))

    agent = make_agent(fs)
    agent.on_launch()
    result = agent.sync(tamper)
    assert isinstance(result.error, LocalTamperingError)
    assert release.manifest_id not in agent.state.failed
    assert agent.on_launch() is None
    assert agent.sync().status is SyncStatus.STAGED  # fetched again, clean


def test_archive_replaced_by_path_after_hashing_changes_nothing(
    sim: RepositorySimulator, fs: MemoryFileSystem, make_agent: AgentFactory
) -> None:
    """A15: the path is swapped after hashing; extraction reads the descriptor that was hashed."""
    release = sim.publish(V1)
    part = f"downloads/{release.manifest_id}.part"
    evil = sim.publish(V2)

    def swap(progress: Progress) -> None:
        if progress.stage == "install" and progress.done == 0:
            handle = fs.open_new("downloads/evil")
            handle.write(evil.built.archive)
            fs.replace("downloads/evil", part)

    sim.offer = release
    agent = make_agent(fs)
    agent.on_launch()
    assert agent.sync(swap).status is SyncStatus.STAGED
    assert _bundle_text(fs, agent.on_launch()) == V1["index.android.bundle"]


def test_extracted_file_changed_after_writing_fails_the_install(
    sim: RepositorySimulator, fs: MemoryFileSystem, make_agent: AgentFactory
) -> None:
    """A15: a file altered after it was written is caught by the read-back before the rename."""
    release = sim.publish(V1)
    total = release.built.manifest.archive.uncompressed_size
    order = [e.path for e in release.built.manifest.files]

    def tamper(progress: Progress) -> None:
        if progress.stage == "install" and progress.done == total:  # the last file's last write
            staged = f"releases/.staging-{release.manifest_id}/files/{order[-1]}"
            fs.write_file(staged, b"evil();")

    agent = make_agent(fs)
    agent.on_launch()
    result = agent.sync(tamper)
    assert isinstance(result.error, LocalTamperingError)
    assert fs.listdir("releases") == []
    assert release.manifest_id not in agent.state.failed


def test_startup_removes_leftovers(
    sim: RepositorySimulator, fs: MemoryFileSystem, make_agent: AgentFactory
) -> None:
    """Startup removes leftovers."""
    sim.publish(V1)
    agent = make_agent(fs)
    agent.on_launch()
    agent.sync()
    agent.close()
    for directory in ("downloads", "reports", "releases/.staging-abc", "releases/" + "d" * 64):
        fs.mkdir(directory)
    for path in ("state.json.tmp", "downloads/" + "e" * 64 + ".part", "reports/x.json.tmp"):
        fs.open_new(path).write(b"junk")
    restarted = make_agent(fs)
    installed = {b.manifest_id for b in restarted.state.installed()}
    assert set(fs.listdir("releases")) == installed
    assert fs.listdir("downloads") == []
    assert fs.listdir("reports") == []
    assert "state.json.tmp" not in fs.listdir("")


def test_unreadable_state_starts_over_on_the_embedded_bundle(
    sim: RepositorySimulator, fs: MemoryFileSystem, make_agent: AgentFactory
) -> None:
    """Unreadable state starts over on the embedded bundle."""
    sim.publish(V1)
    agent = make_agent(fs)
    agent.on_launch()
    agent.sync()
    agent.close()
    fs.write_file("state.json", b'{"format": 1, "format": 2}')
    restarted = make_agent(fs)
    assert restarted.on_launch() is None
    assert "state.json.corrupt" in fs.listdir("")
    assert fs.listdir("releases") == []


def test_device_id_is_generated_once_and_kept(
    fs: MemoryFileSystem, make_agent: AgentFactory
) -> None:
    """Device id is generated once and kept."""
    first = make_agent(fs, device_id=None)
    generated = first.device_id
    assert len(generated) == 32
    first.close()
    assert make_agent(fs, device_id=None).device_id == generated


def test_real_disk_layout_permissions_and_lock(sim: RepositorySimulator, tmp_path: Path) -> None:
    """Real disk layout permissions and lock."""
    sim.publish(V1)
    storage = tmp_path / "ota"
    clock = FakeClock()
    with Agent(sim.config(), http=sim.client(), storage_dir=storage, clock=clock) as agent:
        with pytest.raises(AgentLockedError):
            Agent(sim.config(), http=sim.client(), storage_dir=storage, clock=clock)
        agent.on_launch()
        assert agent.sync().status is SyncStatus.STAGED
        path = agent.on_launch()
        assert path is not None
        assert Path(path).read_bytes() == V1["index.android.bundle"]
        assert stat.S_IMODE((storage / "state.json").stat().st_mode) == 0o600
        assert stat.S_IMODE(Path(path).stat().st_mode) == 0o600
        assert stat.S_IMODE((storage / "releases").stat().st_mode) == 0o700
    # The lock is released on close.
    Agent(sim.config(), http=sim.client(), fs=OsFileSystem(storage), clock=clock).close()


def test_installed_bundles_can_be_re_verified(
    sim: RepositorySimulator, fs: MemoryFileSystem, make_agent: AgentFactory
) -> None:
    """verify_bundles() checks the stored envelope and every file; tampering is named."""
    release = sim.publish(V1)
    agent = make_agent(fs)
    agent.on_launch()
    agent.sync()
    assert agent.verify_bundles() == {release.manifest_id: None}
    fs.write_file(f"releases/{release.manifest_id}/files/assets/logo.png", b"changed")
    assert isinstance(agent.verify_bundles()[release.manifest_id], LocalTamperingError)
    fs.write_file(f"releases/{release.manifest_id}/envelope", b"{}")
    assert agent.verify_bundles()[release.manifest_id] is not None


def test_each_device_limit_trips_when_lowered_and_the_defaults_follow_the_core(
    sim: RepositorySimulator, make_agent: AgentFactory
) -> None:
    """Lowered caps refuse what they cap; the defaults hold the largest envelope the core takes."""
    from hotpatch_core.release import MAX_RELEASE_ENVELOPE_BYTES  # noqa: PLC0415

    defaults = DeviceLimits()
    assert defaults.envelope_bytes == MAX_RELEASE_ENVELOPE_BYTES
    assert defaults.check_answer_bytes > MAX_RELEASE_ENVELOPE_BYTES * 4 // 3  # base64 in JSON
    sim.publish(V1)

    small_answer = make_agent(
        MemoryFileSystem(), limits=attrs.evolve(defaults, check_answer_bytes=64)
    )
    small_answer.on_launch()
    result = small_answer.sync()
    assert isinstance(result.error, NetworkError)
    assert "exceeds 64 bytes" in str(result.error)

    fs = MemoryFileSystem()
    agent = make_agent(fs)
    confirm_update(agent)
    agent.close()
    small_envelope = make_agent(fs, limits=attrs.evolve(defaults, envelope_bytes=64))
    small_envelope.on_launch()
    (failure,) = small_envelope.verify_bundles().values()
    assert isinstance(failure, TooLargeError)


@pytest.mark.parametrize(
    ("field", "value"),
    [("device_id", "has space"), ("device_id", "d" * 129), ("device_id", "ü"), ("app_id", "")],
)
def test_an_id_its_reports_could_not_carry_is_refused_at_configuration(
    sim: RepositorySimulator, field: str, value: str
) -> None:
    """The app learns at start-up, not when a report is first queued and the server refuses it."""
    with pytest.raises(SchemaError) as refused:
        sim.config(**{field: value})
    assert refused.value.field == field
