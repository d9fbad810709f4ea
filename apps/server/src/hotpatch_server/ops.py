"""Health and Prometheus metrics.

``/health`` says whether the database and the cache (Redis) answer, never
why not (the reason goes to the log: it can name hosts, users and paths).
Without the database it answers 503 ``unavailable``; without Redis, 200
``degraded``: the server still serves everything (see
:mod:`hotpatch_server.redis_health`). ``/metrics`` needs a
credential scoped to every app (``--app '*'``, any role) unless
``HOTPATCH_METRICS_PUBLIC=1``: the counters are the whole server's. Served
publicly, they are summed over apps and name none.
"""

from __future__ import annotations

import asyncio
import logging

import attrs
from litestar import MediaType, Response, get
from litestar.di import NamedDependency
from litestar.openapi import ResponseSpec
from litestar.params import SkipValidation
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import text

from hotpatch_core.publishing import Health
from hotpatch_server.db_outage import RETRY_AFTER
from hotpatch_server.deps import PrincipalDep, SessionMaker
from hotpatch_server.devices.tracker import DeviceTracker
from hotpatch_server.errors import ForbiddenError
from hotpatch_server.health import DependencyHealth
from hotpatch_server.metrics import Metrics
from hotpatch_server.wire_schema import wire_response

__all__ = ["CacheState", "health", "metrics", "public_metrics"]

log = logging.getLogger(__name__)


@attrs.frozen
class CacheState:
    """The server's Redis (None when not configured) and what its users last saw."""

    redis: Redis | None
    health: DependencyHealth

    async def state(self) -> str:
        """``ok``, ``unavailable`` or ``not configured``: asks Redis (0.5 s at most)."""
        if self.redis is None:
            return "not configured"
        try:
            await asyncio.wait_for(self.redis.ping(), timeout=0.5)
        except (RedisError, OSError, TimeoutError) as exc:
            self.health.failed(exc, "answering /health")
            return "unavailable"
        self.health.succeeded()
        return "ok"


@get(
    "/health",
    summary="Liveness, and the database's and cache's reachability",
    tags=["ops"],
    responses={503: ResponseSpec(Health, description="The database does not answer")},
)
async def health(
    sessionmaker: SessionMaker,
    cache_state: NamedDependency[SkipValidation[CacheState]],
    db_health: NamedDependency[SkipValidation[DependencyHealth]],
) -> Response[Health]:
    """200 ``ok``; 200 ``degraded`` when only Redis is away; 503 when the database is."""
    cache = await cache_state.state()
    try:
        async with sessionmaker() as session:
            await session.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any database failure means "not healthy"
        db_health.failed(exc, "answering a health check")  # one line per outage, not per probe
        return wire_response(
            Health(status="unavailable", database="unavailable", cache=cache),
            status_code=503,
            headers={"Retry-After": str(RETRY_AFTER)},
        )
    db_health.succeeded()
    status = "degraded" if cache == "unavailable" else "ok"
    return wire_response(Health(status=status, database="ok", cache=cache))


@get("/metrics", media_type=MediaType.TEXT, summary="Prometheus metrics", tags=["ops"])
async def metrics(
    app_metrics: NamedDependency[SkipValidation[Metrics]],
    device_tracker: NamedDependency[SkipValidation[DeviceTracker]],
    principal: PrincipalDep,
) -> str:
    """Counters of this process in the Prometheus text format (a credential for every app)."""
    if "*" not in principal.apps:
        raise ForbiddenError(
            "metrics count every app: use a key scoped to all apps (--app '*'), "
            "or set HOTPATCH_METRICS_PUBLIC=1",
        )
    return app_metrics.render(device_tracker.flushed)


@get("/metrics", media_type=MediaType.TEXT, summary="Prometheus metrics", tags=["ops"])
async def public_metrics(
    app_metrics: NamedDependency[SkipValidation[Metrics]],
    device_tracker: NamedDependency[SkipValidation[DeviceTracker]],
) -> str:
    """Counters of this process, for anyone (``HOTPATCH_METRICS_PUBLIC=1``): no app ids."""
    return app_metrics.render(device_tracker.flushed, per_app=False)
