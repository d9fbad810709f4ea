"""Releases: publish, list, inspect, roll out, roll back, promote, archive.

Publishing verifies everything the core can verify before anything is kept:
the envelope against the app's trust root and the key's scope, the archive's
sha256 and length against the manifest, the archive itself through the core's
strict extractor, and ``(epoch, sequence)`` increasing per (app, platform,
channel). Any rejection leaves no row and no blob behind. The manifest is
stored and served as the exact bytes uploaded.

The server never signs: a rollback or a promote is a *new manifest* signed
by the publisher (the CLI does it) that points at content already stored.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, delete, get, patch, post
from litestar.background_tasks import BackgroundTask, BackgroundTasks
from litestar.di import NamedDependency
from litestar.params import FromQuery, JSONBody, PathParameter, QueryParameter, SkipValidation
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from hotpatch_core.archive import NullSink, extract_archive
from hotpatch_core.cohort import parse_percent, percent_to_basis_points
from hotpatch_core.errors import HotPatchError
from hotpatch_core.machine import ReportStatus
from hotpatch_core.manifest import Platform
from hotpatch_core.publishing import (
    PatchStats,
    PatchView,
    ReleaseStats,
    ReleaseView,
)
from hotpatch_core.release import VerifiedRelease, verify_publication
from hotpatch_core.trust import load_trust_root
from hotpatch_core.wire import parse_decimal
from hotpatch_server.audit import record
from hotpatch_server.auth import Action, Principal
from hotpatch_server.blobs import BlobStore
from hotpatch_server.codepush.diffs import generate_codepush_diffs
from hotpatch_server.deps import (
    ActiveReleasesDep,
    BlobStoreDep,
    DbSession,
    Now,
    PrincipalDep,
    SessionMaker,
    SettingsDep,
)
from hotpatch_server.metrics import Metrics
from hotpatch_server.models import App, Device, Installation, Patch, Release, utc
from hotpatch_server.patches import PatchRejectedError, generate_patches, register_patch
from hotpatch_server.problems import Problem, problem_for
from hotpatch_server.ratelimit import Limits
from hotpatch_server.settings import Settings
from hotpatch_server.upload import read_upload
from hotpatch_server.wire_schema import wire_response

__all__ = ["ReleaseController", "find_release", "release_view"]

# Ids beyond the 64-bit range cannot exist; bounding them keeps them out of the database driver.
ReleaseId = Annotated[int, PathParameter(ge=1, le=2**63 - 1)]


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


async def _app(session: AsyncSession, app_id: str) -> App:
    app = await session.get(App, app_id)
    if app is None:
        raise Problem(404, "not-found", f"no app {app_id!r}; create it first", field="appId")
    return app


def _verify(app: App, envelope: bytes, now: datetime) -> VerifiedRelease:
    try:
        release = verify_publication(envelope, load_trust_root(app.trust_root), now)
    except HotPatchError as exc:
        raise problem_for(exc, field="manifest") from None
    if release.manifest.app_id != app.id:
        raise Problem(
            422,
            "identity-mismatch",
            f"manifest is for app {release.manifest.app_id!r}, uploaded to {app.id!r}",
            field="appId",
        )
    return release


async def _check_sequence(session: AsyncSession, release: VerifiedRelease) -> None:
    m = release.manifest
    newest = (
        await session.execute(
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
        raise Problem(
            409,
            "sequence-not-increasing",
            f"sequence ({m.epoch}, {m.sequence}) is not above the newest published "
            f"({newest[0]}, {newest[1]}) for {m.app_id}/{m.platform}/{m.channel}",
            field="manifest",
        )
    if m.rollback_of is None:
        taken = await session.scalar(
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


def _version_conflict(release: VerifiedRelease) -> Problem:
    m = release.manifest
    return Problem(
        409,
        "version-exists",
        f"version {m.version} is already published on {m.app_id}/{m.platform}/{m.channel}; "
        "bump the version, or roll back with a new sequence",
        field="version",
    )


def _row(
    release: VerifiedRelease, principal: Principal, now: datetime, rollout_basis_points: int
) -> Release:
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
        rollout_basis_points=rollout_basis_points,
        paused=False,
        active=True,
        rollback_of=m.rollback_of,
        created_at=now,
        created_by=principal.label,
    )


#: Reports of one status from devices never seen checking, from which on a warning is given.
UNSEEN_WARNING_MIN = 10


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


def rollout_basis_points(percent: float | str, field: str) -> int:
    """Convert a rollout percentage (a JSON number, or form text) to basis points, or 422."""
    try:
        if isinstance(percent, str):
            return parse_percent(percent)
        return percent_to_basis_points(percent)
    except ValueError as exc:
        raise Problem(422, "invalid", str(exc), field=field) from None


def _rollout(fields: dict[str, str]) -> int:
    return rollout_basis_points(
        fields.get("rollout", fields.get("rolloutPercent", "100")), "rollout"
    )


def _mandatory_matches(fields: dict[str, str], release: VerifiedRelease) -> None:
    given = fields.get("mandatory")
    if given is None:
        return
    if given.lower() not in ("true", "false"):
        raise Problem(422, "invalid", "mandatory must be true or false", field="mandatory")
    if (given.lower() == "true") != release.manifest.mandatory:
        raise Problem(
            422,
            "mandatory-is-signed",
            "mandatory differs from the signed manifest; it is set when signing",
            field="mandatory",
        )


class PublishRequest(msgspec.Struct, rename="camel"):
    """A new signed manifest for content the server already stores."""

    manifest: str
    rollout_percent: float = 100.0


class PatchUpload(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    """A patch to this release from an earlier one (base64), made by the CLI."""

    base_manifest_id: str
    patch: str


class RolloutChange(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    """Advisory rollout settings of a release (not signed, never decide what runs)."""

    rollout_percent: float | None = None
    paused: bool | None = None


class ReleaseController(Controller):
    """``/releases``: the publisher's API."""

    path = "/releases"
    tags = ["releases"]  # noqa: RUF012 - Litestar reads it as a class attribute

    @post("/", status_code=201, request_max_body_size=None, summary="Publish a release")
    async def publish(
        self,
        request: Request[Any, Any, Any],
        principal: PrincipalDep,
        db_session: DbSession,
        blob_store: BlobStoreDep,
        settings: SettingsDep,
        active_releases: ActiveReleasesDep,
        now: Now,
        app_metrics: NamedDependency[SkipValidation[Metrics]],
        limits: NamedDependency[SkipValidation[Limits]],
        sessionmaker: SessionMaker,
    ) -> Response[ReleaseView]:
        """Multipart: ``appId``, ``manifest`` (envelope), ``archive`` (zip), ``rollout`` (%).

        After the answer is sent, patches to the new release are made in the
        background (:mod:`hotpatch_server.patches`).
        """
        await limits.publish.enforce(principal.key_id, now.timestamp())
        if not principal.may(Action.PUBLISH):  # a viewer: refused before the body is read
            raise Problem(
                403,
                "forbidden",
                f"credential {principal.name!r} ({principal.role}) may not publish",
            )
        _cap_body(request, settings)

        def authorize(app_id: str) -> None:
            principal.require(Action.PUBLISH, app_id)

        upload = await read_upload(
            request, settings.data_dir / "tmp", settings.max_archive_bytes, authorize
        )
        try:
            app_id = upload.fields.get("appId") or upload.fields.get("app_id")
            if not app_id:
                raise Problem(422, "invalid", "appId is required", field="appId")
            # read_upload called authorize() for every app id field as it arrived.
            if upload.manifest is None:
                raise Problem(422, "invalid", "the signed manifest is required", field="manifest")
            if upload.archive is None:
                raise Problem(422, "invalid", "the archive is required", field="archive")
            rollout = _rollout(upload.fields)
            release = _verify(await _app(db_session, app_id), upload.manifest, now)
            _mandatory_matches(upload.fields, release)
            await _check_archive(
                release, upload.archive, upload.archive_sha256, upload.archive_length
            )
            await _check_sequence(db_session, release)
            row = _row(release, principal, now, rollout)
            # No transaction stays open while the archive is stored: on SQLite a
            # write lock held across a slow object store stalled every device
            # report and check-in behind it (found by nox -s faults).
            await db_session.commit()
            created = await blob_store.put(release.manifest.archive.sha256, upload.archive)
            upload.archive = None  # the store owns the file now
            db_session.add(row)
            record(db_session, principal, "publish", row, now, {"archive": row.archive_sha256})
            try:
                await db_session.commit()
            except IntegrityError:
                # A release with this version or sequence committed meanwhile
                # (the checks above saw none). Known gap: if another publish of
                # the same archive found our fresh blob and commits after this
                # delete, its row points at a missing blob.
                if created:
                    await blob_store.delete(row.archive_sha256)
                raise _version_conflict(release) from None
        finally:
            upload.discard()
        await active_releases.invalidate(row.app_id, row.platform, row.channel)
        app_metrics.inc("publish", app=row.app_id)
        patches = (
            BackgroundTasks(
                [
                    BackgroundTask(task, sessionmaker, blob_store, active_releases, row.id,
                                   settings.data_dir / "tmp", lambda: now,
                                   settings.max_expanded_bytes)
                    for task in (generate_patches, generate_codepush_diffs)
                ]
            )
            if settings.auto_patches
            else None
        )  # fmt: skip
        response = wire_response(release_view(row, blob_store, now), status_code=201)
        response.background = patches
        return response

    @get("/", summary="List releases")
    async def list_releases(
        self,
        principal: PrincipalDep,
        db_session: DbSession,
        blob_store: BlobStoreDep,
        now: Now,
        app_id: Annotated[str | None, QueryParameter(name="appId")] = None,
        platform: FromQuery[str | None] = None,
        channel: FromQuery[str | None] = None,
        version: FromQuery[str | None] = None,
        active: FromQuery[bool | None] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
    ) -> Response[list[ReleaseView]]:
        """Releases the caller may read, newest first, filtered."""
        query = select(Release).order_by(
            Release.app_id, Release.epoch.desc(), Release.sequence.desc(), Release.id.desc()
        )
        if app_id is not None:
            principal.require(Action.READ, app_id)
            query = query.where(Release.app_id == app_id)
        elif "*" not in principal.apps:
            query = query.where(Release.app_id.in_(principal.apps))
        for column, value in (
            (Release.platform, platform),
            (Release.channel, channel),
            (Release.version, version),
            (Release.active, active),
        ):
            if value is not None:
                query = query.where(column == value)
        rows = (await db_session.execute(query.limit(limit))).scalars()
        return wire_response([release_view(r, blob_store, now) for r in rows])

    @get("/{release_id:int}", summary="Show a release")
    async def show(
        self,
        release_id: ReleaseId,
        principal: PrincipalDep,
        db_session: DbSession,
        blob_store: BlobStoreDep,
        now: Now,
    ) -> Response[ReleaseView]:
        """One release, with its signed manifest (base64, exactly as uploaded)."""
        row = await find_release(db_session, release_id, principal, Action.READ)
        return wire_response(release_view(row, blob_store, now, with_manifest=True))

    @get("/{release_id:int}/stats", summary="Installation statistics of a release")
    async def stats(
        self, release_id: ReleaseId, principal: PrincipalDep, db_session: DbSession
    ) -> Response[ReleaseStats]:
        """Count reports, devices running the release, its patches and the bytes they saved."""
        row = await find_release(db_session, release_id, principal, Action.READ)
        by_status = await db_session.execute(
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
        seen_rows = await db_session.execute(
            select(Installation.status, func.count())
            .join(
                Device,
                (Device.app_id == Installation.app_id)
                & (Device.device_id == Installation.device_id),
            )
            .where(Installation.manifest_id == row.manifest_id, Installation.app_id == row.app_id)
            .group_by(Installation.status)
        )
        seen = dict.fromkeys(counts, 0) | {str(s): int(n) for s, n in seen_rows.all()}
        running = await db_session.scalar(
            select(func.count())
            .select_from(Device)
            .where(Device.app_id == row.app_id, Device.current_manifest_id == row.manifest_id)
        )
        patch_rows = (
            await db_session.execute(
                select(Patch.base_manifest_id, Patch.length, Patch.downloads).where(
                    Patch.target_manifest_id == row.manifest_id
                )
            )
        ).all()
        # A patch saves bytes only once a device has installed it and run it: applied
        # reports name the base the patch was applied to. Served downloads that failed
        # on the device (and fell back to the archive) save nothing.
        installs = await db_session.execute(
            select(Installation.patched_from, func.count())
            .where(
                Installation.app_id == row.app_id,
                Installation.manifest_id == row.manifest_id,
                Installation.status == ReportStatus.APPLIED.value,
                Installation.patched_from.is_not(None),
            )
            .group_by(Installation.patched_from)
        )
        confirmed: dict[str | None, int] = {row[0]: row[1] for row in installs.all()}
        return wire_response(
            ReleaseStats(
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
                        downloads=downloads,
                        installs=confirmed.get(base, 0),
                    )
                    for base, length, downloads in patch_rows
                ),
                bytes_saved=sum(
                    confirmed.get(base, 0) * (row.archive_length - length)
                    for base, length, _ in patch_rows
                ),
            )
        )

    @post("/{release_id:int}/patches", status_code=201, summary="Upload a patch to this release")
    async def upload_patch(
        self,
        release_id: ReleaseId,
        data: JSONBody[PatchUpload],
        principal: PrincipalDep,
        db_session: DbSession,
        blob_store: BlobStoreDep,
        settings: SettingsDep,
        active_releases: ActiveReleasesDep,
        now: Now,
    ) -> Response[PatchView]:
        """Store a patch from ``baseManifestId`` after checking it rebuilds this release exactly."""
        target = await find_release(db_session, release_id, principal, Action.PUBLISH)
        base = await db_session.scalar(
            select(Release).where(
                Release.manifest_id == data.base_manifest_id, Release.app_id == target.app_id
            )
        )
        if base is None:
            raise Problem(404, "not-found", "no release of this app has that manifest id",
                          field="baseManifestId")  # fmt: skip
        try:
            payload = base64.b64decode(data.patch.encode("ascii"), validate=True)
        except (ValueError, UnicodeEncodeError):
            raise Problem(422, "invalid", "patch must be base64", field="patch") from None
        try:
            row = await register_patch(
                db_session,
                blob_store,
                base,
                target,
                payload,
                settings.data_dir / "tmp",
                now,
                settings.max_expanded_bytes,
            )
        except PatchRejectedError as exc:
            raise Problem(422, "invalid-patch", str(exc), field="patch") from None
        except IntegrityError:
            raise Problem(
                409, "patch-exists", "a patch between these releases exists already"
            ) from None
        record(db_session, principal, "patch", target, now, {"base": base.manifest_id})
        await db_session.commit()
        await active_releases.invalidate(target.app_id, target.platform, target.channel)
        view = PatchView(
            id=row.id,
            base_manifest_id=row.base_manifest_id,
            target_manifest_id=row.target_manifest_id,
            size=row.length,
            archive_size=row.archive_length,
        )
        return wire_response(view, status_code=201)

    @patch("/{release_id:int}/rollout", summary="Change rollout percentage or pause")
    async def change_rollout(
        self,
        release_id: ReleaseId,
        data: JSONBody[RolloutChange],
        principal: PrincipalDep,
        db_session: DbSession,
        blob_store: BlobStoreDep,
        active_releases: ActiveReleasesDep,
        now: Now,
    ) -> Response[ReleaseView]:
        """Widen, narrow, pause or resume a rollout. Advisory: never changes what is signed."""
        row = await find_release(db_session, release_id, principal, Action.ROLLOUT)
        before = {"rolloutPercent": row.rollout_basis_points / 100, "paused": row.paused}
        if data.rollout_percent is not None:
            row.rollout_basis_points = rollout_basis_points(data.rollout_percent, "rolloutPercent")
        if data.paused is not None:
            row.paused = data.paused
        record(db_session, principal, "rollout", row, now, {"before": before})
        await db_session.commit()
        await active_releases.invalidate(row.app_id, row.platform, row.channel)
        return wire_response(release_view(row, blob_store, now))

    @patch("/{release_id:int}/rollback", summary="Roll back to this release's content")
    async def rollback(
        self,
        release_id: ReleaseId,
        data: JSONBody[PublishRequest],
        principal: PrincipalDep,
        db_session: DbSession,
        blob_store: BlobStoreDep,
        active_releases: ActiveReleasesDep,
        now: Now,
    ) -> Response[ReleaseView]:
        """Activate a new signed manifest (next sequence) for release ``release_id``'s content."""
        source = await find_release(db_session, release_id, principal, Action.ROLLBACK)
        row = await _republish(
            db_session, source, data, principal, now, same_channel=True, action="rollback"
        )
        await active_releases.invalidate(row.app_id, row.platform, row.channel)
        return wire_response(release_view(row, blob_store, now))

    @post("/{release_id:int}/promote", status_code=201, summary="Promote to another channel")
    async def promote(
        self,
        release_id: ReleaseId,
        data: JSONBody[PublishRequest],
        principal: PrincipalDep,
        db_session: DbSession,
        blob_store: BlobStoreDep,
        active_releases: ActiveReleasesDep,
        now: Now,
    ) -> Response[ReleaseView]:
        """Publish release ``release_id``'s content on another channel under a new manifest."""
        source = await find_release(db_session, release_id, principal, Action.PROMOTE)
        row = await _republish(
            db_session, source, data, principal, now, same_channel=False, action="promote"
        )
        await active_releases.invalidate(row.app_id, row.platform, row.channel)
        return wire_response(release_view(row, blob_store, now))

    @delete("/{release_id:int}", status_code=200, summary="Archive a release (soft delete)")
    async def archive(
        self,
        release_id: ReleaseId,
        principal: PrincipalDep,
        db_session: DbSession,
        blob_store: BlobStoreDep,
        active_releases: ActiveReleasesDep,
        now: Now,
    ) -> Response[ReleaseView]:
        """Stop offering a release; its row, manifest and archive are kept."""
        row = await find_release(db_session, release_id, principal, Action.PUBLISH)
        row.active = False
        record(db_session, principal, "archive", row, now, {})
        await db_session.commit()
        await active_releases.invalidate(row.app_id, row.platform, row.channel)
        return wire_response(release_view(row, blob_store, now))


def _cap_body(request: Request[Any, Any, Any], settings: Settings) -> None:
    # The route disables Litestar's fixed default; the cap follows the setting.
    limit = settings.max_archive_bytes + 8 * 1024 * 1024
    length = parse_decimal(request.headers.get("content-length"), max_digits=30)
    if length is not None and length > limit:
        raise Problem(413, "too-large", f"request body exceeds {limit} bytes")


async def _check_archive(release: VerifiedRelease, path: Path, sha256: str, length: int) -> None:
    signed = release.manifest.archive
    if (sha256, length) != (signed.sha256, signed.length):
        raise Problem(
            422,
            "hash-mismatch",
            f"archive sha256/length {sha256}/{length} differ from the signed "
            f"{signed.sha256}/{signed.length}",
            field="archive",
        )
    # Decompressing and hashing up to the archive cap is CPU and disk work:
    # in a thread, so update checks on this process keep being answered.
    try:
        await asyncio.to_thread(_validate_archive, path, release)
    except HotPatchError as exc:
        raise problem_for(exc, field="archive") from None


def _validate_archive(path: Path, release: VerifiedRelease) -> None:
    with path.open("rb") as handle:
        extract_archive(handle, release.manifest.files, NullSink())


async def find_release(
    session: AsyncSession, release_id: int, principal: Principal, action: Action
) -> Release:
    """Return release ``release_id`` if ``principal`` may do ``action`` on it; else 404 / 403."""
    row = await session.get(Release, release_id)
    if row is None:
        raise Problem(404, "not-found", f"no release {release_id}")
    principal.require(action, row.app_id)
    return row


def _decode_manifest_field(text: str) -> bytes:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise Problem(
            422, "invalid", "manifest must be base64 of the envelope", field="manifest"
        ) from None


async def _republish(
    session: AsyncSession,
    source: Release,
    data: JSONBody[PublishRequest],
    principal: Principal,
    now: datetime,
    *,
    same_channel: bool,
    action: str,
) -> Release:
    release = _verify(
        await _app(session, source.app_id), _decode_manifest_field(data.manifest), now
    )
    m = release.manifest
    if m.archive.sha256 != source.archive_sha256:
        raise Problem(
            422,
            "content-mismatch",
            f"the new manifest points at archive {m.archive.sha256[:12]}…, release {source.id} "
            f"has {source.archive_sha256[:12]}…",
            field="manifest",
        )
    if m.platform.value != source.platform:
        raise Problem(
            422, "identity-mismatch", "platform differs from the source", field="manifest"
        )
    if same_channel and m.channel != source.channel:
        raise Problem(422, "identity-mismatch", "a rollback stays on its channel", field="manifest")
    if not same_channel and m.channel == source.channel:
        raise Problem(422, "identity-mismatch", "promote to a different channel", field="manifest")
    if same_channel and m.rollback_of != source.manifest_id:
        raise Problem(
            422,
            "invalid",
            "a rollback manifest must name the release it restores in rollbackOf",
            field="manifest",
        )
    await _check_sequence(session, release)
    rollout = rollout_basis_points(data.rollout_percent, "rolloutPercent")
    row = _row(release, principal, now, rollout)
    session.add(row)
    record(session, principal, action, row, now, {"source": source.manifest_id})
    try:
        await session.commit()
    except IntegrityError:
        raise _version_conflict(release) from None
    return row
