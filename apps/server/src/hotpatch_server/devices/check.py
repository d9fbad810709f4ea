"""The update check: choose a release for a device, and answer (the hot path).

The check does no write on its critical path: the device's last-seen data
goes into an in-memory buffer (:class:`~hotpatch_server.devices.tracker.DeviceTracker`)
flushed in batches, and the candidate releases, with the devices that rolled
each one back, come from :class:`~hotpatch_server.cache.ActiveReleases`. It
reads no database unless its (app, platform, channel) was just invalidated.

Choosing: among the channel's active releases, newest first, the first that
is not paused, whose binary range contains the device's native version, is
newer than what the device runs, has the device inside its rollout cohort
(salt: the release's manifest id, ADR 0001), and was not reported rolled
back by this device. Cohorts are advisory: they only choose among releases
already signed for the channel (docs/security.md A18, S9). :func:`choose`
needs no HTTP: every device protocol calls it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime

import attrs

from hotpatch_core.cohort import bucket, in_rollout
from hotpatch_core.protocol import CheckAnswer, PatchOffer
from hotpatch_server.cache import ActiveReleases, Candidate
from hotpatch_server.devices.query import CheckQuery, parse_check
from hotpatch_server.devices.tracker import DeviceTracker
from hotpatch_server.heads import ChannelHeads
from hotpatch_server.metrics import Metrics
from hotpatch_server.ratelimit import Limits
from hotpatch_server.storage.blobs import BlobStore

__all__ = ["CheckService", "choose", "head_start"]


def _floor(query: CheckQuery, candidates: tuple[Candidate, ...]) -> tuple[int, int] | None:
    """Return the position of what the device runs, as far as the server can tell."""
    if query.current_manifest_id is not None:
        for candidate in candidates:
            if candidate.manifest_id == query.current_manifest_id:
                return candidate.position
    return query.current_position


def head_start(query: CheckQuery, candidates: tuple[Candidate, ...]) -> tuple[int, int] | None:
    """Return where this device's channel head starts: the newest release at or below its floor.

    The head lists every release newer than that, which covers everything
    :func:`choose` could offer. Cutting only at a release's position keeps
    the heads of a channel few, whatever numbers a device sends.
    """
    floor = _floor(query, candidates)
    if floor is None:
        return None
    return next((c.position for c in candidates if c.position <= floor), None)


def choose(query: CheckQuery, candidates: tuple[Candidate, ...]) -> Candidate | None:
    """Return the release to offer this device, or None."""
    floor = _floor(query, candidates)
    for candidate in candidates:
        if floor is not None and candidate.position <= floor:
            return None  # candidates are newest first: nothing newer is left
        if candidate.paused:
            continue
        native = query.native_version
        if native is not None and not candidate.binary_range.contains(native):
            continue
        if not in_rollout(
            bucket(query.device_id, candidate.manifest_id), candidate.rollout_basis_points
        ):
            continue
        if query.device_id in candidate.rolled_back_devices:
            continue
        return candidate
    return None


def _answer(
    candidate: Candidate | None,
    store: BlobStore,
    now: datetime,
    current: str | None,
    native: str,
    head: str | None,
) -> CheckAnswer:
    if candidate is None:
        return CheckAnswer(update_available=False, head=head)
    # A device on an OTA bundle names it; one on the bundle in its binary does not.
    patch = candidate.patches.get(current or f"embedded:{native}")
    return CheckAnswer(
        update_available=True,
        manifest=candidate.manifest_b64,
        bundle_url=store.url(candidate.archive_sha256, now),
        head=head,
        # Unsigned, like the URLs: the device verifies every file it builds.
        patch=None if patch is None else PatchOffer(store.url(patch[0], now), patch[1], patch[2]),
        version=candidate.version,
        mandatory=candidate.mandatory,
        hash=candidate.archive_sha256,
        size=candidate.archive_length,
        manifest_id=candidate.manifest_id,
        sequence=candidate.sequence,
        epoch=candidate.epoch,
        signature=candidate.signature_b64,
    )


@attrs.frozen
class CheckService:
    """Everything the update check uses, injected as one dependency to keep the hot path lean."""

    active_releases: ActiveReleases
    device_tracker: DeviceTracker
    blob_store: BlobStore
    metrics: Metrics
    limits: Limits
    clock: Callable[[], datetime]
    #: Signs the channel head sent with every answer; None when no timestamp key is set.
    heads: ChannelHeads | None = None

    async def check(self, params: Mapping[str, object]) -> CheckAnswer:
        """Validate, rate-limit, note the device, choose from the cache, answer."""
        query = parse_check(params)
        now = self.clock()
        await self.limits.check.enforce(f"{query.app_id}/{query.device_id}", now.timestamp())
        self.device_tracker.note(query, now)
        target = (query.app_id, query.platform, query.channel)
        candidates = await self.active_releases.get(*target)
        chosen = choose(query, candidates)
        self.metrics.inc("update_check", offered=str(chosen is not None).lower())
        # From the same candidates as the choice: the head never contradicts the answer.
        head = (
            None
            if self.heads is None
            else self.heads.head(target, candidates, head_start(query, candidates), now)
        )
        return _answer(
            chosen, self.blob_store, now, query.current_manifest_id, query.native_text, head
        )
