"""The audit log: every publish, rollback, rollout change, promote and key change."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from litestar import Response, get
from litestar.params import QueryParameter
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from hotpatch_core.publishing import AuditEntryView
from hotpatch_server.auth import Action, Principal
from hotpatch_server.deps import DbSession, PrincipalDep
from hotpatch_server.models import ApiKey, AuditEntry, Release, utc
from hotpatch_server.wire_schema import wire_response

__all__ = ["list_audit", "record", "record_key_change", "record_raw"]


def record_raw(
    session: AsyncSession,
    actor: str,
    action: str,
    app_id: str | None,
    target: str,
    now: datetime,
    details: dict[str, Any],
) -> None:
    """Add an audit entry to the caller's transaction (it commits with the change)."""
    session.add(
        AuditEntry(
            at=now, actor=actor, action=action, app_id=app_id, target=target, details=details
        )
    )


def record_key_change(
    session: AsyncSession, actor: str, action: str, key: ApiKey, now: datetime
) -> None:
    """Audit a key change under every app the key is scoped to, so each app's log shows it."""
    for app_id in key.apps:
        record_raw(
            session,
            actor,
            action,
            app_id,
            f"key {key.id}",
            now,
            {"key": key.id, "name": key.name, "role": key.role, "apps": list(key.apps)},
        )


def record(
    session: AsyncSession,
    principal: Principal,
    action: str,
    release: Release,
    now: datetime,
    details: dict[str, Any],
) -> None:
    """Audit an action on a release, with the hashes that identify it."""
    record_raw(
        session,
        principal.label,
        action,
        release.app_id,
        f"{release.app_id}/{release.platform}/{release.channel}@{release.version}",
        now,
        {
            **details,
            "manifestId": release.manifest_id,
            "sequence": release.sequence,
            "epoch": release.epoch,
        },
    )


@get("/audit", summary="Read the audit log", tags=["audit"])
async def list_audit(
    principal: PrincipalDep,
    db_session: DbSession,
    app_id: Annotated[str, QueryParameter(name="appId")],
    limit: Annotated[int, QueryParameter(ge=1, le=1000)] = 100,
) -> Response[list[AuditEntryView]]:
    """Audit entries of one app (``*``: changes to keys scoped to every app), newest first."""
    principal.require(Action.READ, app_id)
    rows = (
        await db_session.execute(
            select(AuditEntry)
            .where(AuditEntry.app_id == app_id)
            .order_by(AuditEntry.id.desc())
            .limit(limit)
        )
    ).scalars()
    return wire_response(
        [
            AuditEntryView(
                id=r.id,
                at=utc(r.at),
                actor=r.actor,
                action=r.action,
                app_id=app_id,
                target=r.target,
                details=r.details,
            )
            for r in rows
        ]
    )
