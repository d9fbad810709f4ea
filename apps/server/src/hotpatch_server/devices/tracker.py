"""Device check-ins: buffered in memory, written in batches off the hot path."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from datetime import datetime
from typing import Any

import attrs
from sqlalchemy import select
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker

from hotpatch_server.db_outage import database_health, is_unavailable
from hotpatch_server.devices.query import CheckQuery
from hotpatch_server.health import DependencyHealth
from hotpatch_server.models import App, Device

__all__ = ["MAX_PENDING_DEVICES", "DeviceTracker"]

log = logging.getLogger(__name__)

_COLUMNS = (
    "app_id",
    "device_id",
    "platform",
    "channel",
    "native_version",
    "current_manifest_id",
    "first_seen",
    "last_seen",
)
_UPDATED = ("platform", "channel", "native_version", "current_manifest_id", "last_seen")
_FLUSH_CHUNK = 250
#: Device check-ins kept in memory while the database is away (about 200 bytes each).
MAX_PENDING_DEVICES = 100_000
_PG_UPSERT = """
INSERT INTO devices (app_id, device_id, platform, channel, native_version,
                     current_manifest_id, first_seen, last_seen)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (app_id, device_id) DO UPDATE SET
    platform = EXCLUDED.platform,
    channel = EXCLUDED.channel,
    native_version = EXCLUDED.native_version,
    current_manifest_id = EXCLUDED.current_manifest_id,
    last_seen = EXCLUDED.last_seen
"""


@attrs.define
class _Seen:
    platform: str
    channel: str
    native_version: str
    current_manifest_id: str | None
    at: datetime


class DeviceTracker:
    """Buffers device last-seen data and writes it in batches, off the hot path.

    While the database is away, a batch that could not be written goes back
    into the buffer (newer check-ins of the same device win), which keeps at
    most :data:`MAX_PENDING_DEVICES`; past that, the oldest are dropped and
    counted (``dropped``), with one log line per outage.
    """

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        db_health: DependencyHealth | None = None,
    ) -> None:
        """Flush through ``sessionmaker``; report the database's reachability to ``db_health``."""
        self._sessionmaker = sessionmaker
        self._db_health = db_health or database_health()
        self._pending: dict[tuple[str, str], _Seen] = {}
        self.flushed = 0
        self.dropped = 0
        self._dropping = False

    def note(self, query: CheckQuery, at: datetime) -> None:
        """Remember that a device checked (O(1), no I/O)."""
        self._pending[(query.app_id, query.device_id)] = _Seen(
            query.platform, query.channel, query.native_text, query.current_manifest_id, at
        )

    async def flush(self) -> int:
        """Upsert everything buffered; return how many devices were written.

        If the database cannot be reached, the batch is kept for the next
        flush and the error is raised.
        """
        if not self._pending:
            return 0
        batch, self._pending = self._pending, {}
        try:
            written = await self._flush(batch)
        except Exception as exc:
            if is_unavailable(exc):
                self._keep(batch)
            raise
        self._dropping = False
        self._db_health.succeeded()
        return written

    def _keep(self, batch: dict[tuple[str, str], _Seen]) -> None:
        """Put an unwritten batch back in front of what arrived since, within the bound."""
        merged = {**batch, **self._pending}
        excess = len(merged) - MAX_PENDING_DEVICES
        if excess > 0:
            for key in list(itertools.islice(merged, excess)):
                del merged[key]
            self.dropped += excess
            if not self._dropping:
                self._dropping = True
                log.warning(
                    "device check-ins are dropped while the database is away: the buffer keeps "
                    "the newest %d devices (%d dropped so far)",
                    MAX_PENDING_DEVICES,
                    self.dropped,
                )
        self._pending = merged

    async def _flush(self, batch: dict[tuple[str, str], _Seen]) -> int:
        async with self._sessionmaker() as session:
            # Checks and registrations name any app id they like: only
            # devices of apps that exist are written (one query per chunk of app ids).
            named = sorted({app_id for app_id, _ in batch})
            apps: set[str] = set()
            for start in range(0, len(named), _FLUSH_CHUNK):  # bounded bind parameters
                chunk = named[start : start + _FLUSH_CHUNK]
                apps.update(
                    (await session.execute(select(App.id).where(App.id.in_(chunk)))).scalars()
                )
            rows = [
                (
                    app_id,
                    device_id,
                    seen.platform,
                    seen.channel,
                    seen.native_version,
                    seen.current_manifest_id,
                    seen.at,
                    seen.at,
                )
                for (app_id, device_id), seen in sorted(batch.items())
                if app_id in apps
            ]
            if not rows:
                return 0
        try:
            await self._write(rows)
        except Exception as exc:
            if is_unavailable(exc):
                raise  # the whole batch waits for the database
            # One bad row must not drop the whole batch.
            log.warning("device batch of %d failed; writing its rows one by one", len(rows))
            written = 0
            for row in rows:
                try:
                    await self._write([row])
                except Exception as row_error:
                    if is_unavailable(row_error):
                        raise  # gone mid-batch: the whole batch waits for the database
                    log.warning("device %r of %r could not be recorded", row[1][:40], row[0][:40])
                else:
                    written += 1
            self.flushed += written
            return written
        self.flushed += len(rows)
        return len(rows)

    async def _write(self, rows: list[tuple[Any, ...]]) -> None:
        async with self._sessionmaker() as session:
            connection = await session.connection()
            if connection.dialect.name == "postgresql":
                await self._flush_postgres(connection, rows)
            else:
                await self._flush_generic(session, rows)
            await session.commit()

    @staticmethod
    async def _flush_postgres(connection: AsyncConnection, rows: list[tuple[Any, ...]]) -> None:
        # asyncpg's executemany binds parameters in C: about 20x less event-loop
        # time per row than SQLAlchemy's parameter processing, so a flush of a
        # few thousand devices does not stall the update checks behind it.
        raw = await connection.get_raw_connection()
        driver = raw.driver_connection
        assert driver is not None  # noqa: S101 - an open asyncpg connection
        for start in range(0, len(rows), _FLUSH_CHUNK):
            await driver.executemany(_PG_UPSERT, rows[start : start + _FLUSH_CHUNK])
            await asyncio.sleep(0)  # let waiting requests run between chunks

    @staticmethod
    async def _flush_generic(session: AsyncSession, rows: list[tuple[Any, ...]]) -> None:
        statement = sqlite_insert(Device)
        statement = statement.on_conflict_do_update(
            index_elements=["app_id", "device_id"],
            set_={name: statement.excluded[name] for name in _UPDATED},
        )
        for start in range(0, len(rows), _FLUSH_CHUNK):
            chunk = [
                dict(zip(_COLUMNS, row, strict=True)) for row in rows[start : start + _FLUSH_CHUNK]
            ]
            await session.execute(statement, chunk)
            await asyncio.sleep(0)

    async def run(self, interval: float, stop: asyncio.Event) -> None:
        """Flush every ``interval`` seconds until ``stop`` is set, then flush once more.

        Stopping by event rather than cancellation lets an in-flight flush
        finish and return its connection, instead of abandoning it mid-query.
        """
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval)
            try:
                await self.flush()
            except Exception as exc:  # a failed flush must not stop tracking
                if is_unavailable(exc):
                    self._db_health.failed(exc, "writing device check-ins")
                else:
                    log.exception("device flush failed; will retry")
