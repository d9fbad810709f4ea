"""The ``/apps`` routes: apps, trust-root rotation, embedded bundles (admin and publisher)."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, Response, get, post, put
from litestar.background_tasks import BackgroundTask, BackgroundTasks
from litestar.di import NamedDependency
from litestar.params import Body, FromPath, SkipValidation
from sqlalchemy import select

from hotpatch_core.manifest import Platform
from hotpatch_core.publishing import (
    AppView,
    EmbeddedRegistration,
    EmbeddedView,
    NewApp,
    NewTrustRoot,
)
from hotpatch_server import fields
from hotpatch_server.apps.service import add_app, app_view, rotate_root
from hotpatch_server.audit import record_raw
from hotpatch_server.auth import Action
from hotpatch_server.deps import (
    ActiveReleasesDep,
    BlobStoreDep,
    DbSession,
    Now,
    PrincipalDep,
    SessionMaker,
    SettingsDep,
)
from hotpatch_server.errors import NotFoundError
from hotpatch_server.models import App
from hotpatch_server.patches.embedded import newest_fitting, register_embedded_bundle
from hotpatch_server.patches.service import generate_patches
from hotpatch_server.roots import TrustRootCache
from hotpatch_server.wire_schema import JsonObject, WireBody, read_body, wire_response

__all__ = ["AppController"]


class AppController(Controller):
    """``/apps``: apps and their trust roots. Private keys never come here (S7)."""

    path = "/apps"
    tags = ["apps"]  # noqa: RUF012 - Litestar reads it as a class attribute

    @post("/", status_code=201, summary="Create an app")
    async def create(
        self,
        data: Annotated[JsonObject, Body(), WireBody(NewApp)],
        principal: PrincipalDep,
        db_session: DbSession,
        settings: SettingsDep,
        now: Now,
    ) -> Response[AppView]:
        """Create an app with its trust root (admin of that app id)."""
        sent = read_body(data, NewApp)
        principal.require(Action.ADMIN, sent.id)
        envelope = fields.base64_bytes(sent.trust_root, "trustRoot")
        app = await add_app(
            db_session, sent.id, sent.name, envelope, principal.label, now, settings.timestamp_key
        )
        await db_session.commit()
        return wire_response(app_view(app), status_code=201)

    @get("/", summary="List apps")
    async def list_apps(
        self, principal: PrincipalDep, db_session: DbSession
    ) -> Response[list[AppView]]:
        """Apps the caller may read."""
        query = select(App).order_by(App.id)
        if "*" not in principal.apps:
            query = query.where(App.id.in_(principal.apps))
        return wire_response([app_view(a) for a in (await db_session.execute(query)).scalars()])

    @get("/{app_id:str}", summary="Show an app")
    async def show(
        self, app_id: FromPath[str], principal: PrincipalDep, db_session: DbSession
    ) -> Response[AppView]:
        """One app and its trust root."""
        principal.require(Action.READ, app_id)
        app = await db_session.get(App, app_id)
        if app is None:
            raise NotFoundError(f"no app {app_id!r}")
        return wire_response(app_view(app))

    @post("/{app_id:str}/embedded", status_code=201, summary="Register a binary's embedded bundle")
    async def register_embedded(
        self,
        app_id: FromPath[str],
        data: Annotated[JsonObject, Body(), WireBody(EmbeddedRegistration)],
        principal: PrincipalDep,
        db_session: DbSession,
        blob_store: BlobStoreDep,
        settings: SettingsDep,
        active_releases: ActiveReleasesDep,
        sessionmaker: SessionMaker,
        now: Now,
    ) -> Response[EmbeddedView]:
        """Make the bundle inside native version ``nativeVersion`` a patch base for first updates.

        The archive must hold exactly the listed files (the strict extractor
        checks every hash). Patches from it to the newest release of each
        channel it fits are then made in the background.
        """
        principal.require(Action.PUBLISH, app_id)
        if await db_session.get(App, app_id) is None:
            raise NotFoundError(f"no app {app_id!r}; create it first")
        bundle = await register_embedded_bundle(
            db_session,
            blob_store,
            app_id,
            read_body(data, EmbeddedRegistration, known_fields_only=True),
            settings.data_dir / "tmp",
            now,
            settings.max_expanded_bytes,
        )
        record_raw(
            db_session,
            principal.label,
            "embedded",
            app_id,
            f"{bundle.platform}/{bundle.native_version}",
            now,
            {"baseId": bundle.base_id},
        )
        await db_session.commit()
        targets = await newest_fitting(db_session, bundle)
        work = [
            BackgroundTask(
                generate_patches,
                sessionmaker,
                blob_store,
                active_releases,
                target,
                settings.data_dir / "tmp",
                lambda: now,
                settings.max_expanded_bytes,
            )
            for target in targets
        ]
        response = wire_response(
            EmbeddedView(
                base_id=bundle.base_id,
                platform=Platform(bundle.platform),
                native_version=bundle.native_version,
                files=len(bundle.files),
            ),
            status_code=201,
        )
        response.background = BackgroundTasks(work) if work else None
        return response

    @put("/{app_id:str}/trust-root", summary="Rotate an app's trust root")
    async def rotate(
        self,
        app_id: FromPath[str],
        data: Annotated[JsonObject, Body(), WireBody(NewTrustRoot)],
        principal: PrincipalDep,
        db_session: DbSession,
        trust_roots: NamedDependency[SkipValidation[TrustRootCache]],
        settings: SettingsDep,
        now: Now,
    ) -> Response[AppView]:
        """Install trust root N+1, signed by a threshold of N's and of its own root keys."""
        sent = read_body(data, NewTrustRoot)
        principal.require(Action.ADMIN, app_id)
        envelope = fields.base64_bytes(sent.trust_root, "trustRoot")
        app = await rotate_root(
            db_session, app_id, envelope, principal.label, now, settings.timestamp_key
        )
        await db_session.commit()
        trust_roots.forget(app_id)  # devices of this process's clients see it at once
        return wire_response(app_view(app))
