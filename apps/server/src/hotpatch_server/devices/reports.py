"""Installation reports, from any device protocol: stored once per (app, device, id)."""

from __future__ import annotations

from datetime import datetime

import attrs
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hotpatch_core.machine import ReportStatus
from hotpatch_server.cache import ActiveReleases
from hotpatch_server.metrics import Metrics
from hotpatch_server.models import Installation, Release

__all__ = ["Report", "record_installation"]


@attrs.frozen
class Report:
    """A validated installation report, from any device protocol."""

    id: str
    app_id: str
    device_id: str
    manifest_id: str
    status: ReportStatus
    phase: str | None = None
    reason: str = ""
    patched_from: str | None = None


async def record_installation(
    session: AsyncSession,
    report: Report,
    now: datetime,
    active_releases: ActiveReleases,
    metrics: Metrics,
) -> bool:
    """Store ``report`` once per (app, device, id); return True if it was a duplicate.

    A rolled-back report adds its device to the release's exclusions in
    place: that device is never offered the release again, and the check
    cache is not reloaded (docs/security.md, report flood).
    """
    key = (report.app_id, report.device_id, report.id)
    if await session.get(Installation, key) is not None:
        return True
    release = await session.scalar(
        select(Release).where(
            Release.manifest_id == report.manifest_id, Release.app_id == report.app_id
        )
    )
    session.add(
        Installation(
            id=report.id,
            app_id=report.app_id,
            device_id=report.device_id,
            release_id=release.id if release else None,
            manifest_id=report.manifest_id,
            status=report.status.value,
            phase=report.phase,
            reason=report.reason[:500],
            patched_from=report.patched_from,
            created_at=now,
        )
    )
    try:
        await session.commit()
    except Exception:  # a concurrent duplicate: the first one won, which is the contract
        await session.rollback()
        if await session.get(Installation, key) is None:
            raise
        return True
    if report.status is ReportStatus.ROLLED_BACK and release is not None:
        active_releases.exclude(
            (release.app_id, release.platform, release.channel),
            release.manifest_id,
            report.device_id,
        )
    metrics.inc("installation_report", status=report.status.value)
    return False
