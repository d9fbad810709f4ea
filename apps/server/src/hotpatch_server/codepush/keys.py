"""CodePush deployment keys: each names one (app, platform, channel).

A deployment key is compiled into the app (``CodePushDeploymentKey``) and
sent with every check and report. It is not a secret in the way an API key
is (anyone with the app binary can read it), but it is the only thing that
routes a device to a channel, so it is made here with 256 random bits,
shown once, stored as its sha256, and can be revoked; rotating one is
creating a new key, shipping it, and revoking the old one.

The device routes look keys up through :class:`DeploymentKeys`, a
per-process cache (a check reads no database for a known key). Revoking a
key drops it from this process's cache at once; other processes stop
honouring it within ``active_cache_seconds``.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Final

import attrs
from litestar import Controller, Response, delete, get, post
from litestar.di import NamedDependency
from litestar.params import Body, FromPath, SkipValidation
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hotpatch_core.manifest import Platform
from hotpatch_core.publishing import CreatedDeploymentKey, DeploymentKeyView, NewDeploymentKey
from hotpatch_server import fields
from hotpatch_server.audit import record_raw
from hotpatch_server.auth import Action, hash_secret
from hotpatch_server.deps import DbSession, Now, PrincipalDep
from hotpatch_server.devices.query import CHANNEL, PLATFORM
from hotpatch_server.errors import InvalidInputError, NotFoundError
from hotpatch_server.models import App, DeploymentKey, utc
from hotpatch_server.wire_schema import JsonObject, WireBody, read_body, wire_response

__all__ = [
    "KEY",
    "DeploymentKeyController",
    "DeploymentKeys",
    "Target",
    "create_deployment_key",
    "deployment_key_view",
]

#: What CodePush clients and servers accept as a deployment key (code-push-server's rule).
KEY: Final = re.compile(r"[A-Za-z0-9_-]{10,100}")
_KEY_ID: Final = re.compile(r"[0-9a-f]{16}")
#: Answers (found or not) remembered per process: a flood of made-up keys costs one query each.
_MAX_KEYS: Final = 10_000
log = logging.getLogger(__name__)


@attrs.frozen
class Target:
    """Where a deployment key points."""

    key_id: str
    app_id: str
    platform: str
    channel: str


class DeploymentKeys:
    """Per-process lookup of deployment keys by their sha256, refreshed every ``ttl`` seconds."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        ttl: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Read through ``sessionmaker``; trust an answer (found or not) for ``ttl`` seconds."""
        self._sessionmaker = sessionmaker
        self._ttl = ttl
        self._clock = clock
        self._known: dict[str, tuple[float, Target | None]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._refreshing: dict[str, asyncio.Task[None]] = {}

    async def find(self, key: str) -> Target | None:
        """Return where ``key`` points, or None for a key that is unknown or revoked.

        A known answer past its lifetime is still served while one background
        task reloads it, so a burst of checks never queues behind the
        database; only a key seen for the first time waits (once per key).
        """
        digest = hash_secret(key)
        entry = self._known.get(digest)
        if entry is not None:
            if self._clock() - entry[0] >= self._ttl and digest not in self._refreshing:
                self._refreshing[digest] = asyncio.create_task(self._refresh(digest))
            return entry[1]
        lock = self._locks.setdefault(digest, asyncio.Lock())
        async with lock:
            entry = self._known.get(digest)
            if entry is None:
                await self._load(digest)
                entry = self._known[digest]
        self._locks.pop(digest, None)
        return entry[1]

    async def _load(self, digest: str) -> None:
        async with self._sessionmaker() as session:
            row = await session.scalar(
                select(DeploymentKey).where(
                    DeploymentKey.key_hash == digest, DeploymentKey.revoked_at.is_(None)
                )
            )
        target = None if row is None else Target(row.id, row.app_id, row.platform, row.channel)
        if len(self._known) >= _MAX_KEYS:
            self._known.clear()  # bounded: a flood of made-up keys cannot grow it
        self._known[digest] = (self._clock(), target)

    async def _refresh(self, digest: str) -> None:
        try:
            await self._load(digest)
        except Exception:  # noqa: BLE001 - keep serving the last answer; retry next time
            log.warning("reloading a deployment key failed; serving the cached answer")
        finally:
            self._refreshing.pop(digest, None)

    def forget(self) -> None:
        """Drop every cached answer (after a key is revoked in this process)."""
        self._known.clear()


def deployment_key_view(row: DeploymentKey) -> DeploymentKeyView:
    """Return the API's view of a deployment key: never the key itself after creation."""
    return DeploymentKeyView(
        id=row.id,
        app_id=row.app_id,
        platform=Platform(row.platform),
        channel=row.channel,
        name=row.name,
        created_at=utc(row.created_at),
        revoked_at=None if row.revoked_at is None else utc(row.revoked_at),
    )


async def create_deployment_key(
    session: AsyncSession,
    *,
    app_id: str,
    platform: str,
    channel: str,
    name: str,
    actor: str,
    now: datetime,
) -> tuple[DeploymentKey, str]:
    """Create a key for (app, platform, channel); return the row and the key, never stored."""
    fields.app_id(app_id, "appId")
    fields.display_name(name, "name")
    if not PLATFORM.fullmatch(platform):
        raise InvalidInputError("platform is android or ios", field="platform")
    if not CHANNEL.fullmatch(channel):
        raise InvalidInputError(
            "channel is 1-64 lowercase letters, digits, '.', '_' or '-'",
            field="channel",
        )
    if await session.get(App, app_id) is None:
        raise NotFoundError(f"no app {app_id!r}")
    plaintext = secrets.token_urlsafe(32)  # 43 characters of [A-Za-z0-9_-]
    row = DeploymentKey(
        id=uuid.uuid4().hex[:16],
        key_hash=hash_secret(plaintext),
        app_id=app_id,
        platform=platform,
        channel=channel,
        name=name or f"{platform}-{channel}",
        created_at=now,
    )
    session.add(row)
    record_raw(
        session,
        actor,
        "create-deployment-key",
        app_id,
        row.id,
        now,
        {"platform": platform, "channel": channel, "name": row.name},
    )
    await session.flush()
    return row, plaintext


class DeploymentKeyController(Controller):
    """``/apps/{appId}/deployment-keys``: CodePush deployment keys (admin of the app)."""

    path = "/apps/{app_id:str}/deployment-keys"
    tags = ["codepush"]  # noqa: RUF012 - Litestar reads it as a class attribute

    @post("/", status_code=201, summary="Create a CodePush deployment key")
    async def create(
        self,
        app_id: FromPath[str],
        data: Annotated[JsonObject, Body(), WireBody(NewDeploymentKey)],
        principal: PrincipalDep,
        db_session: DbSession,
        now: Now,
    ) -> Response[CreatedDeploymentKey]:
        """Create a key for one platform and channel; the key is in this response only."""
        sent = read_body(data, NewDeploymentKey, known_fields_only=True)
        principal.require(Action.ADMIN, fields.app_id(app_id, "appId"))
        row, plaintext = await create_deployment_key(
            db_session,
            app_id=app_id,
            platform=sent.platform,
            channel=sent.channel,
            name=sent.name,
            actor=principal.label,
            now=now,
        )
        await db_session.commit()
        view = deployment_key_view(row)
        created = CreatedDeploymentKey(**attrs.asdict(view, recurse=False), key=plaintext)
        return wire_response(created, status_code=201)

    @get("/", summary="List an app's CodePush deployment keys")
    async def list_keys(
        self, app_id: FromPath[str], principal: PrincipalDep, db_session: DbSession
    ) -> Response[list[DeploymentKeyView]]:
        """Every key of the app, revoked ones included, oldest first."""
        principal.require(Action.ADMIN, fields.app_id(app_id, "appId"))
        rows = await db_session.scalars(
            select(DeploymentKey)
            .where(DeploymentKey.app_id == app_id)
            .order_by(DeploymentKey.created_at, DeploymentKey.id)
        )
        return wire_response([deployment_key_view(row) for row in rows])

    @delete("/{key_id:str}", status_code=200, summary="Revoke a CodePush deployment key")
    async def revoke(
        self,
        app_id: FromPath[str],
        key_id: FromPath[str],
        principal: PrincipalDep,
        db_session: DbSession,
        deployment_keys: NamedDependency[SkipValidation[DeploymentKeys]],
        now: Now,
    ) -> Response[DeploymentKeyView]:
        """Revoke a key: devices that send it get 404 from then on."""
        principal.require(Action.ADMIN, fields.app_id(app_id, "appId"))
        row = await db_session.get(DeploymentKey, key_id) if _KEY_ID.fullmatch(key_id) else None
        if row is None or row.app_id != app_id:
            raise NotFoundError(f"no deployment key {key_id[:40]!r} in {app_id!r}")
        if row.revoked_at is None:
            row.revoked_at = now
            record_raw(
                db_session, principal.label, "revoke-deployment-key", app_id, row.id, now, {}
            )
        await db_session.commit()
        deployment_keys.forget()
        return wire_response(deployment_key_view(row))
