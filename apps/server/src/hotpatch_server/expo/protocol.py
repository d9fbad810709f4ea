"""The Expo Updates (protocol v1) device routes, over HotPatch's check and report services.

An app with ``expo-updates`` sets ``updates.url`` to
``<public URL>/expo/<app id>/manifest`` and sends, with every request, the
headers ``expo-platform``, ``expo-runtime-version``, ``expo-protocol-version:
1``, ``eas-client-id``, ``expo-current-update-id``,
``expo-embedded-update-id``, optionally ``expo-channel-name`` (from
``updates.requestHeaders``; ``production`` when absent),
``expo-recent-failed-update-ids`` and, when it checks code signatures,
``expo-expect-signature``.

Mapping to HotPatch: (app, ``expo-platform``, channel) names the channel;
``eas-client-id`` is the device id (cohorts, exclusions, statistics); an
active release is offered only if an Expo manifest for exactly the device's
runtime version is attached to it; then :func:`hotpatch_server.devices.check.choose`
decides with the same rollout cohorts, pauses and rolled-back exclusions as
HotPatch's own check. Each update id named in
``expo-recent-failed-update-ids`` becomes a ``rolled_back`` installation
report (that device is never offered the release again), and the update a
device runs (``expo-current-update-id``) an ``applied`` one, once per
device and process.

Answers: the manifest as ``multipart/mixed`` (its ``expo-signature`` part
header when the publisher signed it), a ``noUpdateAvailable`` directive
when there is nothing newer, or ``204`` instead of the directive when the
device expects signatures (directives are not signed: the server holds no
key, and a 204 needs no signature). Assets are served at
``/expo/assets/<sha256>``: stable, immutable, with their content type.

A publisher can roll a channel's runtime version back to the bundle embedded
in the binary (``hotpatch expo rollback-to-embedded``): updates committed
before that directive are no longer served, a device running one gets the
``rollBackToEmbedded`` directive (signed by the publisher when the app
checks signatures), and a device on its embedded bundle is told there is
nothing new. An update published after the directive is served as usual.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Final

import attrs
from litestar import Controller, Request, Response, get
from litestar.di import NamedDependency
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath, SkipValidation
from litestar.response import Redirect, Stream
from litestar.response.base import ASGIResponse
from litestar.types import Scope
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hotpatch_core.errors import SchemaError
from hotpatch_core.expo import RUNTIME_VERSION, multipart, parse_sfv_dictionary, parse_sfv_strings
from hotpatch_core.machine import ReportPhase, ReportStatus
from hotpatch_server import fields
from hotpatch_server.cache import ActiveReleases, Candidate
from hotpatch_server.deps import BlobStoreDep, DbSession, Now
from hotpatch_server.devices.check import choose
from hotpatch_server.devices.query import CHANNEL, DEVICE_ID, PLATFORM, CheckQuery
from hotpatch_server.devices.reports import Report, record_installation
from hotpatch_server.devices.tracker import DeviceTracker
from hotpatch_server.downloads import read_range
from hotpatch_server.errors import DeviceInputError, NotFoundError, UnsignedUpdateError
from hotpatch_server.fields import device_value, required_device_value
from hotpatch_server.metrics import Metrics
from hotpatch_server.models import ExpoAsset
from hotpatch_server.ratelimit import Limits, client_address
from hotpatch_server.storage.blobs import BlobStore, LocalBlobStore

__all__ = ["ExpoController", "ExpoService", "manifest_route"]

_UUID: Final = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)
_SHA256: Final = re.compile(r"[0-9a-f]{64}")
#: expo-updates sends at most five failed ids; more are ignored.
_MAX_FAILED: Final = 5
#: (device, update) pairs whose ``applied`` report this process stored already.
_MAX_SEEN: Final = 100_000
_HEADERS: Final = (
    ("expo-protocol-version", "1"),
    ("expo-sfv-version", "0"),
    ("cache-control", "private, max-age=0"),
)
#: The request headers the check reads (ASGI gives header names in lowercase).
_READ: Final = frozenset(
    {
        b"expo-protocol-version",
        b"expo-platform",
        b"expo-runtime-version",
        b"eas-client-id",
        b"expo-channel-name",
        b"expo-current-update-id",
        b"expo-embedded-update-id",
        b"expo-recent-failed-update-ids",
        b"expo-expect-signature",
    }
)
_NO_UPDATE: Final = multipart([("directive", b'{"type":"noUpdateAvailable"}', {})])


def _structured(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name, "")
    if len(value) > 4096:
        raise DeviceInputError(f"header {name} is too long", field=name)
    return value


@attrs.frozen
class ExpoCheck:
    """A validated manifest request."""

    app_id: str
    platform: str
    channel: str
    runtime_version: str
    device_id: str
    current: str | None
    embedded: str | None
    failed: tuple[str, ...]
    expected_key_id: str | None


def parse_request(app_id: str, headers: Mapping[str, str]) -> ExpoCheck:
    """Validate a manifest request's headers; a 400 names the bad one."""
    fields.app_id(app_id, "appId")
    protocol = headers.get("expo-protocol-version")
    if protocol != "1":
        raise DeviceInputError(
            "expo-protocol-version must be 1 (expo-updates 0.16 and later send it)",
            field="expo-protocol-version",
        )
    platform = required_device_value(headers, "expo-platform", PLATFORM, kind="header ")
    runtime = required_device_value(
        headers, "expo-runtime-version", RUNTIME_VERSION, kind="header "
    )
    device_id = required_device_value(headers, "eas-client-id", DEVICE_ID, kind="header ")
    channel = device_value(headers, "expo-channel-name", CHANNEL, kind="header ") or "production"
    current = device_value(headers, "expo-current-update-id", _UUID, kind="header ")
    embedded = device_value(headers, "expo-embedded-update-id", _UUID, kind="header ")
    try:
        failed = parse_sfv_strings(_structured(headers, "expo-recent-failed-update-ids"))
        expect = parse_sfv_dictionary(_structured(headers, "expo-expect-signature"))
    except SchemaError as exc:
        raise DeviceInputError(f"a structured header is malformed: {exc}") from None
    key_id: str | None = None
    if headers.get("expo-expect-signature"):
        given = expect.get("keyid", "root")
        key_id = given if isinstance(given, str) else "root"
    return ExpoCheck(
        app_id=app_id,
        platform=platform,
        channel=channel,
        runtime_version=runtime,
        device_id=device_id,
        current=current.lower() if current else None,
        embedded=embedded.lower() if embedded else None,
        failed=tuple(f.lower() for f in failed[:_MAX_FAILED] if _UUID.fullmatch(f)),
        expected_key_id=key_id,
    )


def _signed_as_expected(request: ExpoCheck, key_id: str | None, what: str) -> None:
    """Refuse to send what the device would reject for want of the signature it expects."""
    if request.expected_key_id is not None and key_id != request.expected_key_id:
        raise UnsignedUpdateError(
            f"the device expects a signature with keyid {request.expected_key_id!r}; {what} is "
            + (f"signed with keyid {key_id!r}" if key_id else "not signed"),
        )


@attrs.frozen
class ExpoAnswer:
    """What the manifest route sends: a status, a content type and a body."""

    status: int
    content_type: str | None
    body: bytes


@attrs.frozen
class _Index:
    """A channel's active releases by Expo update id and by runtime version."""

    candidates: tuple[Candidate, ...]
    by_update: dict[str, Candidate]
    by_runtime: dict[str, tuple[Candidate, ...]]

    @classmethod
    def of(cls, candidates: tuple[Candidate, ...]) -> _Index:
        """Index ``candidates`` (newest first, as the cache gives them)."""
        by_runtime: dict[str, list[Candidate]] = {}
        for candidate in candidates:
            if candidate.expo is not None:
                by_runtime.setdefault(candidate.expo.runtime_version, []).append(candidate)
        return cls(
            candidates,
            {c.expo.update_id: c for c in candidates if c.expo is not None},
            {runtime: tuple(found) for runtime, found in by_runtime.items()},
        )


#: Channels whose index is kept per process (the cache bounds its own keys alike).
_MAX_INDEXES: Final = 10_000


@attrs.define
class ExpoService:
    """The Expo check: translate, then HotPatch's own selection (no database on a hit)."""

    active_releases: ActiveReleases
    device_tracker: DeviceTracker
    sessionmaker: async_sessionmaker[AsyncSession]
    metrics: Metrics
    limits: Limits
    clock: Callable[[], datetime]
    _seen: set[tuple[str, str]] = attrs.field(factory=set, init=False)
    _indexes: dict[tuple[str, str, str], _Index] = attrs.field(factory=dict, init=False)

    def _index(self, key: tuple[str, str, str], candidates: tuple[Candidate, ...]) -> _Index:
        """Index a channel's releases once per cache load, not once per request."""
        index = self._indexes.get(key)
        if index is None or index.candidates is not candidates:
            if len(self._indexes) >= _MAX_INDEXES:
                self._indexes.clear()
            index = self._indexes[key] = _Index.of(candidates)
        return index

    async def check(self, app_id: str, headers: Mapping[str, str]) -> ExpoAnswer:
        """Answer a manifest request."""
        request = parse_request(app_id, headers)
        now = self.clock()
        await self.limits.check.enforce(f"{app_id}/{request.device_id}", now.timestamp())
        candidates = await self.active_releases.get(app_id, request.platform, request.channel)
        index = self._index((app_id, request.platform, request.channel), candidates)
        current = index.by_update.get(request.current) if request.current else None
        if request.failed or current is not None:
            await self._reports(request, index.by_update, current, now)
        fitting = index.by_runtime.get(request.runtime_version, ())
        directive = self.active_releases.expo_directives(
            app_id, request.platform, request.channel
        ).get(request.runtime_version)
        if directive is not None:  # the channel was rolled back to the embedded bundle
            fitting = tuple(
                c
                for c in fitting
                if c.expo is not None and c.expo.commit_time > directive.commit_time
            )
        query = CheckQuery(
            app_id=app_id,
            platform=request.platform,
            channel=request.channel,
            device_id=request.device_id,
            native_version=None,  # matched exactly above
            native_text=request.runtime_version,
            current_manifest_id=current.manifest_id if current else None,
            current_position=None,
        )
        self.device_tracker.note(query, now)
        chosen = choose(query, fitting)
        self.metrics.inc("expo_check", offered=str(chosen is not None).lower())
        if chosen is None or chosen.expo is None:
            if directive is not None and request.current not in (None, request.embedded):
                _signed_as_expected(
                    request, directive.key_id, "the rollback to the embedded bundle"
                )
                return ExpoAnswer(200, directive.content_type, directive.body)
            if request.expected_key_id is not None:
                return ExpoAnswer(204, None, b"")
            return ExpoAnswer(200, *_NO_UPDATE)
        served = chosen.expo
        _signed_as_expected(
            request, served.key_id, f"release {chosen.version} (sequence {chosen.sequence})"
        )
        return ExpoAnswer(200, served.content_type, served.body)

    async def _reports(
        self,
        request: ExpoCheck,
        by_update: dict[str, Candidate],
        current: Candidate | None,
        now: datetime,
    ) -> None:
        """Store what the request's headers say happened on the device (rarely a write)."""
        reports: list[Report] = []
        for failed_id in request.failed:
            failed = by_update.get(failed_id)
            if failed is not None and request.device_id not in failed.rolled_back_devices:
                reports.append(
                    Report(
                        id=f"expo-failed-{failed_id}",
                        app_id=request.app_id,
                        device_id=request.device_id,
                        manifest_id=failed.manifest_id,
                        status=ReportStatus.ROLLED_BACK,
                        phase=ReportPhase.FIRST_LAUNCH.value,
                        reason="expo-updates: the update failed to launch",
                    )
                )
        if current is not None and current.expo is not None:
            seen = (request.device_id, current.expo.update_id)
            if seen not in self._seen:
                if len(self._seen) >= _MAX_SEEN:
                    self._seen.clear()
                self._seen.add(seen)
                reports.append(
                    Report(
                        id=f"expo-ok-{current.expo.update_id}",
                        app_id=request.app_id,
                        device_id=request.device_id,
                        manifest_id=current.manifest_id,
                        status=ReportStatus.APPLIED,
                    )
                )
        if not reports:
            return
        await self.limits.report.enforce(f"{request.app_id}/{request.device_id}", now.timestamp())
        async with self.sessionmaker() as session:
            for report in reports:
                await record_installation(session, report, now, self.active_releases, self.metrics)


def manifest_route(service: ExpoService) -> HTTPRouteHandler:
    """Build the manifest route ``expo-updates`` calls: ``GET /expo/<app id>/manifest``.

    Lean on purpose: the handler takes only the ASGI scope (no parameter
    models, no dependency injection), reads only the headers the protocol
    names and returns the precomputed answer bytes. Each request carries the
    protocol's seven headers and each answer three more, which the HTTP
    parser pays for; with the framework's usual per-request work on top, the
    route measured 4-7 % slower than HotPatch's own check (docs/benchmarks.md).
    It needs no credentials.
    """

    async def manifest(scope: Scope) -> ASGIResponse:
        headers = {
            name.decode("latin-1"): value.decode("latin-1")
            for name, value in scope["headers"]
            if name in _READ
        }
        answer = await service.check(scope["path_params"]["app_id"], headers)
        return ASGIResponse(
            body=answer.body,
            status_code=answer.status,
            media_type=answer.content_type,
            headers=_HEADERS,
        )

    return get(
        "/expo/{app_id:str}/manifest",
        name="expo-manifest",
        tags=["expo"],
        summary="Expo Updates manifest request",
        description=(
            "Expo Updates protocol v1: headers expo-platform, expo-runtime-version, "
            "expo-protocol-version (1), eas-client-id, and optionally expo-channel-name, "
            "expo-current-update-id, expo-embedded-update-id, expo-recent-failed-update-ids, "
            "expo-expect-signature. Answers multipart/mixed (a manifest, or a "
            "noUpdateAvailable directive) or 204."
        ),
    )(manifest)


class ExpoController(Controller):
    """The asset route ``expo-updates`` calls; no credentials."""

    path = "/expo"
    tags = ["expo"]  # noqa: RUF012 - Litestar reads it as a class attribute

    @get("/assets/{sha256:str}", summary="An Expo update's asset, by sha256")
    async def asset(
        self,
        sha256: FromPath[str],
        request: Request[Any, Any, Any],
        blob_store: BlobStoreDep,
        db_session: DbSession,
        expo_service: NamedDependency[SkipValidation[ExpoService]],
        now: Now,
    ) -> Response[Any]:
        """Serve an asset an attached Expo manifest lists: immutable, with its content type."""
        await expo_service.limits.telemetry.enforce(client_address(request), now.timestamp())
        if not _SHA256.fullmatch(sha256):
            raise DeviceInputError("an asset is named by 64 lowercase hex digits")
        row = await db_session.get(ExpoAsset, sha256)
        if row is None:
            raise NotFoundError("no Expo asset with that sha256")
        return _serve(blob_store, row, now)


def _serve(store: BlobStore, row: ExpoAsset, now: datetime) -> Response[Any]:
    if not isinstance(store, LocalBlobStore):
        return Redirect(store.url(row.sha256, now), status_code=302)
    path = store.path(row.sha256)
    if not path.exists():
        raise NotFoundError("the asset's blob is missing from storage")
    headers = {
        "Cache-Control": "public, max-age=31536000, immutable",
        "ETag": f'"{row.sha256}"',
        "Content-Length": str(row.length),
    }
    return Stream(read_range(path, 0, row.length - 1), media_type=row.content_type, headers=headers)
