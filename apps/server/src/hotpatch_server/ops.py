"""Health and Prometheus metrics.

``/health`` says whether the database answers, never why not (the reason
goes to the log: it can name hosts, users and paths). ``/metrics`` needs a
credential scoped to every app (``--app '*'``, any role) unless
``HOTPATCH_METRICS_PUBLIC=1``: the counters are the whole server's. Served
publicly, they are summed over apps and name none.
"""

from __future__ import annotations

import logging
from typing import Any

from litestar import MediaType, Response, get
from litestar.di import NamedDependency
from litestar.params import SkipValidation
from sqlalchemy import text

from hotpatch_server.deps import PrincipalDep, SessionMaker
from hotpatch_server.metrics import Metrics
from hotpatch_server.problems import Problem
from hotpatch_server.updates import DeviceTracker

__all__ = ["health", "metrics", "public_metrics"]

log = logging.getLogger(__name__)


@get("/health", summary="Liveness and database reachability", tags=["ops"])
async def health(sessionmaker: SessionMaker) -> Response[dict[str, Any]]:
    """200 when the database answers, 503 otherwise."""
    try:
        async with sessionmaker() as session:
            await session.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any database failure means "not healthy"
        log.warning("health check: the database does not answer: %s", exc)
        return Response({"status": "unavailable", "database": "unavailable"}, status_code=503)
    return Response({"status": "ok", "database": "ok"})


@get("/metrics", media_type=MediaType.TEXT, summary="Prometheus metrics", tags=["ops"])
async def metrics(
    app_metrics: NamedDependency[SkipValidation[Metrics]],
    device_tracker: NamedDependency[SkipValidation[DeviceTracker]],
    principal: PrincipalDep,
) -> str:
    """Counters of this process in the Prometheus text format (a credential for every app)."""
    if "*" not in principal.apps:
        raise Problem(
            403,
            "forbidden",
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
