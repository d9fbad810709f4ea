"""Apps, trust roots and API keys over HTTP (admin role), plus token exchange."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Any

import msgspec
from litestar import Controller, Request, Response, delete, get, post, put
from litestar.background_tasks import BackgroundTask, BackgroundTasks
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, SkipValidation
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from hotpatch_core.errors import HotPatchError
from hotpatch_core.keys import SigningKey
from hotpatch_core.manifest import Platform
from hotpatch_core.publishing import (
    ApiKeyView,
    AppView,
    CreatedApiKey,
    EmbeddedView,
    PublisherView,
    Tokens,
)
from hotpatch_core.trust import TrustRoot, load_trust_root, rotate_trust_root
from hotpatch_server import fields
from hotpatch_server.audit import record_key_change, record_raw
from hotpatch_server.auth import (
    Action,
    Role,
    create_api_key,
    exchange_api_key,
    refresh_tokens,
)
from hotpatch_server.deps import (
    ActiveReleasesDep,
    BlobStoreDep,
    DbSession,
    Now,
    PrincipalDep,
    SessionMaker,
    SettingsDep,
)
from hotpatch_server.models import ApiKey, App, TrustRootVersion, utc
from hotpatch_server.patches import generate_patches, newest_fitting, register_embedded_bundle
from hotpatch_server.problems import Problem, problem_for
from hotpatch_server.ratelimit import Limits, client_address
from hotpatch_server.roots import TrustRootCache
from hotpatch_server.wire_schema import wire_response

__all__ = [
    "AppController",
    "AuthController",
    "KeyController",
    "add_app",
    "app_view",
    "install_trust_root",
    "rotate_root",
]


def _b64(text: str, field: str) -> bytes:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise Problem(422, "invalid", f"{field} must be base64", field=field) from None


def app_view(app: App) -> AppView:
    """Return the API's view of an app and its trust root."""
    root = load_trust_root(app.trust_root)
    return AppView(
        id=app.id,
        name=app.name,
        trust_root_version=app.trust_root_version,
        epoch=root.epoch,
        publishers=tuple(
            PublisherView(key_id=p.key_id, name=p.name, scope=p.scope, expires_at=p.expires_at)
            for p in root.publishers
        ),
        trust_root=app.trust_root,
        created_at=utc(app.created_at),
    )


def install_trust_root(app: App | None, envelope: bytes, heads: SigningKey | None) -> TrustRoot:
    """Check a trust root for a new app (self-signed) or as the next rotation of ``app``'s.

    A root that names timestamp keys must name the one this server signs
    channel heads with (``heads``), at a threshold of one: otherwise every
    device that takes it would refuse every answer.
    """
    try:
        root = (
            load_trust_root(envelope)
            if app is None
            else rotate_trust_root(load_trust_root(app.trust_root), envelope)
        )
    except HotPatchError as exc:
        raise problem_for(exc, field="trustRoot") from None
    role = root.timestamp
    if role is None or (
        heads is not None and heads.key_id in role.keyring() and role.threshold == 1
    ):
        return root
    named = ", ".join(k.key_id[:16] for k in role.keys)
    if heads is None:
        server = "has no timestamp key (set HOTPATCH_TIMESTAMP_KEY_FILE)"
    elif heads.key_id not in role.keyring():
        server = f"signs channel heads with key {heads.key_id[:16]}"
    else:
        server = f"signs channel heads with one key, not {role.threshold}"
    raise Problem(
        422,
        "invalid",
        f"the trust root names timestamp key(s) {named}, but this server {server}: devices "
        "that take this root would refuse every answer",
        field="trustRoot",
    )


async def add_app(
    session: AsyncSession,
    app_id: str,
    name: str,
    envelope: bytes,
    actor: str,
    now: datetime,
    heads: SigningKey | None,
) -> App:
    """Create an app trusting ``envelope`` (a self-signed trust root); audited.

    ``heads`` is the key this server signs channel heads with (see :func:`install_trust_root`).
    """
    fields.app_id(app_id, "id")
    fields.display_name(name, "name")
    if await session.get(App, app_id) is not None:
        raise Problem(
            409,
            "app-exists",
            f"app {app_id!r} already exists; rotate its trust root instead",
            field="id",
        )
    root = install_trust_root(None, envelope, heads)
    app = App(
        id=app_id,
        name=name or app_id,
        trust_root=envelope,
        trust_root_version=root.version,
        created_at=now,
    )
    session.add(app)
    session.add(
        TrustRootVersion(app_id=app_id, version=root.version, envelope=envelope, created_at=now)
    )
    record_raw(session, actor, "create-app", app.id, app.id, now, {"rootVersion": root.version})
    return app


async def rotate_root(
    session: AsyncSession,
    app_id: str,
    envelope: bytes,
    actor: str,
    now: datetime,
    heads: SigningKey | None,
) -> App:
    """Move ``app_id`` to trust root N+1 (signed by N's and its own root keys); audited.

    Every version is kept (``trust_roots``): devices walk from the root their
    binary embeds to this one, a version at a time. Of two concurrent
    rotations to the same version, one wins and the other gets a 409.
    """
    app = await session.get(App, app_id)
    if app is None:
        raise Problem(404, "not-found", f"no app {app_id!r}")
    root = install_trust_root(app, envelope, heads)
    before = app.trust_root_version
    app.trust_root = envelope
    app.trust_root_version = root.version
    session.add(
        TrustRootVersion(app_id=app_id, version=root.version, envelope=envelope, created_at=now)
    )
    try:
        await session.flush()
    except IntegrityError:
        await session.rollback()
        raise Problem(
            409, "root-conflict", f"trust root v{root.version} of {app_id!r} was installed already"
        ) from None
    record_raw(
        session,
        actor,
        "rotate-trust-root",
        app_id,
        app_id,
        now,
        {"from": before, "to": root.version, "epoch": root.epoch},
    )
    return app


class NewApp(msgspec.Struct, rename="camel"):
    """An app to create, with its trust root envelope (base64)."""

    id: str
    trust_root: str
    name: str = ""


class NewTrustRoot(msgspec.Struct, rename="camel"):
    """The next version of an app's trust root (base64 envelope)."""

    trust_root: str


class AppController(Controller):
    """``/apps``: apps and their trust roots. Private keys never come here (S7)."""

    path = "/apps"
    tags = ["apps"]  # noqa: RUF012 - Litestar reads it as a class attribute

    @post("/", status_code=201, summary="Create an app")
    async def create(
        self,
        data: JSONBody[NewApp],
        principal: PrincipalDep,
        db_session: DbSession,
        settings: SettingsDep,
        now: Now,
    ) -> Response[AppView]:
        """Create an app with its trust root (admin of that app id)."""
        principal.require(Action.ADMIN, data.id)
        envelope = _b64(data.trust_root, "trustRoot")
        app = await add_app(
            db_session, data.id, data.name, envelope, principal.label, now, settings.timestamp_key
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
            raise Problem(404, "not-found", f"no app {app_id!r}")
        return wire_response(app_view(app))

    @post("/{app_id:str}/embedded", status_code=201, summary="Register a binary's embedded bundle")
    async def register_embedded(
        self,
        app_id: FromPath[str],
        data: JSONBody[NewEmbedded],
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
            raise Problem(404, "not-found", f"no app {app_id!r}; create it first")
        bundle = await register_embedded_bundle(
            db_session,
            blob_store,
            app_id,
            data,
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
        data: JSONBody[NewTrustRoot],
        principal: PrincipalDep,
        db_session: DbSession,
        trust_roots: NamedDependency[SkipValidation[TrustRootCache]],
        settings: SettingsDep,
        now: Now,
    ) -> Response[AppView]:
        """Install trust root N+1, signed by a threshold of N's and of its own root keys."""
        principal.require(Action.ADMIN, app_id)
        envelope = _b64(data.trust_root, "trustRoot")
        app = await rotate_root(
            db_session, app_id, envelope, principal.label, now, settings.timestamp_key
        )
        await db_session.commit()
        trust_roots.forget(app_id)  # devices of this process's clients see it at once
        return wire_response(app_view(app))


class EmbeddedFile(msgspec.Struct, rename="camel"):
    """One file of an embedded bundle."""

    path: str
    sha256: str
    size: int


class NewEmbedded(msgspec.Struct, rename="camel", forbid_unknown_fields=True):
    """The bundle shipped in one native version, as a deterministic archive and its file list."""

    platform: str
    native_version: str
    archive: str
    files: list[EmbeddedFile]


class NewKey(msgspec.Struct, rename="camel"):
    """An API key to create."""

    name: str
    role: str
    apps: list[str]
    expires_at: datetime | None = None


def _fields_of(row: ApiKey) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "role": row.role,
        "apps": tuple(row.apps),
        "created_at": utc(row.created_at),
        "expires_at": None if row.expires_at is None else utc(row.expires_at),
        "revoked_at": None if row.revoked_at is None else utc(row.revoked_at),
        "last_used_at": None if row.last_used_at is None else utc(row.last_used_at),
    }


def key_view(row: ApiKey) -> ApiKeyView:
    """Return the API's view of a key: never its plaintext or hash."""
    return ApiKeyView(**_fields_of(row))


class KeyController(Controller):
    """``/keys``: API keys (admin)."""

    path = "/keys"
    tags = ["keys"]  # noqa: RUF012 - Litestar reads it as a class attribute

    @post("/", status_code=201, summary="Create an API key")
    async def create(
        self, data: JSONBody[NewKey], principal: PrincipalDep, db_session: DbSession, now: Now
    ) -> Response[CreatedApiKey]:
        """Create a key; the plaintext is in this response only."""
        try:
            role = Role(data.role)
        except ValueError:
            raise Problem(
                422, "invalid", "role is admin, publisher or viewer", field="role"
            ) from None
        fields.display_name(data.name, "name")
        fields.app_scope(data.apps, "apps")
        for app_id in data.apps:
            principal.require(Action.ADMIN, app_id)
        row, plaintext = await create_api_key(
            db_session,
            name=data.name,
            role=role,
            apps=data.apps,
            now=now,
            expires_at=data.expires_at,
        )
        record_key_change(db_session, principal.label, "create-key", row, now)
        await db_session.commit()
        return wire_response(CreatedApiKey(**_fields_of(row), key=plaintext), status_code=201)

    @get("/", summary="List API keys")
    async def list_keys(
        self, principal: PrincipalDep, db_session: DbSession
    ) -> Response[list[ApiKeyView]]:
        """Keys whose apps the caller administers."""
        rows = (
            await db_session.execute(select(ApiKey).order_by(ApiKey.created_at, ApiKey.id))
        ).scalars()
        return wire_response(
            [key_view(r) for r in rows if all(principal.can(Action.ADMIN, a) for a in r.apps)]
        )

    @delete("/{key_id:str}", status_code=200, summary="Revoke an API key")
    async def revoke(
        self, key_id: FromPath[str], principal: PrincipalDep, db_session: DbSession, now: Now
    ) -> Response[ApiKeyView]:
        """Revoke a key; it stops working at once, also for tokens issued from it."""
        row = await db_session.get(ApiKey, key_id)
        if row is None:
            raise Problem(404, "not-found", f"no key {key_id!r}")
        for app_id in row.apps:
            principal.require(Action.ADMIN, app_id)
        row.revoked_at = row.revoked_at or now
        record_key_change(db_session, principal.label, "revoke-key", row, now)
        await db_session.commit()
        return wire_response(key_view(row))


class TokenRequest(msgspec.Struct, rename="camel"):
    """An API key to exchange for tokens."""

    api_key: str


class RefreshRequest(msgspec.Struct, rename="camel"):
    """A refresh token to use once."""

    refresh_token: str


class AuthController(Controller):
    """``/auth``: API key -> short-lived access token + single-use refresh token."""

    path = "/auth"
    tags = ["auth"]  # noqa: RUF012 - Litestar reads it as a class attribute

    @post("/token", status_code=200, summary="Exchange an API key for tokens")
    async def token(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[TokenRequest],
        db_session: DbSession,
        settings: SettingsDep,
        now: Now,
        limits: NamedDependency[SkipValidation[Limits]],
    ) -> Response[Tokens]:
        """Return an access token (JWT) and a refresh token."""
        await limits.auth.enforce(client_address(request), now.timestamp())
        tokens = await exchange_api_key(
            db_session,
            data.api_key,
            secret=settings.jwt_secret,
            now=now,
            access=settings.access_token_seconds,
            refresh=settings.refresh_token_seconds,
        )
        await db_session.commit()
        return wire_response(tokens)

    @post("/refresh", status_code=200, summary="Rotate a refresh token")
    async def refresh(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[RefreshRequest],
        db_session: DbSession,
        settings: SettingsDep,
        now: Now,
        limits: NamedDependency[SkipValidation[Limits]],
    ) -> Response[Tokens]:
        """Use a refresh token once; return a new access and refresh token."""
        await limits.auth.enforce(client_address(request), now.timestamp())
        tokens = await refresh_tokens(
            db_session,
            data.refresh_token,
            secret=settings.jwt_secret,
            now=now,
            access=settings.access_token_seconds,
            refresh=settings.refresh_token_seconds,
        )
        await db_session.commit()
        return wire_response(tokens)
