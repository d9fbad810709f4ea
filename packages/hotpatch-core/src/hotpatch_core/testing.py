"""Builders for tests: keys, trust roots, archives and signed releases in memory.

Shipped with the package so integrators (and our own server, client and CLI
tests) can make real, correctly signed fixtures in a line, and misbehave on
purpose in the next::

    pki = make_pki()
    built = build_release({"index.android.bundle": b"..."}, sequence=2)
    envelope = sign_release(built.manifest, [pki.publisher])

Every harness (the server's, the agent's, the CLI's) keeps time with one
:class:`FakeClock` that starts at :data:`FIXED_TIME`, so no test depends on
the day it runs.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta

import attrs

from hotpatch_core.archive import ArchiveInput, write_archive
from hotpatch_core.head import ChannelHead, HeadRelease, Position
from hotpatch_core.keys import SigningKey
from hotpatch_core.manifest import (
    ArchiveInfo,
    Platform,
    ReleaseManifest,
    encode_manifest,
    manifest_id,
)
from hotpatch_core.trust import PublisherKey, Scope, TimestampRole, TrustRoot, sign_trust_root

__all__ = [
    "FIXED_TIME",
    "PKI",
    "BuiltRelease",
    "FakeClock",
    "build_release",
    "head_listing",
    "make_pki",
    "rotate_pki",
]

FIXED_TIME = datetime(2026, 11, 29, 12, 0, 0, tzinfo=UTC)
"""The moment every test harness starts at: fixtures never depend on today's date."""


class FakeClock:
    """Wall and monotonic time that move only when told; one per harness.

    Call it (or :meth:`now`) for the wall time: the server's ``create_app(clock=...)``
    takes it as a callable, the agent as an object with ``now``, ``monotonic``
    and ``sleep`` (``sleep`` records the wait and moves both clocks).
    """

    def __init__(self, start: datetime = FIXED_TIME) -> None:
        """Start at ``start`` (default :data:`FIXED_TIME`), monotonic time at 0."""
        self.wall = start
        self.mono = 0.0
        self.slept: list[float] = []

    def __call__(self) -> datetime:
        """Return the fake wall time."""
        return self.wall

    def now(self) -> datetime:
        """Return the fake wall time."""
        return self.wall

    def monotonic(self) -> float:
        """Return the fake monotonic time."""
        return self.mono

    def sleep(self, seconds: float) -> None:
        """Record the wait and move both clocks forward by ``seconds``."""
        self.slept.append(seconds)
        self.advance(seconds)

    def advance(self, seconds: float = 0.0, **delta: float) -> None:
        """Move both clocks forward by ``seconds`` plus ``timedelta(**delta)``."""
        step = timedelta(seconds=seconds, **delta)
        self.mono += step.total_seconds()
        self.wall += step


@attrs.frozen
class PKI:
    """Root keys, one publisher key, and the trust root (object and signed bytes)."""

    root_keys: tuple[SigningKey, ...]
    publisher: SigningKey
    root: TrustRoot
    root_bytes: bytes
    #: The key that signs channel heads, when the root names one (``timestamp=True``).
    timestamp: SigningKey | None = None


def make_pki(  # noqa: PLR0913 - keyword-only knobs of a test builder
    *,
    root_count: int = 1,
    root_threshold: int = 1,
    scope: Scope | None = None,
    epoch: int = 1,
    version: int = 1,
    extra_publishers: Sequence[PublisherKey] = (),
    seed: int | None = None,
    timestamp: bool = False,
) -> PKI:
    """Make a trust root with ``root_count`` root keys and one publisher key.

    With ``seed``, keys are derived from it, so the result is reproducible
    (golden vectors); without it, keys are random. With ``timestamp``, the
    root also names a timestamp key, so devices require channel heads.
    """

    def key(index: int) -> SigningKey:
        if seed is None:
            return SigningKey.generate()
        return SigningKey(bytes([seed % 256, index]) * 16)

    roots = tuple(key(i) for i in range(root_count))
    publisher = key(100)
    stamp = key(200) if timestamp else None
    root = TrustRoot(
        version=version,
        epoch=epoch,
        root_keys=tuple(k.public_key for k in roots),
        root_threshold=root_threshold,
        publishers=(
            PublisherKey(publisher.public_key, "ci", scope or Scope(("*",), ("*",), ("*",))),
            *extra_publishers,
        ),
        timestamp=TimestampRole((stamp.public_key,)) if stamp is not None else None,
    )
    return PKI(roots, publisher, root, sign_trust_root(root, roots), stamp)


def rotate_pki(
    pki: PKI, *, new_root_keys: bool = False, bump_epoch: bool = True, seed: int | None = None
) -> PKI:
    """Return trust root version N+1 of ``pki`` with a fresh publisher key, as a rotation.

    The new root lists only the new publisher (the old one is revoked) and,
    with ``new_root_keys``, new root keys too. Its envelope is signed by the
    old root keys and its own, as :func:`~hotpatch_core.trust.rotate_trust_root`
    requires; with ``bump_epoch`` it starts a new epoch. With ``seed`` the new
    keys are derived from it (reproducible), else random.
    """

    def key(index: int) -> SigningKey:
        if seed is None:
            return SigningKey.generate()
        return SigningKey(bytes([seed % 256, index]) * 16)

    publisher = key(100)
    roots = tuple(key(i) for i in range(len(pki.root_keys))) if new_root_keys else pki.root_keys
    root = attrs.evolve(
        pki.root,
        version=pki.root.version + 1,
        epoch=pki.root.epoch + bump_epoch,
        root_keys=tuple(k.public_key for k in roots),
        publishers=(PublisherKey(publisher.public_key, "ci", pki.root.publishers[0].scope),),
        release_thresholds={},
    )
    signers = {k.public_key.key_id: k for k in (*pki.root_keys, *roots)}
    return PKI(roots, publisher, root, sign_trust_root(root, signers.values()), pki.timestamp)


@attrs.frozen
class BuiltRelease:
    """A release's manifest and the archive bytes it describes."""

    manifest: ReleaseManifest
    archive: bytes


def build_release(  # noqa: PLR0913 - keyword-only knobs of a test builder
    files: Mapping[str, bytes],
    *,
    app_id: str = "com.example.app",
    platform: Platform = Platform.ANDROID,
    channel: str = "production",
    version: str = "1.0.0",
    binary_range: str = "*",
    epoch: int = 1,
    sequence: int = 1,
    mandatory: bool = False,
    created_at: datetime = FIXED_TIME,
    compresslevel: int = 9,
) -> BuiltRelease:
    """Pack ``files`` into an archive and describe it in an unsigned manifest."""
    out = io.BytesIO()
    entries = write_archive(
        [ArchiveInput.of_bytes(path, data) for path, data in files.items()],
        out,
        compresslevel=compresslevel,
    )
    archive = out.getvalue()
    manifest = ReleaseManifest(
        app_id=app_id,
        platform=platform,
        channel=channel,
        binary_range=binary_range,
        version=version,
        epoch=epoch,
        sequence=sequence,
        archive=ArchiveInfo.of(hashlib.sha256(archive).hexdigest(), len(archive), entries),
        files=entries,
        created_at=created_at,
        mandatory=mandatory,
    )
    return BuiltRelease(manifest, archive)


def head_listing(  # noqa: PLR0913 - keyword-only knobs of a test builder
    manifests: Sequence[ReleaseManifest],
    *,
    issued_at: datetime = FIXED_TIME,
    lifetime: timedelta = timedelta(hours=24),
    rollout_basis_points: int = 10_000,
    paused: Sequence[str] = (),
    after: tuple[int, int] | None = None,
    target: tuple[str, str, str] = ("com.example.app", "android", "production"),
) -> ChannelHead:
    """Return the channel head of ``target`` (app, platform, channel) listing ``manifests``.

    Each is listed, newest first, at ``rollout_basis_points``, and those
    whose ids are in ``paused`` as paused.
    """
    ordered = sorted(manifests, key=lambda m: (m.epoch, m.sequence), reverse=True)
    releases = []
    for m in ordered:
        mid = manifest_id(encode_manifest(m))
        releases.append(
            HeadRelease(
                mid, m.epoch, m.sequence, m.binary_range, rollout_basis_points, mid in paused
            )
        )
    return ChannelHead(
        app_id=target[0],
        platform=target[1],
        channel=target[2],
        issued_at=issued_at,
        expires_at=issued_at + lifetime,
        releases=tuple(releases),
        after=Position(*after) if after is not None else None,
    )
