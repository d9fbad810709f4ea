"""Health and Prometheus metrics."""

from __future__ import annotations

from typing import Any

from litestar import MediaType, Response, get
from litestar.di import NamedDependency
from litestar.params import SkipValidation
from sqlalchemy import text

from hotpatch_server.deps import SessionMaker
from hotpatch_server.metrics import Metrics
from hotpatch_server.updates import DeviceTracker

__all__ = ["health", "metrics"]


@get("/health", summary="Liveness and database reachability", tags=["ops"])
async def health(sessionmaker: SessionMaker) -> Response[dict[str, Any]]:
    """200 when the database answers, 503 otherwise."""
    try:
        async with sessionmaker() as session:
            await session.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any database failure means "not healthy"
        return Response({"status": "unavailable", "database": str(exc)[:200]}, status_code=503)
    return Response({"status": "ok", "database": "ok"})


@get("/metrics", media_type=MediaType.TEXT, summary="Prometheus metrics", tags=["ops"])
async def metrics(
    app_metrics: NamedDependency[SkipValidation[Metrics]],
    device_tracker: NamedDependency[SkipValidation[DeviceTracker]],
) -> str:
    """Counters of this process in the Prometheus text format."""
    return app_metrics.render(device_tracker.flushed)
