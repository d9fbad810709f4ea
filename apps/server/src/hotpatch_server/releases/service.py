"""What the releases slice does, without HTTP: publish, re-publish, roll out, archive, patch, count.

Every check happens before anything is kept; a rejection raises a domain
error (:mod:`hotpatch_server.errors`, or the core's) and leaves no row and
no blob. A change commits, records its audit entry, and then invalidates
the channel's cached answer itself, so no caller can forget to.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path

import attrs
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from hotpatch_core.archive import NullSink, extract_archive
from hotpatch_core.cohort import parse_percent, percent_to_basis_points
from hotpatch_core.errors import HashMismatchError, HotPatchError, RollbackError
from hotpatch_core.machine import ReportStatus
from hotpatch_core.manifest import Platform
from hotpatch_core.publishing import PatchStats, ReleaseStats, ReleaseView
from hotpatch_core.release import VerifiedRelease, verify_publication
from hotpatch_core.trust import load_trust_root
from hotpatch_server.audit import record
from hotpatch_server.auth import Action, Principal
from hotpatch_server.cache import ActiveReleases
from hotpatch_server.errors import (
    ContentMismatchError,
    InvalidInputError,
    MandatoryIsSignedError,
    NotFoundError,
    PatchExistsError,
    RejectedFieldError,
    TargetMismatchError,
    VersionExistsError,
)
from hotpatch_server.models import App, Device, Installation, Patch, Release, utc
from hotpatch_server.patches.service import register_patch
from hotpatch_server.storage.blobs import BlobStore

__all__ = [
    "UNSEEN_WARNING_MIN",
    "ReleaseFilter",
    "ReleaseService",
    "find_release",
    "release_view",
    "rollout_basis_points",
]

#: Reports of one status from devices never seen checking, from which on a warning is given.
UNSEEN_WARNING_MIN = 10


def release_view(
    release: Release, store: BlobStore, now: datetime, *, with_manifest: bool = False
) -> ReleaseView:
    """Return the API's view of a release (with its signed envelope, if asked)."""
    return ReleaseView(
        id=release.id,
        app_id=release.app_id,
        platform=Platform(release.platform),
        channel=release.channel,
        version=release.version,
        binary_range=release.binary_range,
        epoch=release.epoch,
        sequence=release.sequence,
        manifest_id=release.manifest_id,
        hash=release.archive_sha256,
        size=release.archive_length,
        mandatory=release.mandatory,
        rollout_percent=release.rollout_basis_points / 100,
        paused=release.paused,
        active=release.active,
        rollback_of=release.rollback_of,
        created_at=utc(release.created_at),
        created_by=release.created_by,
        download_url=store.url(release.archive_sha256, now),
        manifest=release.manifest if with_manifest else None,
    )


def rollout_basis_points(percent: float | str, field: str) -> int:
    """Convert a rollout percentage (a JSON number, or form text) to basis points."""
    try:
        if isinstance(percent, str):
            return parse_percent(percent)
        return percent_to_basis_points(percent)
    except ValueError as exc:
        raise InvalidInputError(str(exc), field=field) from None


async def find_release(
    session: AsyncSession, release_id: int, principal: Principal, action: Action
) -> Release:
    """Return release ``release_id`` if ``principal`` may do ``action`` on it."""
    row = await session.get(Release, release_id)
    if row is None:
        raise NotFoundError(f"no release {release_id}")
    principal.require(action, row.app_id)
    return row


@attrs.frozen
class Publication:
    """A release upload, as read from the request: the fields a service needs."""

    app_id: str
    envelope: bytes
    #: The archive on local disk, with the sha256 and length measured while it arrived.
    archive: Path
    archive_sha256: str
    archive_length: int
    rollout_basis_points: int
    #: The ``mandatory`` form field, if sent: it must agree with the signed manifest.
    mandatory: str | None = None


@attrs.frozen
class ReleaseFilter:
    """Which releases a listing shows (each ``None`` matches any), and at most how many."""

    app_id: str | None = None
    platform: str | None = None
    channel: str | None = None
    version: str | None = None
    active: bool | None = None
    limit: int = 100


@attrs.define
class ReleaseService:
    """The releases of every app, as one principal changes them at one time."""

    session: AsyncSession
    store: BlobStore
    cache: ActiveReleases
    principal: Principal
    now: datetime

    async def find(self, release_id: int, action: Action) -> Release:
        """Return release ``release_id`` if this principal may do ``action`` on it."""
        return await find_release(self.session, release_id, self.principal, action)

    def view(self, row: Release, *, with_manifest: bool = False) -> ReleaseView:
        """Return the API's view of ``row`` (download URL signed at this request's time)."""
        return release_view(row, self.store, self.now, with_manifest=with_manifest)

    async def matching(self, wanted: ReleaseFilter) -> list[Release]:
        """Return the releases this principal may read that match ``wanted``, newest first."""
        query = select(Release).order_by(
            Release.app_id, Release.epoch.desc(), Release.sequence.desc(), Release.id.desc()
        )
        if wanted.app_id is not None:
            self.principal.require(Action.READ, wanted.app_id)
            query = query.where(Release.app_id == wanted.app_id)
        elif "*" not in self.principal.apps:
            query = query.where(Release.app_id.in_(self.principal.apps))
        for column, value in (
            (Release.platform, wanted.platform),
            (Release.channel, wanted.channel),
            (Release.version, wanted.version),
            (Release.active, wanted.active),
        ):
            if value is not None:
                query = query.where(column == value)
        return list((await self.session.scalars(query.limit(wanted.limit))).all())

    async def publish(self, upload: Publication) -> Release:
        """Verify a signed release and its archive, store both; the archive file is moved."""
        release = self._verify(await self._app(upload.app_id), upload.envelope)
        if upload.mandatory is not None:
            _mandatory_matches(upload.mandatory, release)
        await _check_archive(release, upload.archive, upload.archive_sha256, upload.archive_length)
        await self._check_sequence(release)
        row = self._row(release, upload.rollout_basis_points)
        # No transaction stays open while the archive is stored: on SQLite a
        # write lock held across a slow object store stalled every device
        # report and check-in behind it (found by nox -s faults).
        await self.session.commit()
        created = await self.store.put(release.manifest.archive.sha256, upload.archive)
        self.session.add(row)
        record(self.session, self.principal, "publish", row, self.now,
               {"archive": row.archive_sha256})  # fmt: skip
        try:
            await self.session.commit()
        except IntegrityError:
            # A release with this version or sequence committed meanwhile
            # (the checks above saw none). Known gap: if another publish of
            # the same archive found our fresh blob and commits after this
            # delete, its row points at a missing blob.
            if created:
                await self.store.delete(row.archive_sha256)
            raise _version_conflict(release) from None
        await self._changed(row)
        return row

    async def republish(
        self, source: Release, envelope: bytes, rollout: int, *, same_channel: bool
    ) -> Release:
        """Activate a new signed manifest for ``source``'s content (a rollback or a promote)."""
        release = self._verify(await self._app(source.app_id), envelope)
        _same_content(release, source, same_channel=same_channel)
        await self._check_sequence(release)
        row = self._row(release, rollout)
        self.session.add(row)
        action = "rollback" if same_channel else "promote"
        record(self.session, self.principal, action, row, self.now,
               {"source": source.manifest_id})  # fmt: skip
        try:
            await self.session.commit()
        except IntegrityError:
            raise _version_conflict(release) from None
        await self._changed(row)
        return row

    async def change_rollout(
        self, row: Release, *, rollout: int | None, paused: bool | None
    ) -> Release:
        """Widen, narrow, pause or resume a rollout. Advisory: never changes what is signed."""
        before = {"rolloutPercent": row.rollout_basis_points / 100, "paused": row.paused}
        if rollout is not None:
            row.rollout_basis_points = rollout
        if paused is not None:
            row.paused = paused
        record(self.session, self.principal, "rollout", row, self.now, {"before": before})
        await self.session.commit()
        await self._changed(row)
        return row

    async def archive(self, row: Release) -> Release:
        """Stop offering a release; its row, manifest and archive are kept."""
        row.active = False
        record(self.session, self.principal, "archive", row, self.now, {})
        await self.session.commit()
        await self._changed(row)
        return row

    async def add_patch(
        self, target: Release, base_manifest_id: str, patch: bytes, tmp: Path, max_expanded: int
    ) -> Patch:
        """Store a patch from ``base_manifest_id`` after checking it rebuilds ``target`` exactly."""
        base = await self.session.scalar(
            select(Release).where(
                Release.manifest_id == base_manifest_id, Release.app_id == target.app_id
            )
        )
        if base is None:
            raise NotFoundError(
                "no release of this app has that manifest id", field="baseManifestId"
            )
        try:
            row = await register_patch(
                self.session, self.store, base, target, patch, tmp, self.now, max_expanded
            )
        except IntegrityError:
            raise PatchExistsError("a patch between these releases exists already") from None
        record(self.session, self.principal, "patch", target, self.now,
               {"base": base.manifest_id})  # fmt: skip
        await self.session.commit()
        await self._changed(target)
        return row

    async def stats(self, row: Release) -> ReleaseStats:
        """Count reports, devices running the release, its patches and the bytes they saved."""
        return await _stats(self.session, row)

    async def _app(self, app_id: str) -> App:
        app = await self.session.get(App, app_id)
        if app is None:
            raise NotFoundError(f"no app {app_id!r}; create it first", field="appId")
        return app

    def _verify(self, app: App, envelope: bytes) -> VerifiedRelease:
        try:
            release = verify_publication(envelope, load_trust_root(app.trust_root), self.now)
        except HotPatchError as exc:
            raise RejectedFieldError(exc, "manifest") from None
        if release.manifest.app_id != app.id:
            raise TargetMismatchError(
                f"manifest is for app {release.manifest.app_id!r}, uploaded to {app.id!r}",
                field="appId",
            )
        return release

    async def _check_sequence(self, release: VerifiedRelease) -> None:
        m = release.manifest
        newest = (
            await self.session.execute(
                select(Release.epoch, Release.sequence)
                .where(
                    Release.app_id == m.app_id,
                    Release.platform == m.platform.value,
                    Release.channel == m.channel,
                )
                .order_by(Release.epoch.desc(), Release.sequence.desc())
                .limit(1)
            )
        ).first()
        if newest is not None and (m.epoch, m.sequence) <= (newest[0], newest[1]):
            raise RejectedFieldError(
                RollbackError(
                    f"sequence ({m.epoch}, {m.sequence}) is not above the newest published "
                    f"({newest[0]}, {newest[1]}) for {m.app_id}/{m.platform}/{m.channel}"
                ),
                "manifest",
            )
        if m.rollback_of is None:
            taken = await self.session.scalar(
                select(Release.id).where(
                    Release.app_id == m.app_id,
                    Release.platform == m.platform.value,
                    Release.channel == m.channel,
                    Release.version == m.version,
                    Release.rollback_of.is_(None),
                )
            )
            if taken is not None:
                raise _version_conflict(release)

    def _row(self, release: VerifiedRelease, rollout: int) -> Release:
        m = release.manifest
        return Release(
            app_id=m.app_id,
            platform=m.platform.value,
            channel=m.channel,
            version=m.version,
            binary_range=m.binary_range,
            epoch=m.epoch,
            sequence=m.sequence,
            manifest_id=release.manifest_id,
            manifest=release.envelope,
            archive_sha256=m.archive.sha256,
            archive_length=m.archive.length,
            mandatory=m.mandatory,
            rollout_basis_points=rollout,
            paused=False,
            active=True,
            rollback_of=m.rollback_of,
            created_at=self.now,
            created_by=self.principal.label,
        )

    async def _changed(self, row: Release) -> None:
        """After a commit: devices of every process see the channel's new answer."""
        await self.cache.invalidate(row.app_id, row.platform, row.channel)


def _version_conflict(release: VerifiedRelease) -> VersionExistsError:
    m = release.manifest
    return VersionExistsError(
        f"version {m.version} is already published on {m.app_id}/{m.platform}/{m.channel}; "
        "bump the version, or roll back with a new sequence",
        field="version",
    )


def _mandatory_matches(given: str, release: VerifiedRelease) -> None:
    if given.lower() not in ("true", "false"):
        raise InvalidInputError("mandatory must be true or false", field="mandatory")
    if (given.lower() == "true") != release.manifest.mandatory:
        raise MandatoryIsSignedError(
            "mandatory differs from the signed manifest; it is set when signing",
            field="mandatory",
        )


def _same_content(release: VerifiedRelease, source: Release, *, same_channel: bool) -> None:
    """Refuse a rollback or promote that is not ``source``'s content on the right channel."""
    m = release.manifest
    if m.archive.sha256 != source.archive_sha256:
        raise ContentMismatchError(
            f"the new manifest points at archive {m.archive.sha256[:12]}…, release {source.id} "
            f"has {source.archive_sha256[:12]}…",
            field="manifest",
        )
    if m.platform.value != source.platform:
        raise TargetMismatchError("platform differs from the source", field="manifest")
    if same_channel and m.channel != source.channel:
        raise TargetMismatchError("a rollback stays on its channel", field="manifest")
    if not same_channel and m.channel == source.channel:
        raise TargetMismatchError("promote to a different channel", field="manifest")
    if same_channel and m.rollback_of != source.manifest_id:
        raise InvalidInputError(
            "a rollback manifest must name the release it restores in rollbackOf",
            field="manifest",
        )


async def _check_archive(release: VerifiedRelease, path: Path, sha256: str, length: int) -> None:
    signed = release.manifest.archive
    if (sha256, length) != (signed.sha256, signed.length):
        raise RejectedFieldError(
            HashMismatchError(
                f"archive sha256/length {sha256}/{length} differ from the signed "
                f"{signed.sha256}/{signed.length}"
            ),
            "archive",
        )
    # Decompressing and hashing up to the archive cap is CPU and disk work:
    # in a thread, so update checks on this process keep being answered.
    try:
        await asyncio.to_thread(_validate_archive, path, release)
    except HotPatchError as exc:
        raise RejectedFieldError(exc, "archive") from None


def _validate_archive(path: Path, release: VerifiedRelease) -> None:
    with path.open("rb") as handle:
        extract_archive(handle, release.manifest.files, NullSink())


def _report_warnings(counts: dict[str, int], seen: dict[str, int]) -> list[str]:
    """Say where reports come mostly from devices that never checked: they may be forged."""
    warnings = []
    for status, total in counts.items():
        unseen = total - seen.get(status, 0)
        if unseen >= UNSEEN_WARNING_MIN and unseen * 2 > total:
            warnings.append(
                f"{unseen} of {total} {status} reports come from devices that never checked "
                "for updates on this server: they may be forged (reports need no credential)"
            )
    return warnings


def _counts(by_status: dict[str, int]) -> dict[ReportStatus, int]:
    return {status: by_status.get(status.value, 0) for status in ReportStatus}


async def _stats(session: AsyncSession, row: Release) -> ReleaseStats:
    by_status = await session.execute(
        select(Installation.status, Installation.phase, func.count())
        .where(Installation.manifest_id == row.manifest_id, Installation.app_id == row.app_id)
        .group_by(Installation.status, Installation.phase)
    )
    counts: dict[str, int] = {"applied": 0, "failed": 0, "rolled_back": 0}
    phases: dict[str, int] = {}
    for status, phase, count in by_status.all():
        counts[status] = counts.get(status, 0) + count
        if phase:
            phases[f"{status}/{phase}"] = count
    # Reports need no credential (S10): a device that never checked for updates may be
    # made up. Count the reports of devices this server has seen check, per status.
    seen_rows = await session.execute(
        select(Installation.status, func.count())
        .join(
            Device,
            (Device.app_id == Installation.app_id) & (Device.device_id == Installation.device_id),
        )
        .where(Installation.manifest_id == row.manifest_id, Installation.app_id == row.app_id)
        .group_by(Installation.status)
    )
    seen = dict.fromkeys(counts, 0) | {str(s): int(n) for s, n in seen_rows.all()}
    running = await session.scalar(
        select(func.count())
        .select_from(Device)
        .where(Device.app_id == row.app_id, Device.current_manifest_id == row.manifest_id)
    )
    patch_rows = (
        await session.execute(
            select(Patch.base_manifest_id, Patch.length, Patch.downloads).where(
                Patch.target_manifest_id == row.manifest_id
            )
        )
    ).all()
    # A patch saves bytes only once a device has installed it and run it: applied
    # reports name the base the patch was applied to. Served downloads that failed
    # on the device (and fell back to the archive) save nothing.
    installs = await session.execute(
        select(Installation.patched_from, func.count())
        .where(
            Installation.app_id == row.app_id,
            Installation.manifest_id == row.manifest_id,
            Installation.status == ReportStatus.APPLIED.value,
            Installation.patched_from.is_not(None),
        )
        .group_by(Installation.patched_from)
    )
    confirmed: dict[str | None, int] = {base: int(n) for base, n in installs.all()}
    return ReleaseStats(
        id=row.id,
        manifest_id=row.manifest_id,
        installations=_counts(counts),
        installations_from_checked_devices=_counts(seen),
        warnings=tuple(_report_warnings(counts, seen)),
        failures_by_phase=phases,
        devices_running=int(running or 0),
        rollout_percent=row.rollout_basis_points / 100,
        patches=tuple(
            PatchStats(
                base_manifest_id=base,
                size=length,
                downloads=downloads,  # served to the end (local storage only)
                installs=confirmed.get(base, 0),
            )
            for base, length, downloads in patch_rows
        ),
        bytes_saved=sum(
            confirmed.get(base, 0) * (row.archive_length - length) for base, length, _ in patch_rows
        ),
    )
