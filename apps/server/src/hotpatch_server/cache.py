"""The active-release cache: what the update check reads instead of the database.

Each process keeps, per (app, platform, channel), the active releases newest
first, already parsed (binary ranges, base64 manifests) and with the devices
that reported rolling each back, for
``active_cache_seconds``. A publish, rollback, rollout change or archive in
this process invalidates its entry at once (an installation report never
does: it adds its device to the release's bounded exclusion set in place);
other processes see it within the cache lifetime, or at once where
``REDIS_URL`` is set: invalidations are then published on a Redis channel
every process listens to
(:func:`listen_for_invalidations`). A miss costs one SELECT.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Final

import attrs
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hotpatch_core.codepush import package_hash
from hotpatch_core.expo import multipart, signature_header
from hotpatch_core.manifest import decode_manifest
from hotpatch_core.release import decode_release_envelope
from hotpatch_core.versions import BinaryRange
from hotpatch_server.db_outage import database_health, is_unavailable
from hotpatch_server.health import DependencyHealth
from hotpatch_server.models import (
    CodePushDiff,
    EmbeddedBundle,
    ExpoDirective,
    ExpoUpdate,
    Installation,
    Patch,
    Release,
)
from hotpatch_server.redis_health import RedisHealth

__all__ = [
    "INVALIDATIONS",
    "MAX_EXCLUDED_DEVICES",
    "ActiveReleases",
    "Candidate",
    "ExpoDirectiveServed",
    "ExpoServed",
    "expo_directive_served",
    "expo_served",
    "listen_for_invalidations",
]

INVALIDATIONS = "invalidate"  # the channel is "<redis prefix>:invalidate"
#: Devices remembered per release as having rolled it back (the newest reports).
MAX_EXCLUDED_DEVICES = 10_000
log = logging.getLogger(__name__)

Key = tuple[str, str, str]
#: CodePush package hashes remembered per process (by manifest id).
_MAX_CODEPUSH_HASHES = 10_000


@attrs.frozen
class ExpoServed:
    """A release's Expo Updates manifest, as the Expo check serves it."""

    update_id: str
    runtime_version: str
    #: The whole multipart answer (manifest part, with its ``expo-signature`` when signed).
    body: bytes
    content_type: str
    key_id: str | None
    #: The manifest's ``createdAt`` (``YYYY-MM-DDTHH:mm:ss.sssZ``, so it sorts as text).
    commit_time: str = ""


#: Served with every manifest: no asset needs extra request headers.
_EXTENSIONS: Final = b'{"assetRequestHeaders":{}}'


def _signed(signature: str | None, key_id: str | None) -> dict[str, str]:
    if signature is None or key_id is None:
        return {}
    return {"expo-signature": signature_header(signature, key_id)}


def expo_served(row: ExpoUpdate) -> ExpoServed:
    """Frame a stored Expo manifest as the check's answer (once per cache load)."""
    content_type, body = multipart(
        [("manifest", row.manifest, _signed(row.signature, row.key_id)),
         ("extensions", _EXTENSIONS, {})]
    )  # fmt: skip
    created = json.loads(row.manifest)["createdAt"]
    return ExpoServed(row.update_id, row.runtime_version, body, content_type, row.key_id, created)


@attrs.frozen
class ExpoDirectiveServed:
    """A channel's ``rollBackToEmbedded`` directive for one runtime version, as served."""

    commit_time: str
    body: bytes
    content_type: str
    key_id: str | None


def expo_directive_served(row: ExpoDirective) -> ExpoDirectiveServed:
    """Frame a stored directive as the check's answer."""
    content_type, body = multipart([("directive", row.body, _signed(row.signature, row.key_id))])
    return ExpoDirectiveServed(row.commit_time, body, content_type, row.key_id)


@attrs.frozen
class Candidate:
    """An active release as the update check needs it."""

    id: int
    manifest_id: str
    epoch: int
    sequence: int
    version: str
    binary_range: BinaryRange
    rollout_basis_points: int
    paused: bool
    mandatory: bool
    archive_sha256: str
    archive_length: int
    manifest_b64: str
    signature_b64: str
    #: The CodePush package hash of the release's signed file list (hotpatch_core.codepush).
    codepush_hash: str
    #: Devices that reported rolling this release back, at most MAX_EXCLUDED_DEVICES;
    #: grown in place by :meth:`ActiveReleases.exclude` (a report never reloads the entry).
    rolled_back_devices: set[str] = attrs.field(factory=set, eq=False, hash=False)
    #: Patches to this release by base: a manifest id, or ``embedded:<native version>`` for the
    #: bundle shipped in that binary; each (blob sha256, length, base id).
    patches: Mapping[str, tuple[str, int, str]] = attrs.field(factory=dict)
    #: The Expo Updates manifest attached to the release, if any.
    expo: ExpoServed | None = None
    #: CodePush diff zips to this release by base package hash: (blob sha256, length).
    codepush_diffs: Mapping[str, tuple[str, int]] = attrs.field(factory=dict)

    @property
    def position(self) -> tuple[int, int]:
        """``(epoch, sequence)``."""
        return (self.epoch, self.sequence)


def _candidate(
    row: Release,
    rolled_back: set[str],
    patches: Mapping[str, tuple[str, int, str]],
    codepush_hashes: dict[str, str],
    expo: ExpoServed | None,
    codepush_diffs: Mapping[str, tuple[str, int]],
) -> Candidate:
    envelope = decode_release_envelope(row.manifest)
    # A manifest id names the manifest's bytes: its file list is parsed and
    # hashed once per process, not at every reload of the channel.
    codepush_hash = codepush_hashes.get(row.manifest_id)
    if codepush_hash is None:
        if len(codepush_hashes) >= _MAX_CODEPUSH_HASHES:
            codepush_hashes.clear()
        codepush_hash = package_hash(decode_manifest(envelope.payload).files)
        codepush_hashes[row.manifest_id] = codepush_hash
    first = envelope.signatures[0].sig if envelope.signatures else b""
    return Candidate(
        id=row.id,
        manifest_id=row.manifest_id,
        epoch=row.epoch,
        sequence=row.sequence,
        version=row.version,
        binary_range=BinaryRange.parse(row.binary_range),
        rollout_basis_points=row.rollout_basis_points,
        paused=row.paused,
        mandatory=row.mandatory,
        archive_sha256=row.archive_sha256,
        archive_length=row.archive_length,
        manifest_b64=base64.b64encode(row.manifest).decode(),
        signature_b64=base64.b64encode(first).decode(),
        codepush_hash=codepush_hash,
        rolled_back_devices=rolled_back,
        patches=patches,
        expo=expo,
        codepush_diffs=codepush_diffs,
    )


def _exclude(candidates: tuple[Candidate, ...], manifest_id: str, device_id: str) -> None:
    for candidate in candidates:
        if candidate.manifest_id == manifest_id:
            if len(candidate.rolled_back_devices) < MAX_EXCLUDED_DEVICES:
                candidate.rolled_back_devices.add(device_id)
            return


class ActiveReleases:
    """Per-process cache of active releases, invalidated on every change."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        ttl: float,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = 10_000,
    ) -> None:
        """Read through ``sessionmaker``; keep entries ``ttl`` seconds, at most ``max_keys``."""
        self._sessionmaker = sessionmaker
        self._ttl = ttl
        self._clock = clock
        self._max_keys = max_keys
        self._entries: dict[Key, tuple[float, tuple[Candidate, ...]]] = {}
        #: Expo rollBackToEmbedded directives by runtime version, loaded with each entry.
        self._directives: dict[Key, Mapping[str, ExpoDirectiveServed]] = {}
        self._locks: dict[Key, asyncio.Lock] = {}
        self._refreshing: dict[Key, asyncio.Task[None]] = {}
        #: Exclusions reported while a load of the key is running, by key.
        self._loading: dict[Key, list[list[tuple[str, str]]]] = {}
        self._codepush_hashes: dict[str, str] = {}
        self._generation = 0
        self.publish_invalidation: Callable[[Key], Awaitable[None]] | None = None
        #: Told when a load fails because the database is away, and when one succeeds again.
        self.db_health = database_health()

    async def get(self, app_id: str, platform: str, channel: str) -> tuple[Candidate, ...]:
        """Active releases for the key, newest first.

        An expired entry is still served while one background task reloads
        it, so checks never queue behind a reload; only a key with no entry
        (first use, or just invalidated by a change) waits for its load.
        """
        key = (app_id, platform, channel)
        entry = self._entries.get(key)
        if entry is not None:
            if self._clock() - entry[0] >= self._ttl and key not in self._refreshing:
                self._refreshing[key] = asyncio.create_task(self._refresh(key))
            return entry[1]
        # One loader per key: a burst of checks on a cold key costs one SELECT.
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            entry = self._entries.get(key)
            if entry is not None:
                return entry[1]
            loaded, directives = await self._load(key)
            if len(self._entries) >= self._max_keys:
                self._evict()
            self._entries[key] = (self._clock(), loaded)
            self._directives[key] = directives
            return loaded

    def expo_directives(
        self, app_id: str, platform: str, channel: str
    ) -> Mapping[str, ExpoDirectiveServed]:
        """Return the channel's Expo directives by runtime version, loaded with its entry."""
        return self._directives.get((app_id, platform, channel), {})

    def _evict(self) -> None:
        # Checks name any app id they like: keep junk keys from growing the
        # cache without bound. Empty entries go first; if that is not
        # enough, everything goes and is reloaded on demand.
        empty = [k for k, (_, candidates) in self._entries.items() if not candidates]
        for key in empty:
            del self._entries[key]
        if len(self._entries) >= self._max_keys:
            self._entries.clear()
        self._directives = {k: v for k, v in self._directives.items() if k in self._entries}
        self._locks = {k: lock for k, lock in self._locks.items() if lock.locked()}

    async def _refresh(self, key: Key) -> None:
        generation = self._generation
        try:
            loaded, directives = await self._load(key)
        except Exception as exc:  # the stale entry keeps serving; the next check retries
            if is_unavailable(exc):
                self.db_health.failed(exc, "refreshing the cache of active releases")
            else:
                log.warning("refreshing active releases for %s failed", key, exc_info=True)
            return
        finally:
            self._refreshing.pop(key, None)
        # An invalidation during the reload wins: its next load sees the change.
        if generation == self._generation and key in self._entries:
            self._entries[key] = (self._clock(), loaded)
            self._directives[key] = directives

    async def _load(
        self, key: Key
    ) -> tuple[tuple[Candidate, ...], Mapping[str, ExpoDirectiveServed]]:
        late: list[tuple[str, str]] = []
        self._loading.setdefault(key, []).append(late)
        try:
            loaded, directives = await self._select(key)
        finally:
            running = self._loading[key]
            running.remove(late)
            if not running:
                del self._loading[key]
        self.db_health.succeeded()
        for manifest_id, device_id in late:  # reports stored while the SELECT ran
            _exclude(loaded, manifest_id, device_id)
        return loaded, directives

    async def _select(
        self, key: Key
    ) -> tuple[tuple[Candidate, ...], Mapping[str, ExpoDirectiveServed]]:
        app_id, platform, channel = key
        async with self._sessionmaker() as session:
            rows = (
                await session.execute(
                    select(Release)
                    .where(
                        Release.app_id == app_id,
                        Release.platform == platform,
                        Release.channel == channel,
                        Release.active.is_(True),
                    )
                    .order_by(Release.epoch.desc(), Release.sequence.desc())
                    .limit(50)
                )
            ).scalars()
            releases = list(rows)
            # Devices that rolled a release back are not offered it again;
            # loading them with the release keeps the check off the database.
            # At most MAX_EXCLUDED_DEVICES per release, the newest: forged
            # reports must not make every load read without bound. A device
            # past the cap is still protected by its own record (A19).
            newest = (
                select(
                    Installation.manifest_id,
                    Installation.device_id,
                    func.row_number()
                    .over(
                        partition_by=Installation.manifest_id,
                        order_by=Installation.created_at.desc(),
                    )
                    .label("rank"),
                )
                .where(
                    Installation.app_id == app_id,
                    Installation.status == "rolled_back",
                    Installation.manifest_id.in_([r.manifest_id for r in releases]),
                )
                .subquery()
            )
            reports = await session.execute(
                select(newest.c.manifest_id, newest.c.device_id).where(
                    newest.c.rank <= MAX_EXCLUDED_DEVICES
                )
            )
            devices: dict[str, set[str]] = {}
            for manifest_id, device_id in reports.all():
                devices.setdefault(manifest_id, set()).add(device_id)
            patch_rows = await session.execute(
                select(
                    Patch.target_manifest_id, Patch.base_manifest_id, Patch.sha256, Patch.length
                ).where(Patch.target_manifest_id.in_([r.manifest_id for r in releases]))
            )
            embedded = dict(
                (
                    await session.execute(
                        select(EmbeddedBundle.base_id, EmbeddedBundle.native_version).where(
                            EmbeddedBundle.app_id == app_id, EmbeddedBundle.platform == platform
                        )
                    )
                ).all()
            )
            expo_rows = (
                await session.execute(
                    select(ExpoUpdate).where(ExpoUpdate.release_id.in_([r.id for r in releases]))
                )
            ).scalars()
            expo = {row.release_id: expo_served(row) for row in expo_rows}
            diff_rows = await session.execute(
                select(
                    CodePushDiff.target_manifest_id,
                    CodePushDiff.base_hash,
                    CodePushDiff.sha256,
                    CodePushDiff.length,
                ).where(CodePushDiff.target_manifest_id.in_([r.manifest_id for r in releases]))
            )
            directive_rows = await session.scalars(
                select(ExpoDirective).where(
                    ExpoDirective.app_id == app_id,
                    ExpoDirective.platform == platform,
                    ExpoDirective.channel == channel,
                )
            )
            directives = {d.runtime_version: expo_directive_served(d) for d in directive_rows}
            diffs: dict[str, dict[str, tuple[str, int]]] = {}
            for target, base, sha256, length in diff_rows.all():
                diffs.setdefault(target, {})[base] = (sha256, length)
            patches: dict[str, dict[str, tuple[str, int, str]]] = {}
            for target, base, sha256, length in patch_rows.all():
                slot = f"embedded:{embedded[base]}" if base in embedded else base
                patches.setdefault(target, {})[slot] = (sha256, length, base)
            candidates = tuple(
                _candidate(
                    r,
                    devices.get(r.manifest_id, set()),
                    patches.get(r.manifest_id, {}),
                    self._codepush_hashes,
                    expo.get(r.id),
                    diffs.get(r.manifest_id, {}),
                )
                for r in releases
            )
            return candidates, directives

    def exclude(self, key: Key, manifest_id: str, device_id: str) -> None:
        """Stop offering ``manifest_id`` to ``device_id`` here, without reloading anything.

        A report must not invalidate the cache: a flood of forged ones would
        turn every check into a reload. Other processes see the exclusion at
        their next reload (within the cache lifetime).
        """
        for late in self._loading.get(key, ()):
            # A load that started before this report committed may not see it:
            # it is applied to that load's result as well.
            late.append((manifest_id, device_id))
        entry = self._entries.get(key)
        if entry is not None:
            _exclude(entry[1], manifest_id, device_id)

    def forget(self, key: Key) -> None:
        """Drop one entry (an invalidation, here or from another process)."""
        self._generation += 1
        self._entries.pop(key, None)
        self._directives.pop(key, None)

    def forget_all(self) -> None:
        """Drop every entry (invalidations from other processes may have been missed)."""
        self._generation += 1
        self._entries.clear()
        self._directives.clear()

    async def invalidate(self, app_id: str, platform: str, channel: str) -> None:
        """Drop the entry here and tell other processes to drop theirs."""
        key = (app_id, platform, channel)
        self.forget(key)
        if self.publish_invalidation is not None:
            await self.publish_invalidation(key)


async def listen_for_invalidations(
    redis: Redis,
    channel: str,
    cache: ActiveReleases,
    stop: asyncio.Event,
    health: DependencyHealth | None = None,
) -> None:
    """Drop cache entries other processes announce, until ``stop`` is set.

    If Redis goes away, entries still expire after the cache lifetime; the
    listener tries again after a pause that grows to 10 s, and ``health``
    logs the outage once. Back on Redis, it drops the whole cache once:
    announcements made meanwhile were missed.
    """
    health = health or RedisHealth()
    pause = 0.5
    lost = False
    while not stop.is_set():
        try:
            async with redis.pubsub() as pubsub:
                await pubsub.subscribe(channel)
                health.succeeded()
                if lost:
                    cache.forget_all()
                lost, pause = False, 0.5
                while not stop.is_set():
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2)
                    if message is not None:
                        raw = message["data"]
                        text = raw.decode() if isinstance(raw, bytes) else str(raw)
                        parts = text.split("/")
                        if len(parts) == 3:
                            cache.forget((parts[0], parts[1], parts[2]))
        except (RedisError, OSError) as exc:
            lost = True
            health.failed(exc, "listening for cache invalidations")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=pause)
            pause = min(10.0, pause * 2)
