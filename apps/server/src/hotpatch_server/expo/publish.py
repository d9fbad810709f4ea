"""The publisher routes of Expo Updates: attach a release's manifest, roll back to embedded.

- ``POST /releases/{id}/expo/preview``: the bytes the server would serve,
  for the CLI to check and sign; nothing is stored.
- ``PUT /releases/{id}/expo``: attach them (once; the same request again is
  idempotent). A signature is checked against the certificate sent with
  it, as a device checks it, before anything is kept; the release's assets
  are stored as blobs of their own for the stable asset URLs.
- ``GET /releases/{id}/expo``: what is attached.
- ``PUT /apps/{appId}/expo/roll-back-to-embedded``: a ``rollBackToEmbedded``
  directive for one channel and runtime version, made (and signed) by the
  CLI at the commit time it names; updates committed before it are no
  longer served.

The work is :class:`~hotpatch_server.expo.service.ExpoPublisher`'s.
"""

from __future__ import annotations

from typing import Annotated, TypeAlias

from litestar import Controller, Response, get, post, put
from litestar.di import NamedDependency, Provide
from litestar.params import Body, FromPath, PathParameter, SkipValidation

from hotpatch_core.publishing import (
    ExpoAttachment,
    ExpoDirectiveView,
    ExpoRollBack,
    ExpoUpdateView,
)
from hotpatch_server.deps import (
    ActiveReleasesDep,
    BlobStoreDep,
    DbSession,
    Now,
    PrincipalDep,
    SettingsDep,
)
from hotpatch_server.expo.service import ExpoPublisher
from hotpatch_server.wire_schema import JsonObject, WireBody, read_body, wire_response

__all__ = ["ExpoDirectiveController", "ExpoReleaseController"]

ReleaseId = Annotated[int, PathParameter(ge=1, le=2**63 - 1)]


def _expo_publisher(
    db_session: DbSession,
    blob_store: BlobStoreDep,
    active_releases: ActiveReleasesDep,
    principal: PrincipalDep,
    settings: SettingsDep,
    now: Now,
) -> ExpoPublisher:
    return ExpoPublisher(db_session, blob_store, active_releases, principal, settings, now)


ExpoPublisherDep: TypeAlias = NamedDependency[SkipValidation[ExpoPublisher]]
# One service per request, over the request's session, principal and time.
_SERVICE = {"expo": Provide(_expo_publisher, sync_to_thread=False)}


class ExpoReleaseController(Controller):
    """Publisher routes for a release's Expo Updates manifest."""

    path = "/releases"
    tags = ["expo"]  # noqa: RUF012 - Litestar reads it as a class attribute
    dependencies = _SERVICE

    @post("/{release_id:int}/expo/preview", status_code=200, summary="Expo manifest bytes to sign")
    async def preview(
        self,
        release_id: ReleaseId,
        data: Annotated[JsonObject, Body(), WireBody(ExpoAttachment)],
        expo: ExpoPublisherDep,
    ) -> Response[bytes]:
        """Return the exact manifest bytes an attach with these fields would serve."""
        sent = read_body(data, ExpoAttachment, known_fields_only=True)
        body = await expo.preview(release_id, sent)
        return Response(body, media_type="application/json")

    @put("/{release_id:int}/expo", status_code=200, summary="Serve this release to expo-updates")
    async def attach(
        self,
        release_id: ReleaseId,
        data: Annotated[JsonObject, Body(), WireBody(ExpoAttachment)],
        expo: ExpoPublisherDep,
    ) -> Response[ExpoUpdateView]:
        """Attach the release's Expo manifest (with its signature, checked first)."""
        sent = read_body(data, ExpoAttachment, known_fields_only=True)
        return wire_response(await expo.attach(release_id, sent))

    @get("/{release_id:int}/expo", summary="The release's Expo manifest")
    async def show(self, release_id: ReleaseId, expo: ExpoPublisherDep) -> Response[ExpoUpdateView]:
        """Return the attached Expo manifest; 404 if the release has none."""
        return wire_response(await expo.show(release_id))


class ExpoDirectiveController(Controller):
    """Publisher routes for an app's Expo directives."""

    path = "/apps/{app_id:str}/expo"
    tags = ["expo"]  # noqa: RUF012 - Litestar reads it as a class attribute
    dependencies = _SERVICE

    @put(
        "/roll-back-to-embedded",
        status_code=200,
        summary="Roll an Expo channel back to the embedded bundle",
    )
    async def roll_back_to_embedded(
        self,
        app_id: FromPath[str],
        data: Annotated[JsonObject, Body(), WireBody(ExpoRollBack)],
        expo: ExpoPublisherDep,
    ) -> Response[ExpoDirectiveView]:
        """Store the directive (its signature checked first); older updates stop being served."""
        sent = read_body(data, ExpoRollBack, known_fields_only=True)
        return wire_response(await expo.roll_back(app_id, sent))
