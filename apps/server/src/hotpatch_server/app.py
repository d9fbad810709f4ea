"""The application factory: ``create_app(settings)``.

Settings are passed in, never read at import time. The app owns its engine,
blob store, active-release cache and device tracker through its lifespan;
request handlers get them as dependencies.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

from litestar import Litestar, Request, Response
from litestar.di import Provide
from litestar.exceptions import HTTPException
from litestar.openapi import OpenAPIConfig
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from hotpatch_core.errors import HotPatchError
from hotpatch_server.apps.controller import AppController
from hotpatch_server.audit import list_audit
from hotpatch_server.auth import Principal, authenticate
from hotpatch_server.cache import INVALIDATIONS, ActiveReleases, listen_for_invalidations
from hotpatch_server.codepush import (
    CodePushController,
    DeploymentKeyController,
    DeploymentKeys,
    LegacyCodePushController,
)
from hotpatch_server.codepush.protocol import CodePushService
from hotpatch_server.credentials.api_keys import KeyController
from hotpatch_server.credentials.tokens import AuthController
from hotpatch_server.db_outage import database_health, is_unavailable, unavailable_problem
from hotpatch_server.deps import Now
from hotpatch_server.devices.check import CheckService
from hotpatch_server.devices.controller import DeviceController
from hotpatch_server.devices.tracker import DeviceTracker
from hotpatch_server.downloads import download_blob
from hotpatch_server.expo import (
    ExpoController,
    ExpoDirectiveController,
    ExpoReleaseController,
    ExpoService,
    manifest_route,
)
from hotpatch_server.heads import ChannelHeads
from hotpatch_server.metrics import Metrics
from hotpatch_server.migrate import upgrade
from hotpatch_server.ops import CacheState, health, metrics, public_metrics
from hotpatch_server.problems import (
    Problem,
    http_exception_handler,
    problem_handler,
    unexpected_error_handler,
)
from hotpatch_server.ratelimit import build_limits
from hotpatch_server.redis_health import RedisHealth
from hotpatch_server.releases.controller import ReleaseController
from hotpatch_server.roots import RootController, TrustRootCache
from hotpatch_server.settings import Settings, private_dir
from hotpatch_server.storage.blobs import BlobStore, LocalBlobStore, UrlSigner
from hotpatch_server.storage.s3 import S3BlobStore
from hotpatch_server.wire_schema import WireSchemaPlugin

__all__ = ["app_from_env", "blob_store_for", "create_app"]

Clock = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(UTC)


def blob_store_for(settings: Settings) -> BlobStore:
    """Return the blob store ``settings`` name: S3 / R2, or local disk in the data directory."""
    if settings.s3_bucket:
        return S3BlobStore(
            settings.s3_bucket,
            endpoint=settings.s3_endpoint,
            access_key=settings.aws_access_key_id,
            secret_key=settings.aws_secret_access_key,
            url_lifetime=settings.download_url_seconds,
            timeout=settings.s3_timeout,
        )
    signer = UrlSigner(settings.jwt_secret, settings.download_url_seconds)
    return LocalBlobStore(settings.blob_dir, signer, settings.public_url)


def create_app(  # noqa: PLR0915 - one wiring of every service, in order
    settings: Settings,
    *,
    clock: Clock = _utcnow,
    migrate: bool | None = None,
    blob_store: BlobStore | None = None,
) -> Litestar:
    """Build the HotPatch server for ``settings``.

    ``migrate`` runs the schema migrations at startup (default: only for the
    embedded SQLite setup; run ``hotpatch-server migrate`` for PostgreSQL).
    ``clock`` is injectable so tests can move time.
    """
    engine = create_async_engine(settings.database_url, pool_pre_ping=True)
    sessionmaker = async_sessionmaker(engine, expire_on_commit=False)
    store = blob_store or blob_store_for(settings)
    db_health = database_health()
    active = ActiveReleases(sessionmaker, settings.active_cache_seconds)
    active.db_health = db_health
    trust_roots = TrustRootCache(sessionmaker, settings.active_cache_seconds)
    redis = (
        Redis.from_url(
            settings.redis_url,
            socket_connect_timeout=1.0,
            socket_timeout=2.0,
            # A pooled connection from before a Redis restart fails once: reconnect at once.
            retry=Retry(NoBackoff(), retries=1),
            retry_on_error=[RedisConnectionError],
        )
        if settings.redis_url
        else None
    )
    redis_health = RedisHealth()
    limits = build_limits(
        redis, scale=settings.rate_limit_scale, prefix=settings.redis_prefix, health=redis_health
    )
    channel = f"{settings.redis_prefix}:{INVALIDATIONS}"
    if redis is not None:
        shared = redis

        async def announce(key: tuple[str, str, str]) -> None:
            if not redis_health.usable():
                return  # other processes see it when their entry expires
            try:
                await shared.publish(channel, "/".join(key))
            except (RedisError, OSError) as exc:
                redis_health.failed(exc, "announcing a cache invalidation")
            else:
                redis_health.succeeded()

        active.publish_invalidation = announce
    tracker = DeviceTracker(sessionmaker, db_health)

    def server_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
        if is_unavailable(exc):
            db_health.failed(exc, f"serving {request.method} {request.url.path}")
            return problem_handler(request, unavailable_problem())
        return unexpected_error_handler(request, exc)

    app_metrics = Metrics()
    run_migrations = settings.embedded if migrate is None else migrate
    heads = (
        ChannelHeads(settings.timestamp_key, settings.head_lifetime)
        if settings.timestamp_key is not None
        else None
    )
    check_service = CheckService(active, tracker, store, app_metrics, limits, clock, heads)
    deployment_keys = DeploymentKeys(sessionmaker, settings.active_cache_seconds)
    codepush_service = CodePushService(
        deployment_keys, active, tracker, store, app_metrics, limits, clock
    )
    expo_service = ExpoService(active, tracker, sessionmaker, app_metrics, limits, clock)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Litestar) -> AsyncIterator[None]:
        private_dir(settings.data_dir)
        if run_migrations:
            await asyncio.to_thread(upgrade, settings.database_url)
        stop = asyncio.Event()
        tasks = [asyncio.create_task(tracker.run(settings.device_flush_seconds, stop))]
        if redis is not None:
            tasks.append(
                asyncio.create_task(
                    listen_for_invalidations(redis, channel, active, stop, redis_health)
                )
            )
        try:
            yield
        finally:
            stop.set()
            await asyncio.gather(*tasks)
            if redis is not None:
                await redis.aclose()
            await engine.dispose()

    async def provide_session() -> AsyncGenerator[AsyncSession, None]:
        async with sessionmaker() as session:
            try:
                yield session
                await session.commit()
            except Exception:
                await session.rollback()
                raise

    async def provide_principal(request: Request[Any, Any, Any], now: Now) -> Principal:
        # Its own short session: a failed authentication must not depend on
        # the request session's cleanup, and last-used is committed at once.
        async with sessionmaker() as session:
            principal = await authenticate(
                session, request.headers.get("authorization"), secret=settings.jwt_secret, now=now
            )
            await session.commit()
            return principal

    def provide_now() -> datetime:
        return clock()

    return Litestar(
        route_handlers=[
            AuthController,
            AppController,
            KeyController,
            ReleaseController,
            DeviceController,
            RootController,
            DeploymentKeyController,
            CodePushController,
            LegacyCodePushController,
            ExpoReleaseController,
            ExpoDirectiveController,
            ExpoController,
            manifest_route(expo_service),
            download_blob,
            list_audit,
            health,
            public_metrics if settings.metrics_public else metrics,
        ],
        dependencies={
            "db_session": Provide(provide_session),
            "principal": Provide(provide_principal),
            "now": Provide(provide_now, sync_to_thread=False),
            "settings": Provide(lambda: settings, sync_to_thread=False),
            "sessionmaker": Provide(lambda: sessionmaker, sync_to_thread=False),
            "blob_store": Provide(lambda: store, sync_to_thread=False),
            "active_releases": Provide(lambda: active, sync_to_thread=False),
            "device_tracker": Provide(lambda: tracker, sync_to_thread=False),
            "app_metrics": Provide(lambda: app_metrics, sync_to_thread=False),
            "limits": Provide(lambda: limits, sync_to_thread=False),
            "check_service": Provide(lambda: check_service, sync_to_thread=False),
            "trust_roots": Provide(lambda: trust_roots, sync_to_thread=False),
            "deployment_keys": Provide(lambda: deployment_keys, sync_to_thread=False),
            "codepush_service": Provide(lambda: codepush_service, sync_to_thread=False),
            "expo_service": Provide(lambda: expo_service, sync_to_thread=False),
            "cache_state": Provide(lambda: CacheState(redis, redis_health), sync_to_thread=False),
            "db_health": Provide(lambda: db_health, sync_to_thread=False),
        },
        exception_handlers={
            Problem: problem_handler,
            HotPatchError: problem_handler,
            HTTPException: http_exception_handler,
            Exception: server_error,
        },
        lifespan=[lifespan],
        openapi_config=OpenAPIConfig(title="HotPatch", version="0.1.0", path="/schema"),
        plugins=[WireSchemaPlugin()],
        request_max_body_size=1024 * 1024,
    )


def app_from_env() -> Litestar:
    """Build the app from ``os.environ``: a factory for ASGI servers (``uvicorn --factory``)."""
    import os  # noqa: PLC0415 - read only when a server process asks for the app

    return create_app(Settings.from_env(os.environ))
