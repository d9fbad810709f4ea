"""The routes devices call: the update check, registration, installation reports.

No credentials: nothing a device sends is trusted, and nothing leaks
across apps.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.openapi import ResponseSpec
from litestar.params import Body, JSONBody, SkipValidation

from hotpatch_core.protocol import (
    CheckAnswer,
    CheckRequest,
    DeviceRegistered,
    InstallationReport,
    ReportReceipt,
)
from hotpatch_server.deps import ActiveReleasesDep, DbSession, Now
from hotpatch_server.devices.check import CheckService
from hotpatch_server.devices.query import parse_check
from hotpatch_server.devices.reports import Report, record_installation
from hotpatch_server.devices.tracker import DeviceTracker
from hotpatch_server.metrics import Metrics
from hotpatch_server.ratelimit import Limits, client_address
from hotpatch_server.wire_schema import JsonObject, WireBody, read_body, wire_response

__all__ = ["DeviceController", "DeviceRegistration"]


class DeviceRegistration(msgspec.Struct, rename="camel"):
    """A device announcing itself (``POST /devices``)."""

    app_id: str
    device_id: str
    platform: str
    native_version: str
    channel: str = "production"
    current_manifest_id: str | None = None


class DeviceController(Controller):
    """Endpoints devices call: no credentials, nothing leaks across apps."""

    tags = ["devices"]  # noqa: RUF012 - Litestar reads it as a class attribute

    @get(
        "/update/check",
        summary="Check for an update (query parameters)",
        description=(
            "Query parameters: appId, platform (android | ios), deviceId, nativeVersion "
            "(also appVersion / binaryVersion), channel (default production), and optionally "
            "currentManifestId or currentEpoch + currentSequence. They are parsed by the "
            "handler itself rather than declared, which keeps this hot path free of a second "
            "validation pass (see docs/benchmarks.md)."
        ),
    )
    async def check_get(
        self,
        request: Request[Any, Any, Any],
        check_service: NamedDependency[SkipValidation[CheckService]],
    ) -> Response[CheckAnswer]:
        """Answer whether a newer signed release is available to this device."""
        return wire_response(await check_service.check(dict(request.query_params)))

    @post("/update/check", status_code=200, summary="Check for an update (JSON body)")
    async def check_post(
        self,
        data: Annotated[JsonObject, Body(), WireBody(CheckRequest)],
        check_service: NamedDependency[SkipValidation[CheckService]],
    ) -> Response[CheckAnswer]:
        """Answer the same check from a JSON body (``appId``, ``platform``, ``deviceId``, ...)."""
        return wire_response(await check_service.check(data))

    @post("/devices", status_code=201, summary="Register a device")
    async def register(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[DeviceRegistration],
        device_tracker: NamedDependency[SkipValidation[DeviceTracker]],
        limits: NamedDependency[SkipValidation[Limits]],
        now: Now,
    ) -> Response[DeviceRegistered]:
        """Record a device (buffered like the check's tracking)."""
        await limits.telemetry.enforce(client_address(request), now.timestamp())
        query = parse_check(
            {
                "appId": data.app_id,
                "deviceId": data.device_id,
                "platform": data.platform,
                "channel": data.channel,
                "nativeVersion": data.native_version,
                "currentManifestId": data.current_manifest_id,
            }
        )
        device_tracker.note(query, now)
        registered = DeviceRegistered(app_id=query.app_id, device_id=query.device_id)
        return wire_response(registered, status_code=201)

    @post(
        "/installations",
        summary="Report an installation result",
        responses={
            200: ResponseSpec(ReportReceipt, description="The report was stored before: unchanged")
        },
    )
    async def report(
        self,
        request: Request[Any, Any, Any],
        data: Annotated[JsonObject, Body(), WireBody(InstallationReport)],
        db_session: DbSession,
        now: Now,
        app_metrics: NamedDependency[SkipValidation[Metrics]],
        limits: NamedDependency[SkipValidation[Limits]],
        active_releases: ActiveReleasesDep,
    ) -> Response[ReportReceipt]:
        """Record applied / failed / rolled_back; repeating a report id changes nothing."""
        await limits.telemetry.enforce(client_address(request), now.timestamp())
        sent = read_body(data, InstallationReport)
        await limits.report.enforce(f"{sent.app_id}/{sent.device_id}", now.timestamp())
        duplicate = await record_installation(
            db_session,
            Report(
                id=sent.id,
                app_id=sent.app_id,
                device_id=sent.device_id,
                manifest_id=sent.manifest_id,
                status=sent.status,
                phase=None if sent.phase is None else sent.phase.value,
                reason=sent.reason,
                patched_from=sent.patched_from,
            ),
            now,
            active_releases,
            app_metrics,
        )
        receipt = ReportReceipt(id=sent.id, duplicate=duplicate)
        return wire_response(receipt, status_code=200 if duplicate else 201)
