"""Health and Prometheus metrics."""

from __future__ import annotations

from collections import Counter
from typing import Any

from litestar import MediaType, Response, get
from litestar.di import NamedDependency
from litestar.params import SkipValidation
from sqlalchemy import text

from hotpatch_server.deps import SessionMaker
from hotpatch_server.updates import DeviceTracker

__all__ = ["Metrics", "health", "metrics"]


class Metrics:
    """In-process counters, exposed in the Prometheus text format."""

    def __init__(self) -> None:
        """Start every counter at zero."""
        self.counters: Counter[tuple[str, tuple[tuple[str, str], ...]]] = Counter()

    def inc(self, name: str, **labels: str) -> None:
        """Add one to ``name`` with ``labels``."""
        self.counters[(name, tuple(sorted(labels.items())))] += 1

    def render(self, tracker: DeviceTracker) -> str:
        """Return the exposition text."""
        lines = [
            "# HELP hotpatch_events_total Events seen by this process.",
            "# TYPE hotpatch_events_total counter",
        ]
        for (name, labels), value in sorted(self.counters.items()):
            rendered = ",".join(f'{k}="{v}"' for k, v in (("event", name), *labels))
            lines.append(f"hotpatch_events_total{{{rendered}}} {value}")
        lines += [
            "# HELP hotpatch_devices_flushed_total Device rows written by the batch tracker.",
            "# TYPE hotpatch_devices_flushed_total counter",
            f"hotpatch_devices_flushed_total {tracker.flushed}",
        ]
        return "\n".join(lines) + "\n"


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
    return app_metrics.render(device_tracker)
