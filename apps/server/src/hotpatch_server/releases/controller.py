"""The releases slice's HTTP routes: ``/releases`` (publish, list, show, stats, roll out, ...).

Each route authenticates, reads the request and calls
:class:`~hotpatch_server.releases.service.ReleaseService`, which verifies,
stores, audits and invalidates the cache; domain errors become problem+json
in one table (:mod:`hotpatch_server.problems`).

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

from typing import Annotated, Any, TypeAlias

from litestar import Controller, Request, Response, delete, get, patch, post
from litestar.background_tasks import BackgroundTask, BackgroundTasks
from litestar.di import NamedDependency, Provide
from litestar.params import Body, FromQuery, PathParameter, QueryParameter, SkipValidation

from hotpatch_core.publishing import (
    NewPatch,
    PatchView,
    ReleaseStats,
    ReleaseView,
    Republish,
    RolloutChange,
)
from hotpatch_core.wire import parse_decimal
from hotpatch_server import fields
from hotpatch_server.auth import Action
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
from hotpatch_server.errors import ForbiddenError, InvalidInputError
from hotpatch_server.metrics import Metrics
from hotpatch_server.patches.service import generate_patches
from hotpatch_server.problems import Problem
from hotpatch_server.ratelimit import Limits
from hotpatch_server.releases.service import (
    Publication,
    ReleaseFilter,
    ReleaseService,
    rollout_basis_points,
)
from hotpatch_server.releases.upload import read_upload
from hotpatch_server.settings import Settings
from hotpatch_server.wire_schema import JsonObject, WireBody, read_body, wire_response

__all__ = ["ReleaseController"]

# Ids beyond the 64-bit range cannot exist; bounding them keeps them out of the database driver.
ReleaseId = Annotated[int, PathParameter(ge=1, le=2**63 - 1)]


def _release_service(
    db_session: DbSession,
    blob_store: BlobStoreDep,
    active_releases: ActiveReleasesDep,
    principal: PrincipalDep,
    now: Now,
) -> ReleaseService:
    return ReleaseService(db_session, blob_store, active_releases, principal, now)


ReleaseServiceDep: TypeAlias = NamedDependency[SkipValidation[ReleaseService]]


class ReleaseController(Controller):
    """``/releases``: the publisher's API."""

    path = "/releases"
    tags = ["releases"]  # noqa: RUF012 - Litestar reads it as a class attribute
    # One service per request, over the request's session, principal and time.
    dependencies = {"releases": Provide(_release_service, sync_to_thread=False)}  # noqa: RUF012

    @post("/", status_code=201, request_max_body_size=None, summary="Publish a release")
    async def publish(
        self,
        request: Request[Any, Any, Any],
        principal: PrincipalDep,
        releases: ReleaseServiceDep,
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
        background (:mod:`hotpatch_server.patches.service`).
        """
        await limits.publish.enforce(principal.key_id, now.timestamp())
        if not principal.may(Action.PUBLISH):  # a viewer: refused before the body is read
            raise ForbiddenError(
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
                raise InvalidInputError("appId is required", field="appId")
            # read_upload called authorize() for every app id field as it arrived.
            if upload.manifest is None:
                raise InvalidInputError("the signed manifest is required", field="manifest")
            if upload.archive is None:
                raise InvalidInputError("the archive is required", field="archive")
            fields = upload.fields
            rollout = fields.get("rollout", fields.get("rolloutPercent", "100"))
            publication = Publication(
                app_id=app_id,
                envelope=upload.manifest,
                archive=upload.archive,
                archive_sha256=upload.archive_sha256,
                archive_length=upload.archive_length,
                rollout_basis_points=rollout_basis_points(rollout, "rollout"),
                mandatory=fields.get("mandatory"),
            )
            row = await releases.publish(publication)  # the store takes the archive file
        finally:
            upload.discard()
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
        response = wire_response(releases.view(row), status_code=201)
        response.background = patches
        return response

    @get("/", summary="List releases")
    async def list_releases(
        self,
        releases: ReleaseServiceDep,
        app_id: Annotated[str | None, QueryParameter(name="appId")] = None,
        platform: FromQuery[str | None] = None,
        channel: FromQuery[str | None] = None,
        version: FromQuery[str | None] = None,
        active: FromQuery[bool | None] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
    ) -> Response[list[ReleaseView]]:
        """Releases the caller may read, newest first, filtered."""
        wanted = ReleaseFilter(app_id, platform, channel, version, active, limit)
        return wire_response([releases.view(row) for row in await releases.matching(wanted)])

    @get("/{release_id:int}", summary="Show a release")
    async def show(
        self, release_id: ReleaseId, releases: ReleaseServiceDep
    ) -> Response[ReleaseView]:
        """One release, with its signed manifest (base64, exactly as uploaded)."""
        row = await releases.find(release_id, Action.READ)
        return wire_response(releases.view(row, with_manifest=True))

    @get("/{release_id:int}/stats", summary="Installation statistics of a release")
    async def stats(
        self, release_id: ReleaseId, releases: ReleaseServiceDep
    ) -> Response[ReleaseStats]:
        """Count reports, devices running the release, its patches and the bytes they saved."""
        return wire_response(await releases.stats(await releases.find(release_id, Action.READ)))

    @post("/{release_id:int}/patches", status_code=201, summary="Upload a patch to this release")
    async def upload_patch(
        self,
        release_id: ReleaseId,
        data: Annotated[JsonObject, Body(), WireBody(NewPatch)],
        releases: ReleaseServiceDep,
        settings: SettingsDep,
    ) -> Response[PatchView]:
        """Store a patch from ``baseManifestId`` after checking it rebuilds this release exactly."""
        sent = read_body(data, NewPatch, known_fields_only=True)
        target = await releases.find(release_id, Action.PUBLISH)
        row = await releases.add_patch(
            target,
            sent.base_manifest_id,
            fields.base64_bytes(sent.patch, "patch"),
            settings.data_dir / "tmp",
            settings.max_expanded_bytes,
        )
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
        data: Annotated[JsonObject, Body(), WireBody(RolloutChange)],
        releases: ReleaseServiceDep,
    ) -> Response[ReleaseView]:
        """Widen, narrow, pause or resume a rollout. Advisory: never changes what is signed."""
        sent = read_body(data, RolloutChange, known_fields_only=True)
        row = await releases.find(release_id, Action.ROLLOUT)
        rollout = (
            None
            if sent.rollout_percent is None
            else rollout_basis_points(sent.rollout_percent, "rolloutPercent")
        )
        row = await releases.change_rollout(row, rollout=rollout, paused=sent.paused)
        return wire_response(releases.view(row))

    @patch("/{release_id:int}/rollback", summary="Roll back to this release's content")
    async def rollback(
        self,
        release_id: ReleaseId,
        data: Annotated[JsonObject, Body(), WireBody(Republish)],
        releases: ReleaseServiceDep,
    ) -> Response[ReleaseView]:
        """Activate a new signed manifest (next sequence) for release ``release_id``'s content."""
        sent = read_body(data, Republish)
        source = await releases.find(release_id, Action.ROLLBACK)
        row = await releases.republish(source, *_republication(sent), same_channel=True)
        return wire_response(releases.view(row))

    @post("/{release_id:int}/promote", status_code=201, summary="Promote to another channel")
    async def promote(
        self,
        release_id: ReleaseId,
        data: Annotated[JsonObject, Body(), WireBody(Republish)],
        releases: ReleaseServiceDep,
    ) -> Response[ReleaseView]:
        """Publish release ``release_id``'s content on another channel under a new manifest."""
        sent = read_body(data, Republish)
        source = await releases.find(release_id, Action.PROMOTE)
        row = await releases.republish(source, *_republication(sent), same_channel=False)
        return wire_response(releases.view(row), status_code=201)

    @delete("/{release_id:int}", status_code=200, summary="Archive a release (soft delete)")
    async def archive(
        self, release_id: ReleaseId, releases: ReleaseServiceDep
    ) -> Response[ReleaseView]:
        """Stop offering a release; its row, manifest and archive are kept."""
        row = await releases.find(release_id, Action.PUBLISH)
        return wire_response(releases.view(await releases.archive(row)))


def _cap_body(request: Request[Any, Any, Any], settings: Settings) -> None:
    # The route disables Litestar's fixed default; the cap follows the setting.
    limit = settings.max_archive_bytes + 8 * 1024 * 1024
    length = parse_decimal(request.headers.get("content-length"), max_digits=30)
    if length is not None and length > limit:
        raise Problem(413, "too-large", f"request body exceeds {limit} bytes")


def _republication(data: Republish) -> tuple[bytes, int]:
    """Read a rollback or promote body: the new envelope, and the rollout in basis points."""
    envelope = fields.base64_bytes(data.manifest, "manifest", "base64 of the envelope")
    return envelope, rollout_basis_points(data.rollout_percent, "rolloutPercent")
