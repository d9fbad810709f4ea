"""Every lie a server can tell (SECURITY.md A1-A19), against the agent through its HTTP client.

Each test asserts the typed error, that nothing was installed (the next
launch runs what ran before), and, for a refused manifest, that no archive
was requested at all.
"""

from __future__ import annotations

import io
import stat
import zipfile
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import attrs
import pytest

from hotpatch_client import Agent, NetworkError, SlowDownloadError, SyncStatus
from hotpatch_client.testing import (
    FakeClock,
    MemoryFileSystem,
    PublishedRelease,
    RepositorySimulator,
    confirm_update,
    sample_bundle,
)
from hotpatch_core.archive import FileEntry
from hotpatch_core.envelope import decode_envelope, encode_envelope, sign_envelope
from hotpatch_core.errors import (
    ArchiveError,
    ArchiveMismatchError,
    BadSignatureError,
    EpochError,
    EquivocationError,
    ExpiredError,
    HashMismatchError,
    HotPatchError,
    IdentityMismatchError,
    KeyScopeError,
    MalformedEnvelopeError,
    PayloadTypeError,
    RollbackError,
    RootRotationError,
    TooLargeError,
    UnknownKeyError,
    UnsafePathError,
    UnsignedError,
    UnsupportedEntryError,
    WithdrawnError,
    WithheldError,
)
from hotpatch_core.keys import SigningKey
from hotpatch_core.manifest import Platform, encode_manifest
from hotpatch_core.release import sign_release
from hotpatch_core.testing import FIXED_TIME, make_pki, rotate_pki
from hotpatch_core.trust import Scope

V1 = sample_bundle("v1")
V2 = sample_bundle("v2", extra=2)
AgentFactory = Callable[..., Agent]


def _installed_v1(
    sim: RepositorySimulator, fs: MemoryFileSystem, make_agent: AgentFactory
) -> tuple[Agent, PublishedRelease]:
    """A device running a confirmed v1; returns (agent, v1)."""
    v1 = sim.publish(V1)
    agent = make_agent(fs)
    confirm_update(agent)
    sim.requests.clear()
    return agent, v1


def _assert_untouched(
    agent: Agent, v1: PublishedRelease, sim: RepositorySimulator, *, fetched: bool
) -> None:
    state = agent.state
    assert state.confirmed is not None
    assert state.confirmed.manifest_id == v1.manifest_id
    assert state.pending is None
    assert state.trial is None
    path = agent.on_launch()
    assert path is not None
    assert path.endswith("index.android.bundle")
    assert agent.state.running == state.confirmed
    if not fetched:
        assert sim.archive_requests() == [], "an archive was fetched after a refused manifest"


def _refuse(agent: Agent, error: type[HotPatchError]) -> HotPatchError:
    with pytest.raises(error) as caught:
        agent.check()
    result = agent.sync()
    assert result.status is SyncStatus.FAILED
    assert isinstance(result.error, error)
    return caught.value


# --- A1: arbitrary installation -------------------------------------------------------


def _resigned(envelope: bytes, **changes: Any) -> bytes:
    return encode_envelope(attrs.evolve(decode_envelope(envelope), **changes))


@pytest.mark.parametrize(
    ("lie", "error"),
    [
        ("no signature", UnsignedError),
        ("bad signature", BadSignatureError),
        ("unknown key", UnknownKeyError),
        ("signature over other bytes", BadSignatureError),
        ("wrong payload type", PayloadTypeError),
        ("truncated envelope", MalformedEnvelopeError),
        ("raw JavaScript", MalformedEnvelopeError),
    ],
)
def test_a1_forged_manifests_are_refused_before_any_download(
    sim: RepositorySimulator,
    fs: MemoryFileSystem,
    make_agent: AgentFactory,
    lie: str,
    error: type[HotPatchError],
) -> None:
    """A1: forged manifests are refused before any download."""
    agent, v1 = _installed_v1(sim, fs, make_agent)
    v2 = sim.publish(V2)
    good = decode_envelope(v2.envelope)
    if lie == "no signature":
        forged = _resigned(v2.envelope, signatures=())
    elif lie == "bad signature":
        signature = good.signatures[0]
        flipped = bytes([signature.sig[0] ^ 1]) + signature.sig[1:]
        forged = _resigned(v2.envelope, signatures=(attrs.evolve(signature, sig=flipped),))
    elif lie == "unknown key":
        forged = sign_release(v2.built.manifest, [SigningKey.generate()])
    elif lie == "signature over other bytes":
        other = encode_manifest(attrs.evolve(v2.built.manifest, version="9.9.9"))
        forged = _resigned(v2.envelope, payload=other)
    elif lie == "wrong payload type":
        forged = encode_envelope(
            sign_envelope("application/vnd.other+json", good.payload, [sim.pki.publisher])
        )
    elif lie == "truncated envelope":
        forged = v2.envelope[: len(v2.envelope) // 2]
    else:
        forged = V2["index.android.bundle"]
    sim.envelope_override = forged
    _refuse(agent, error)
    _assert_untouched(agent, v1, sim, fetched=False)


def test_a1_key_out_of_scope(fs: MemoryFileSystem, clock: FakeClock) -> None:
    """A publisher key scoped to another app signs for ours: refused."""
    sim = RepositorySimulator(pki=make_pki(scope=Scope(("com.other.app",), ("*",), ("*",)), seed=9))
    sim.publish(V1)
    with Agent(sim.config(), http=sim.client(), fs=fs, clock=clock) as device:
        device.on_launch()
        with pytest.raises(KeyScopeError):
            device.check()
        assert sim.archive_requests() == []
        assert device.on_launch() is None


# --- A8 / A4: rollback, replay, equivocation, fast-forward ----------------------------


def test_a8_older_sequence_is_a_rollback(
    sim: RepositorySimulator, fs: MemoryFileSystem, make_agent: AgentFactory
) -> None:
    """A8: older sequence is a rollback."""
    agent, _ = _installed_v1(sim, fs, make_agent)
    older = sim.publish(V2)
    v3 = sim.publish(sample_bundle("v3"))
    assert agent.sync().status is SyncStatus.STAGED
    sim.requests.clear()
    sim.offer = older  # replay a signed release older than the one accepted
    with pytest.raises(RollbackError):
        agent.check()
    assert sim.archive_requests() == []
    assert agent.state.pending is not None
    assert agent.state.pending.manifest_id == v3.manifest_id


def test_a8_same_sequence_other_manifest_is_equivocation(
    sim: RepositorySimulator, fs: MemoryFileSystem, make_agent: AgentFactory
) -> None:
    """A8: same sequence other manifest is equivocation."""
    agent, v1 = _installed_v1(sim, fs, make_agent)
    twin = sim.publish(V2, sequence=v1.built.manifest.sequence)
    sim.offer = twin
    _refuse(agent, EquivocationError)
    _assert_untouched(agent, v1, sim, fetched=False)


def test_a4_manifest_from_another_epoch(
    sim: RepositorySimulator, fs: MemoryFileSystem, make_agent: AgentFactory
) -> None:
    """A4: manifest from another epoch."""
    agent, v1 = _installed_v1(sim, fs, make_agent)
    sim.publish(V2, epoch=2, sequence=1)
    _refuse(agent, EpochError)
    _assert_untouched(agent, v1, sim, fetched=False)


def test_a5_expired_manifest(
    sim: RepositorySimulator, fs: MemoryFileSystem, make_agent: AgentFactory
) -> None:
    """A5: expired manifest."""
    agent, v1 = _installed_v1(sim, fs, make_agent)
    v2 = sim.publish(V2)
    stale = attrs.evolve(v2.built.manifest, expires_at=FIXED_TIME - timedelta(days=1))
    sim.envelope_override = sign_release(stale, [sim.pki.publisher])
    _refuse(agent, ExpiredError)
    _assert_untouched(agent, v1, sim, fetched=False)


def test_a5_a_device_clock_set_back_cannot_revive_an_expired_manifest(
    sim: RepositorySimulator, fs: MemoryFileSystem, make_agent: AgentFactory, clock: FakeClock
) -> None:
    """A5: the newest signed time the device verified survives a restart and judges expiry.

    A device 4 days behind once staged a manifest that had expired 2 days
    before: expiry was judged by its clock alone.
    """
    agent, v1 = _installed_v1(sim, fs, make_agent)
    assert agent.state.trusted_time == v1.built.manifest.created_at
    agent.close()
    v2 = sim.publish(V2, created_at=FIXED_TIME - timedelta(days=5))
    stale = attrs.evolve(v2.built.manifest, expires_at=FIXED_TIME - timedelta(days=2))
    sim.envelope_override = sign_release(stale, [sim.pki.publisher])
    clock.wall = FIXED_TIME - timedelta(days=4)  # the clock was set back; the app restarts
    agent = make_agent(fs.after_crash())
    agent.on_launch()
    _refuse(agent, ExpiredError)
    _assert_untouched(agent, v1, sim, fetched=False)


# --- A5: the signed channel head -------------------------------------------------------


@pytest.fixture
def stamped(clock: FakeClock) -> RepositorySimulator:
    """A server whose apps' trust root names its timestamp key: devices require heads."""
    return RepositorySimulator(pki=make_pki(seed=11, timestamp=True), clock=clock)


@pytest.fixture
def make_stamped_agent(stamped: RepositorySimulator, clock: FakeClock) -> Iterator[AgentFactory]:
    """Build agents of the ``stamped`` server's app; every one is closed at the end."""
    agents: list[Agent] = []

    def build(fs: MemoryFileSystem) -> Agent:
        agent = Agent(stamped.config(), http=stamped.client(), fs=fs, clock=clock)
        agents.append(agent)
        return agent

    yield build
    for agent in agents:
        agent.close()


def test_a5_an_honest_server_with_heads_updates_the_device(
    stamped: RepositorySimulator, fs: MemoryFileSystem, make_stamped_agent: AgentFactory
) -> None:
    """The head travels with every answer and agrees with it: the update goes through."""
    agent, v1 = _installed_v1(stamped, fs, make_stamped_agent)
    assert agent.state.head_seen
    v2 = stamped.publish(V2)
    assert agent.sync().status is SyncStatus.STAGED
    assert agent.state.pending is not None
    assert agent.state.pending.manifest_id == v2.manifest_id != v1.manifest_id


def test_a5_a_mirror_replaying_an_old_answer_is_caught_when_its_head_expires(
    stamped: RepositorySimulator,
    fs: MemoryFileSystem,
    make_stamped_agent: AgentFactory,
    clock: FakeClock,
) -> None:
    """A mirror keeps answering with yesterday's head, which says v1 is the newest: v2 is hidden.

    Before heads existed, such a replay froze the device on v1 until v1's
    manifest expired (365 days by default).
    """
    agent, v1 = _installed_v1(stamped, fs, make_stamped_agent)
    stamped.head_override = stamped.head()  # recorded while v1 was the newest
    stamped.publish(V2)
    stamped.offer_nothing = True
    clock.advance(hours=23)  # within the head's lifetime the replay cannot be told apart
    assert agent.sync().status is SyncStatus.UP_TO_DATE
    clock.advance(hours=1)
    _refuse(agent, ExpiredError)
    _assert_untouched(agent, v1, stamped, fetched=False)


def test_a5_a_device_that_saw_a_newer_head_refuses_an_older_one(
    stamped: RepositorySimulator,
    fs: MemoryFileSystem,
    make_stamped_agent: AgentFactory,
    clock: FakeClock,
) -> None:
    """Within its lifetime, a replayed head is refused by a device that has seen a newer one."""
    agent, v1 = _installed_v1(stamped, fs, make_stamped_agent)
    old = stamped.head()
    clock.advance(minutes=10)
    assert agent.sync().status is SyncStatus.UP_TO_DATE  # sees (and keeps) the newer head
    agent.close()
    agent = make_stamped_agent(fs.after_crash())  # kept across a restart
    agent.on_launch()
    stamped.head_override = old
    _refuse(agent, RollbackError)
    _assert_untouched(agent, v1, stamped, fetched=False)


def test_a5_a_withdrawn_release_served_by_a_mirror_is_refused(
    stamped: RepositorySimulator, fs: MemoryFileSystem, make_stamped_agent: AgentFactory
) -> None:
    """The team withdrew v2; a mirror keeps offering it with the current head, which omits it."""
    agent, v1 = _installed_v1(stamped, fs, make_stamped_agent)
    v2 = stamped.publish(V2)
    stamped.withdrawn.add(v2.manifest_id)
    stamped.offer = v2
    error = _refuse(agent, WithdrawnError)
    assert v2.manifest_id in str(error)
    _assert_untouched(agent, v1, stamped, fetched=False)


def test_a5_a_mirror_hiding_the_newest_release_is_detected(
    stamped: RepositorySimulator, fs: MemoryFileSystem, make_stamped_agent: AgentFactory
) -> None:
    """The current head lists v3 for this device; the mirror answers "nothing", then offers v2."""
    agent, v1 = _installed_v1(stamped, fs, make_stamped_agent)
    v2 = stamped.publish(V2)
    stamped.publish(sample_bundle("v3"))
    stamped.offer_nothing = True
    _refuse(agent, WithheldError)
    stamped.offer_nothing = False
    stamped.offer = v2
    _refuse(agent, WithheldError)
    _assert_untouched(agent, v1, stamped, fetched=False)


def test_a5_an_answer_without_a_head_is_refused(
    stamped: RepositorySimulator, fs: MemoryFileSystem, make_stamped_agent: AgentFactory
) -> None:
    """A mirror that strips the head gets nothing installed."""
    agent, v1 = _installed_v1(stamped, fs, make_stamped_agent)
    stamped.publish(V2)
    stamped.pki = attrs.evolve(stamped.pki, timestamp=None)
    _refuse(agent, UnsignedError)
    _assert_untouched(agent, v1, stamped, fetched=False)


# --- A10: key compromise and trust root rotation --------------------------------------


def _checks(sim: RepositorySimulator) -> list[str]:
    return [r.url.path for r in sim.requests if r.url.path == "/update/check"]


def test_a10_after_a_rotation_the_device_refuses_the_leaked_key_and_takes_the_new_one(
    sim: RepositorySimulator, fs: MemoryFileSystem, make_agent: AgentFactory
) -> None:
    """A10: K1 leaks, root v2 revokes it; the device walks to v2, refuses K1, installs K2's."""
    agent, v1 = _installed_v1(sim, fs, make_agent)
    leaked = sim.rotate()  # v2: new publisher K2, epoch 2, signed by v1's root keys
    built = attrs.evolve(v1.built.manifest, version="6.6.6", sequence=99)
    sim.envelope_override = sign_release(built, [leaked.publisher])  # what the thief signs
    sim.offer = v1
    _refuse(agent, UnknownKeyError)
    _assert_untouched(agent, v1, sim, fetched=False)
    assert sim.requests[0].url.path == f"/apps/{sim.app_id}/roots/2"
    sim.envelope_override = None
    sim.offer = None
    v2 = sim.publish(V2)  # signed by K2, epoch 2
    result = agent.sync()
    assert result.status is SyncStatus.STAGED, result.error
    assert agent.state.pending is not None
    assert agent.state.pending.manifest_id == v2.manifest_id
    agent.close()
    # The walk was durable: a restarted device asks for v3 and still trusts v2.
    sim.requests.clear()
    restarted = make_agent(fs)
    assert restarted.sync().status is SyncStatus.UP_TO_DATE
    assert sim.requests[0].url.path == f"/apps/{sim.app_id}/roots/3"


def test_a10_a_mirror_that_withholds_roots_installs_nothing_of_the_new_key(
    sim: RepositorySimulator, fs: MemoryFileSystem, make_agent: AgentFactory
) -> None:
    """A10: without root v2 the device cannot trust K2; when v2 reappears it catches up."""
    agent, v1 = _installed_v1(sim, fs, make_agent)
    sim.rotate()
    served = dict(sim.roots)
    sim.roots.clear()
    sim.publish(V2)
    _refuse(agent, UnknownKeyError)
    _assert_untouched(agent, v1, sim, fetched=False)
    sim.roots.update(served)
    assert agent.sync().status is SyncStatus.STAGED


@pytest.mark.parametrize("lie", ["new keys only", "skips a version", "replays v1", "oversized"])
def test_a10_a_forged_root_stops_the_update_before_the_check(
    sim: RepositorySimulator, fs: MemoryFileSystem, make_agent: AgentFactory, lie: str
) -> None:
    """A10: a root that does not chain is refused; no check is sent, no trust changes."""
    agent, v1 = _installed_v1(sim, fs, make_agent)
    pki = sim.pki
    if lie == "new keys only":
        thief = make_pki(version=2)
        sim.roots[2] = thief.root_bytes
        error: type[HotPatchError] = RootRotationError
    elif lie == "skips a version":
        sim.roots[2] = rotate_pki(rotate_pki(pki)).root_bytes
        error = RootRotationError
    elif lie == "replays v1":
        sim.roots[2] = pki.root_bytes
        error = RootRotationError
    else:
        sim.roots[2] = b" " * (agent.config.limits.root_bytes + 1)
        error = NetworkError
    sim.publish(V2)
    _refuse(agent, error)
    _assert_untouched(agent, v1, sim, fetched=False)
    assert _checks(sim) == []
    assert agent.state.trust_root is None


# --- A11: wrong software ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"app_id": "com.other.app"}, "app_id"),
        ({"platform": Platform.IOS}, "platform"),
        ({"channel": "staging"}, "channel"),
        ({"binary_range": "2.x"}, "binary_range"),
    ],
)
def test_a11_valid_release_for_another_target(
    sim: RepositorySimulator,
    fs: MemoryFileSystem,
    make_agent: AgentFactory,
    fields: dict[str, object],
    field: str,
) -> None:
    """A11: valid release for another target."""
    agent, v1 = _installed_v1(sim, fs, make_agent)
    sim.publish(V2, **fields)
    error = _refuse(agent, IdentityMismatchError)
    assert isinstance(error, IdentityMismatchError)
    assert error.field == field
    _assert_untouched(agent, v1, sim, fetched=False)


# --- A7: unsigned wrapper fields ------------------------------------------------------------


def test_a7_wrapper_cannot_make_a_release_mandatory(
    sim: RepositorySimulator, fs: MemoryFileSystem, make_agent: AgentFactory
) -> None:
    """A7: wrapper cannot make a release mandatory."""
    restarts: list[int] = []
    sim.publish(V1)
    sim.answer_extra = {"mandatory": True, "version": "99.0.0"}
    agent = make_agent(fs, restart=lambda: restarts.append(1))
    agent.on_launch()
    result = agent.sync()
    assert result.status is SyncStatus.STAGED
    assert result.update is not None
    assert (result.update.version, result.update.mandatory) == ("1.0.1", False)
    assert restarts == []


@pytest.mark.parametrize(
    "lie", [{"updateAvailable": "true"}, {"bundleUrl": 42}, {"head": 7}, {"manifest": None}]
)
def test_an_answer_that_breaks_the_protocol_fetches_nothing(
    sim: RepositorySimulator, fs: MemoryFileSystem, make_agent: AgentFactory, lie: dict[str, Any]
) -> None:
    """A mistyped field ends the check, not retried, with nothing fetched or changed."""
    agent, v1 = _installed_v1(sim, fs, make_agent)
    sim.publish(V2)
    sim.answer_extra = lie
    error = _refuse(agent, NetworkError)
    assert isinstance(error, NetworkError)
    assert not error.retryable
    assert "breaks the protocol" in str(error)
    _assert_untouched(agent, v1, sim, fetched=False)


# --- download attacks: A1 (hash), A2 (endless / lying lengths), A9 (slow) ---------------


def test_a1_archive_with_wrong_hash_is_discarded_not_blacklisted(
    sim: RepositorySimulator, fs: MemoryFileSystem, make_agent: AgentFactory
) -> None:
    """A1: archive with wrong hash is discarded not blacklisted."""
    agent, v1 = _installed_v1(sim, fs, make_agent)
    v2 = sim.publish(V2)
    sim.archive_override = bytes(len(v2.built.archive))  # same length, other bytes
    result = agent.sync()
    assert isinstance(result.error, HashMismatchError)
    _assert_untouched(agent, v1, sim, fetched=True)
    assert fs.listdir("downloads") == []
    assert v2.manifest_id not in agent.state.failed  # a MITM must not blacklist a good release
    sim.archive_override = None
    assert agent.sync().status is SyncStatus.STAGED  # the honest archive installs later


def _endless(_archive: bytes, _start: int) -> Iterator[bytes]:
    while True:
        yield b"\0" * 65536


@pytest.mark.parametrize("content_length", [None, 10, 10**12])
def test_a2_endless_body_stops_at_the_signed_length(
    sim: RepositorySimulator,
    fs: MemoryFileSystem,
    make_agent: AgentFactory,
    content_length: int | None,
) -> None:
    """The server streams forever (claiming no, a small, or a huge Content-Length)."""
    agent, v1 = _installed_v1(sim, fs, make_agent)
    v2 = sim.publish(V2)
    sim.body = _endless
    sim.content_length = content_length
    result = agent.sync()
    assert isinstance(result.error, TooLargeError)
    _assert_untouched(agent, v1, sim, fetched=True)
    assert fs.listdir("downloads") == []  # the partial file is removed
    written = sum(len(fs.read_file(p)) for p in fs.files() if p.startswith("downloads/"))
    assert written <= v2.built.manifest.archive.length


def test_a9_trickling_server_is_abandoned(
    sim: RepositorySimulator, fs: MemoryFileSystem, make_agent: AgentFactory, clock: FakeClock
) -> None:
    """A9: trickling server is abandoned."""
    agent, v1 = _installed_v1(sim, fs, make_agent)
    sim.publish(V2)

    def trickle(archive: bytes, start: int) -> Iterator[bytes]:
        for offset in range(start, len(archive)):
            clock.advance(1.0)  # one byte a second
            yield archive[offset : offset + 1]

    sim.body = trickle
    result = agent.sync()
    assert isinstance(result.error, SlowDownloadError)
    _assert_untouched(agent, v1, sim, fetched=True)
    assert clock.mono < 120  # gave up within a few throughput windows
    reasons = [r["reason"] for r in sim.reports if r["status"] == "failed"]
    assert any("SlowDownloadError" in reason for reason in reasons)


# --- archive attacks (a hostile publisher signed them: A2, archive extraction rules) -----


def _zip(entries: list[tuple[zipfile.ZipInfo, bytes]]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for info, data in entries:
            archive.writestr(info, data)
    return out.getvalue()


def _entry(path: str, data: bytes) -> FileEntry:
    import hashlib  # noqa: PLC0415

    return FileEntry(path, hashlib.sha256(data).hexdigest(), len(data))


def test_symlink_entry_is_refused_and_the_release_failed_for_good(
    sim: RepositorySimulator, fs: MemoryFileSystem, make_agent: AgentFactory
) -> None:
    """Symlink entry is refused and the release failed for good."""
    agent, v1 = _installed_v1(sim, fs, make_agent)
    link = zipfile.ZipInfo("index.android.bundle")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    bad = sim.publish_archive(
        _zip([(link, b"/etc/passwd")]), (_entry("index.android.bundle", b"/etc/passwd"),)
    )
    result = agent.sync()
    assert isinstance(result.error, UnsupportedEntryError)
    _assert_untouched(agent, v1, sim, fetched=True)
    assert bad.manifest_id in agent.state.failed
    sim.requests.clear()
    assert agent.sync().status is SyncStatus.UP_TO_DATE  # never fetched again
    assert sim.archive_requests() == []


def test_traversal_entry_is_refused(
    sim: RepositorySimulator, fs: MemoryFileSystem, make_agent: AgentFactory
) -> None:
    """Traversal entry is refused."""
    agent, v1 = _installed_v1(sim, fs, make_agent)
    data = b"x"
    sim.publish_archive(
        _zip([(zipfile.ZipInfo("index.android.bundle"), data), (zipfile.ZipInfo("../evil"), data)]),
        (_entry("index.android.bundle", data), _entry("other", data)),
    )
    result = agent.sync()
    assert isinstance(result.error, UnsafePathError)
    _assert_untouched(agent, v1, sim, fetched=True)
    assert not any("evil" in path for path in fs.files())


def test_zip_bomb_with_lying_sizes_is_stopped(
    sim: RepositorySimulator, fs: MemoryFileSystem, make_agent: AgentFactory
) -> None:
    """An entry whose headers claim 1 KB but whose data inflates to 8 MB."""
    agent, v1 = _installed_v1(sim, fs, make_agent)
    big = bytes(8 * 1024 * 1024)
    info = zipfile.ZipInfo("index.android.bundle")
    info.compress_type = zipfile.ZIP_DEFLATED
    honest = _zip([(info, big)])
    # Rewrite the uncompressed size in the local and central headers to 1024.
    lying = bytearray(honest)
    true_size = len(big).to_bytes(4, "little")
    for offset in [i for i in range(len(lying) - 3) if lying[i : i + 4] == true_size]:
        lying[offset : offset + 4] = (1024).to_bytes(4, "little")
    entry = _entry("index.android.bundle", big[:1024])
    sim.publish_archive(bytes(lying), (entry,))
    result = agent.sync()
    assert isinstance(result.error, ArchiveError | TooLargeError | HashMismatchError)
    _assert_untouched(agent, v1, sim, fetched=True)
    assert all(len(fs.read_file(p)) <= 64 * 1024 for p in fs.files() if "staging" in p)


def test_many_files_bomb_is_capped_by_the_signed_count(
    sim: RepositorySimulator, fs: MemoryFileSystem, make_agent: AgentFactory
) -> None:
    """Many files bomb is capped by the signed count."""
    agent, v1 = _installed_v1(sim, fs, make_agent)
    entries = [(zipfile.ZipInfo(f"f{i}"), b"") for i in range(50)]
    entries.append((zipfile.ZipInfo("index.android.bundle"), b"x"))
    sim.publish_archive(_zip(entries), (_entry("index.android.bundle", b"x"),))
    result = agent.sync()
    assert isinstance(result.error, ArchiveError | TooLargeError)
    _assert_untouched(agent, v1, sim, fetched=True)


@pytest.mark.parametrize("with_patch", [False, True])
def test_a_release_without_the_entry_file_is_refused_before_any_fetch(
    sim: RepositorySimulator, fs: MemoryFileSystem, make_agent: AgentFactory, with_patch: bool
) -> None:
    """A signed release the JS engine cannot load: refused at the check, failed for good.

    The rule is decided once, in the state machine, before either way of
    fetching (archive or patch) is chosen: neither is fetched.
    """
    agent, v1 = _installed_v1(sim, fs, make_agent)
    bad = sim.publish({"main.jsbundle": b"ios only"})
    if with_patch:
        sim.make_patch(v1, bad)
    result = agent.sync()
    assert type(result.error) is ArchiveMismatchError
    assert "index.android.bundle" in str(result.error)
    assert not result.patched
    assert not any(r.url.path.startswith("/patches/") for r in sim.requests)
    _assert_untouched(agent, v1, sim, fetched=False)
    assert bad.manifest_id in agent.state.failed
    assert agent.sync().error is None  # never offered to the engine again, nor reported twice


def test_a10_a_damaged_stored_root_is_walked_again_from_the_embedded_one(
    sim: RepositorySimulator, fs: MemoryFileSystem, make_agent: AgentFactory
) -> None:
    """A10: a stored root that no longer parses is dropped; the device re-walks and verifies."""
    agent, _ = _installed_v1(sim, fs, make_agent)
    sim.rotate()
    assert agent.sync().status is SyncStatus.UP_TO_DATE
    assert agent.state.trust_root is not None
    agent.close()
    damaged = fs.read_file("state.json").replace(b'"trustRoot":"', b'"trustRoot":"AAAA', 1)
    fs.write_file("state.json", damaged)
    sim.requests.clear()
    restarted = make_agent(fs)
    assert restarted.state.trust_root is None
    assert restarted.state.confirmed is not None  # only the root was dropped, not the state
    v2 = sim.publish(V2)
    assert restarted.sync().status is SyncStatus.STAGED
    assert sim.requests[0].url.path == f"/apps/{sim.app_id}/roots/2"
    assert restarted.state.pending is not None
    assert restarted.state.pending.manifest_id == v2.manifest_id
