"""The CodePush device routes, over HotPatch's check and report services.

``react-native-code-push`` 9.x (``code-push`` 4.x acquisition SDK) calls, on
the server URL the app carries:

- ``GET /v0.1/public/codepush/update_check?deployment_key=&app_version=
  [&package_hash=][&label=]&client_unique_id=`` and expects
  ``200 {"update_info": {...}}`` in snake_case with JSON booleans;
- ``POST /v0.1/public/codepush/report_status/deploy`` at app start (binary
  first run, ``DeploymentSucceeded`` or ``DeploymentFailed`` of a label);
- ``POST /v0.1/public/codepush/report_status/download`` after a download.

Mapping to HotPatch: the deployment key names (app, platform, channel);
``client_unique_id`` is the device id (cohorts, exclusions, statistics);
``app_version`` is the native version matched against binary ranges; the
device's current release is the active release with its package hash
(:mod:`hotpatch_core.codepush`), else the position its label names. The
choice is :func:`hotpatch_server.devices.check.choose`: the same rollout cohorts,
pauses, binary ranges and rolled-back exclusions as HotPatch's own check.
``DeploymentFailed`` is stored as a ``rolled_back`` installation (the device
is never offered that release again), ``DeploymentSucceeded`` as
``applied``.

What a CodePush device cannot check that a HotPatch device does: the
release's Ed25519 signatures and trust root (a CodePush device trusts the
server and TLS, or a publisher's RSA signature if the app embeds
``CodePushPublicKey``: ``hotpatch release --codepush-signing-key``). See
docs/howto/codepush.md.

Errors are problem documents with status 400 (bad query or body) or 404
(unknown or revoked deployment key): the client shows
``CodePushHttpError("<status>: <body>")``, as with code-push-server.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Final

import attrs
import msgspec
from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody, SkipValidation
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hotpatch_core.codepush import label, parse_label
from hotpatch_core.errors import VersionSyntaxError
from hotpatch_core.machine import ReportPhase, ReportStatus
from hotpatch_core.versions import Version
from hotpatch_server.cache import ActiveReleases, Candidate
from hotpatch_server.codepush.answers import (
    CheckAnswer,
    LegacyCheckAnswer,
    ReportAnswer,
    UpdateInfo,
    legacy,
)
from hotpatch_server.codepush.keys import KEY, DeploymentKeys, Target
from hotpatch_server.deps import ActiveReleasesDep, DbSession, Now
from hotpatch_server.devices.check import choose
from hotpatch_server.devices.query import DEVICE_ID, NATIVE_TEXT, CheckQuery, native_version
from hotpatch_server.devices.reports import Report, record_installation
from hotpatch_server.devices.tracker import DeviceTracker
from hotpatch_server.errors import DeviceInputError, NotFoundError
from hotpatch_server.fields import device_value, required_device_value
from hotpatch_server.metrics import Metrics
from hotpatch_server.models import Release
from hotpatch_server.ratelimit import Limits, client_address
from hotpatch_server.storage.blobs import BlobStore

__all__ = [
    "CodePushController",
    "CodePushService",
    "DeployReport",
    "DownloadReport",
    "LegacyCodePushController",
]

PREFIX: Final = "/v0.1/public/codepush"
_HASH: Final = re.compile(r"[0-9a-f]{64}")
#: Labels of other servers are accepted (a device moving to HotPatch sends them) but bounded.
_LABEL: Final = re.compile(r"[A-Za-z0-9._-]{1,64}")
_SUCCEEDED: Final = "DeploymentSucceeded"
_FAILED: Final = "DeploymentFailed"


def _native(text: str) -> Version:
    try:
        return native_version(text)
    except VersionSyntaxError as exc:
        raise DeviceInputError(str(exc), field="app_version") from None


def _query(
    target: Target,
    device_id: str,
    native: Version,
    native_text: str,
    manifest_id: str | None,
    position: tuple[int, int] | None = None,
) -> CheckQuery:
    """Describe a CodePush device as HotPatch's check and tracker see one."""
    return CheckQuery(
        app_id=target.app_id,
        platform=target.platform,
        channel=target.channel,
        device_id=device_id,
        native_version=native,
        native_text=native_text,
        current_manifest_id=manifest_id,
        current_position=position,
    )


def _current(
    candidates: tuple[Candidate, ...], package_hash: str | None, label_text: str | None
) -> tuple[str | None, tuple[int, int] | None]:
    """Find the device's release: the newest active one with its hash, else its label."""
    if package_hash is not None:
        for candidate in candidates:  # newest first
            if candidate.codepush_hash == package_hash:
                return candidate.manifest_id, None
    position = parse_label(label_text) if label_text is not None else None
    return None, position


def _binary_upgrade(candidates: tuple[Candidate, ...], native: Version) -> Candidate | None:
    """Find the newest release only a newer binary can run, when none fits this one."""
    live = [c for c in candidates if not c.paused]
    if any(c.binary_range.contains(native) for c in live):
        return None
    return next((c for c in live if c.binary_range.above(native)), None)


@attrs.frozen
class CodePushService:
    """The CodePush check: translate, then HotPatch's own selection (no database on a hit)."""

    deployment_keys: DeploymentKeys
    active_releases: ActiveReleases
    device_tracker: DeviceTracker
    blob_store: BlobStore
    metrics: Metrics
    limits: Limits
    clock: Callable[[], datetime]

    async def target(self, params: Mapping[str, object]) -> Target:
        """Return where the request's deployment key points; 404 if unknown."""
        key = required_device_value(params, "deployment_key", KEY)
        target = await self.deployment_keys.find(key)
        if target is None:
            raise NotFoundError("unknown or revoked deployment key")
        return target

    async def update_check(self, params: Mapping[str, object]) -> CheckAnswer:
        """Answer ``update_check`` with ``{"update_info": ...}``."""
        native_text = required_device_value(params, "app_version", NATIVE_TEXT)
        native = _native(native_text)
        device_id = required_device_value(params, "client_unique_id", DEVICE_ID)
        package_hash = device_value(params, "package_hash", _HASH)
        label_text = device_value(params, "label", _LABEL)
        target = await self.target(params)
        now = self.clock()
        await self.limits.check.enforce(f"{target.app_id}/{device_id}", now.timestamp())
        candidates = await self.active_releases.get(target.app_id, target.platform, target.channel)
        manifest_id, position = _current(candidates, package_hash, label_text)
        query = _query(target, device_id, native, native_text, manifest_id, position)
        self.device_tracker.note(query, now)
        chosen = choose(query, candidates)
        self.metrics.inc("codepush_check", offered=str(chosen is not None).lower())
        if chosen is None:
            upgrade = _binary_upgrade(candidates, native)
            return CheckAnswer(
                UpdateInfo(
                    is_available=False,
                    update_app_version=upgrade is not None,
                    should_run_binary_version=False,
                    app_version=native_text,
                    target_binary_range=upgrade.binary_range.text if upgrade else native_text,
                )
            )
        # A device on a package there is a diff from downloads the diff instead.
        sha256, size = chosen.archive_sha256, chosen.archive_length
        if package_hash is not None and package_hash in chosen.codepush_diffs:
            sha256, size = chosen.codepush_diffs[package_hash]
        return CheckAnswer(
            UpdateInfo(
                is_available=True,
                download_url=self.blob_store.url(sha256, now),
                package_hash=chosen.codepush_hash,
                package_size=size,
                label=label(chosen.epoch, chosen.sequence),
                description=chosen.version,
                is_mandatory=chosen.mandatory,
                update_app_version=False,
                should_run_binary_version=False,
                # The device keeps this as the package's app version and runs the
                # package only on a binary of exactly this version: send it back as sent.
                app_version=native_text,
                target_binary_range=native_text,
            )
        )

    async def deploy(
        self,
        body: Mapping[str, object],
        address: str,
        db_session: AsyncSession,
        active_releases: ActiveReleases,
        now: datetime,
    ) -> ReportAnswer:
        """Store a deploy report (snake_case fields) as an installation, once."""
        await self.limits.telemetry.enforce(address, now.timestamp())
        native_text = required_device_value(body, "app_version", NATIVE_TEXT)
        device_id = device_value(body, "client_unique_id", DEVICE_ID)
        label_text = device_value(body, "label", _LABEL)
        status = device_value(body, "status")
        for name in ("previous_label_or_app_version", "previous_deployment_key"):
            device_value(body, name, _LABEL)
        if label_text is not None and status not in (_SUCCEEDED, _FAILED):
            raise DeviceInputError(f"status must be {_SUCCEEDED} or {_FAILED}", field="status")
        target = await self.target(body)
        if device_id is None:
            return ReportAnswer(recorded=False)
        await self.limits.report.enforce(f"{target.app_id}/{device_id}", now.timestamp())
        native = _native(native_text)
        position = parse_label(label_text) if label_text is not None else None
        release = None
        if position is not None:
            release = await db_session.scalar(
                select(Release).where(
                    Release.app_id == target.app_id,
                    Release.platform == target.platform,
                    Release.channel == target.channel,
                    Release.epoch == position[0],
                    Release.sequence == position[1],
                )
            )
        succeeded = status == _SUCCEEDED
        running = release.manifest_id if release and succeeded else None
        self.device_tracker.note(_query(target, device_id, native, native_text, running), now)
        if release is None:
            # A binary's first run, or a label this channel does not have.
            self.metrics.inc(
                "codepush_report", status="binary" if label_text is None else "unknown"
            )
            return ReportAnswer(recorded=False)
        duplicate = await record_installation(
            db_session,
            Report(
                id=f"codepush-{'ok' if succeeded else 'failed'}-{label_text}",
                app_id=target.app_id,
                device_id=device_id,
                manifest_id=release.manifest_id,
                status=ReportStatus.APPLIED if succeeded else ReportStatus.ROLLED_BACK,
                phase=None if succeeded else ReportPhase.FIRST_LAUNCH.value,
                reason="" if succeeded else "CodePush DeploymentFailed: rolled back on the device",
            ),
            now,
            active_releases,
            self.metrics,
        )
        return ReportAnswer(recorded=True, duplicate=duplicate)

    async def download(
        self, body: Mapping[str, object], address: str, now: datetime
    ) -> ReportAnswer:
        """Count a download report (HotPatch's statistics count installs, not downloads)."""
        await self.limits.telemetry.enforce(address, now.timestamp())
        device_value(body, "client_unique_id", DEVICE_ID)
        device_value(body, "label", _LABEL)
        await self.target(body)
        self.metrics.inc("codepush_download")
        return ReportAnswer(recorded=True)


class DeployReport(msgspec.Struct):
    """``report_status/deploy``: a binary's first run, or an update's success or rollback."""

    deployment_key: Any = None
    app_version: Any = None
    client_unique_id: Any = None
    label: Any = None
    status: Any = None
    previous_label_or_app_version: Any = None
    previous_deployment_key: Any = None


class DownloadReport(msgspec.Struct):
    """``report_status/download``: an update was downloaded."""

    deployment_key: Any = None
    client_unique_id: Any = None
    label: Any = None


class CodePushController(Controller):
    """The routes ``react-native-code-push`` calls; no credentials besides the deployment key."""

    path = PREFIX
    tags = ["codepush"]  # noqa: RUF012 - Litestar reads it as a class attribute

    @get(
        "/update_check",
        summary="CodePush update check",
        description=(
            "Query: deployment_key, app_version, client_unique_id, and optionally package_hash "
            "and label (react-native-code-push 9, code-push SDK 4). Answers "
            '{"update_info": {...}} in snake_case.'
        ),
    )
    async def update_check(
        self,
        request: Request[Any, Any, Any],
        codepush_service: NamedDependency[SkipValidation[CodePushService]],
    ) -> CheckAnswer:
        """Answer whether a release is available to this CodePush device."""
        return await codepush_service.update_check(request.query_params)

    @post("/report_status/deploy", status_code=200, summary="CodePush deploy report")
    async def report_deploy(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[DeployReport],
        codepush_service: NamedDependency[SkipValidation[CodePushService]],
        db_session: DbSession,
        active_releases: ActiveReleasesDep,
        now: Now,
    ) -> ReportAnswer:
        """Store a labelled report as an installation: succeeded = applied, failed = rolled back."""
        return await codepush_service.deploy(
            msgspec.structs.asdict(data),
            client_address(request),
            db_session,
            active_releases,
            now,
        )

    @post("/report_status/download", status_code=200, summary="CodePush download report")
    async def report_download(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[DownloadReport],
        codepush_service: NamedDependency[SkipValidation[CodePushService]],
        now: Now,
    ) -> ReportAnswer:
        """Count a download (HotPatch's statistics count installs, not downloads)."""
        return await codepush_service.download(
            msgspec.structs.asdict(data), client_address(request), now
        )


# --- the legacy API of code-push SDK 2.x (react-native-code-push 5.6 and older) ----

#: Legacy query names, as the old acquisition SDK sends them, to the current ones.
_LEGACY_QUERY: Final = {
    "deploymentKey": "deployment_key",
    "appVersion": "app_version",
    "packageHash": "package_hash",
    "label": "label",
    "clientUniqueId": "client_unique_id",
}


class LegacyDeployReport(msgspec.Struct, rename="camel"):
    """``reportStatus/deploy`` of the legacy API: the fields of :class:`DeployReport`, camelCase.

    (msgspec renames only the fields a class declares itself: they are declared again.)
    """

    deployment_key: Any = None
    app_version: Any = None
    client_unique_id: Any = None
    label: Any = None
    status: Any = None
    previous_label_or_app_version: Any = None
    previous_deployment_key: Any = None


class LegacyDownloadReport(msgspec.Struct, rename="camel"):
    """``reportStatus/download`` of the legacy API."""

    deployment_key: Any = None
    client_unique_id: Any = None
    label: Any = None


class LegacyCodePushController(Controller):
    """The camelCase routes of code-push SDK 2.x and older, over the same service."""

    path = "/"
    tags = ["codepush"]  # noqa: RUF012 - Litestar reads it as a class attribute

    @get(
        "/updateCheck",
        summary="CodePush update check (legacy API)",
        description=(
            "Query: deploymentKey, appVersion, clientUniqueId, and optionally packageHash, "
            'label and isCompanion (code-push SDK 2.x). Answers {"updateInfo": {...}} in '
            "camelCase."
        ),
    )
    async def update_check(
        self,
        request: Request[Any, Any, Any],
        codepush_service: NamedDependency[SkipValidation[CodePushService]],
    ) -> LegacyCheckAnswer:
        """Answer whether a release is available, in the legacy spelling."""
        query = request.query_params
        params = {new: query[old] for old, new in _LEGACY_QUERY.items() if old in query}
        answer = await codepush_service.update_check(params)
        return LegacyCheckAnswer(legacy(answer.update_info))

    @post("/reportStatus/deploy", status_code=200, summary="CodePush deploy report (legacy API)")
    async def report_deploy(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[LegacyDeployReport],
        codepush_service: NamedDependency[SkipValidation[CodePushService]],
        db_session: DbSession,
        active_releases: ActiveReleasesDep,
        now: Now,
    ) -> ReportAnswer:
        """Store a labelled report as an installation, as the current route does."""
        return await codepush_service.deploy(
            msgspec.structs.asdict(data),
            client_address(request),
            db_session,
            active_releases,
            now,
        )

    @post(
        "/reportStatus/download", status_code=200, summary="CodePush download report (legacy API)"
    )
    async def report_download(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[LegacyDownloadReport],
        codepush_service: NamedDependency[SkipValidation[CodePushService]],
        now: Now,
    ) -> ReportAnswer:
        """Count a download, as the current route does."""
        return await codepush_service.download(
            msgspec.structs.asdict(data), client_address(request), now
        )
