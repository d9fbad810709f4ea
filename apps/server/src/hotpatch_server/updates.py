"""The device API: update check (the hot path), device registration, installation reports.

The update check does no write on its critical path: the device's last-seen
data goes into an in-memory buffer (:class:`DeviceTracker`) flushed in
batches, and the candidate releases, with the devices that rolled each one
back, come from :class:`~hotpatch_server.cache.ActiveReleases`. The check
reads no database unless its (app, platform, channel) was just invalidated.

Choosing: among the channel's active releases, newest first, the first that
is not paused, whose binary range contains the device's native version, is
newer than what the device runs, has the device inside its rollout cohort
(salt: the release's manifest id, ADR 0001), and was not reported rolled
back by this device. Cohorts are advisory: they only choose among releases
already signed for the channel (docs/security.md A18, S9).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import re
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Final

import attrs
import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import Body, JSONBody, SkipValidation
from sqlalchemy import select
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession, async_sessionmaker

from hotpatch_core.cohort import bucket, in_rollout
from hotpatch_core.errors import VersionSyntaxError
from hotpatch_core.machine import ReportStatus
from hotpatch_core.protocol import MANIFEST_ID, NAME, CheckAnswer, InstallationReport, PatchOffer
from hotpatch_core.versions import Version
from hotpatch_core.wire import parse_decimal
from hotpatch_server.blobs import BlobStore
from hotpatch_server.cache import ActiveReleases, Candidate
from hotpatch_server.db_outage import database_health, is_unavailable
from hotpatch_server.deps import ActiveReleasesDep, DbSession, Now
from hotpatch_server.heads import ChannelHeads
from hotpatch_server.health import DependencyHealth
from hotpatch_server.metrics import Metrics
from hotpatch_server.models import App, Device, Installation, Release
from hotpatch_server.problems import Problem
from hotpatch_server.ratelimit import Limits, client_address
from hotpatch_server.wire_schema import WireBody, read_body, wire_response

__all__ = [
    "CHANNEL",
    "DEVICE_ID",
    "MANIFEST_ID",
    "NATIVE_TEXT",
    "PLATFORM",
    "CheckQuery",
    "DeviceController",
    "DeviceTracker",
    "Report",
    "choose",
    "head_start",
    "native_version",
    "parse_check",
    "record_installation",
]

log = logging.getLogger(__name__)
# Every pattern is used with fullmatch: a bare ``$`` would let a trailing newline through.
# They are the device API's, shared by every device protocol; tests/test_validation.py
# checks each against the columns it lands in.
#: App ids and device ids as devices send them (the same rule as in their reports).
DEVICE_ID: Final = NAME
CHANNEL: Final = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
PLATFORM: Final = re.compile(r"android|ios")
NATIVE_TEXT: Final = re.compile(r"[0-9A-Za-z.+-]{1,64}")


@attrs.frozen
class CheckQuery:
    """A validated update check."""

    app_id: str
    platform: str
    channel: str
    device_id: str
    #: None when the caller offers only candidates that fit the binary already
    #: (an Expo runtime version is matched exactly, not by range).
    native_version: Version | None
    native_text: str
    current_manifest_id: str | None
    current_position: tuple[int, int] | None


def _field(params: dict[str, Any], *names: str) -> str | None:
    for name in names:
        value = params.get(name)
        if value is not None and value != "":
            return str(value)
    return None


def _required(params: dict[str, Any], pattern: re.Pattern[str], *names: str) -> str:
    value = _field(params, *names)
    if value is None:
        raise Problem(422, "invalid", f"{names[0]} is required", field=names[0])
    if not pattern.fullmatch(value):
        raise Problem(422, "invalid", f"{names[0]} {value[:40]!r} is not valid", field=names[0])
    return value


@functools.lru_cache(maxsize=4096)
def native_version(text: str) -> Version:
    """Parse a native version (a fleet reports a handful: each is parsed once per process)."""
    return Version.parse_native(text)


def parse_check(params: dict[str, Any]) -> CheckQuery:
    """Validate check parameters (query string or JSON body).

    ``appVersion`` and ``binaryVersion`` are accepted as names of ``nativeVersion``.
    """
    platform = _required(params, PLATFORM, "platform")
    native_text = _required(params, NATIVE_TEXT, "nativeVersion", "appVersion", "binaryVersion")
    try:
        native = native_version(native_text)
    except VersionSyntaxError as exc:
        raise Problem(422, "invalid", str(exc), field="nativeVersion") from None
    current = _field(params, "currentManifestId", "currentReleaseId")
    if current is not None and not MANIFEST_ID.fullmatch(current):
        raise Problem(
            422, "invalid", "currentManifestId is a 64-digit hex id", field="currentManifestId"
        )
    channel = _field(params, "channel") or "production"
    if not CHANNEL.fullmatch(channel):
        raise Problem(422, "invalid", f"channel {channel[:40]!r} is not valid", field="channel")
    position: tuple[int, int] | None = None
    epoch, sequence = _field(params, "currentEpoch"), _field(params, "currentSequence")
    if sequence is not None:
        number, epoch_number = parse_decimal(sequence), parse_decimal(epoch or "1")
        if number is None or epoch_number is None:
            raise Problem(
                422, "invalid", "currentSequence must be a number", field="currentSequence"
            )
        position = (epoch_number, number)
    return CheckQuery(
        app_id=_required(params, DEVICE_ID, "appId"),
        platform=platform,
        channel=channel,
        device_id=_required(params, DEVICE_ID, "deviceId"),
        native_version=native,
        native_text=native_text,
        current_manifest_id=current,
        current_position=position,
    )


def _floor(query: CheckQuery, candidates: tuple[Candidate, ...]) -> tuple[int, int] | None:
    """Return the position of what the device runs, as far as the server can tell."""
    if query.current_manifest_id is not None:
        for candidate in candidates:
            if candidate.manifest_id == query.current_manifest_id:
                return candidate.position
    return query.current_position


def head_start(query: CheckQuery, candidates: tuple[Candidate, ...]) -> tuple[int, int] | None:
    """Return where this device's channel head starts: the newest release at or below its floor.

    The head lists every release newer than that, which covers everything
    :func:`choose` could offer. Cutting only at a release's position keeps
    the heads of a channel few, whatever numbers a device sends.
    """
    floor = _floor(query, candidates)
    if floor is None:
        return None
    return next((c.position for c in candidates if c.position <= floor), None)


def choose(query: CheckQuery, candidates: tuple[Candidate, ...]) -> Candidate | None:
    """Return the release to offer this device, or None."""
    floor = _floor(query, candidates)
    for candidate in candidates:
        if floor is not None and candidate.position <= floor:
            return None  # candidates are newest first: nothing newer is left
        if candidate.paused:
            continue
        native = query.native_version
        if native is not None and not candidate.binary_range.contains(native):
            continue
        if not in_rollout(
            bucket(query.device_id, candidate.manifest_id), candidate.rollout_basis_points
        ):
            continue
        if query.device_id in candidate.rolled_back_devices:
            continue
        return candidate
    return None


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


class DeviceRegistration(msgspec.Struct, rename="camel"):
    """A device announcing itself (``POST /devices``)."""

    app_id: str
    device_id: str
    platform: str
    native_version: str
    channel: str = "production"
    current_manifest_id: str | None = None


def _answer(
    candidate: Candidate | None,
    store: BlobStore,
    now: datetime,
    current: str | None,
    native: str,
    head: str | None,
) -> CheckAnswer:
    if candidate is None:
        return CheckAnswer(update_available=False, head=head)
    # A device on an OTA bundle names it; one on the bundle in its binary does not.
    patch = candidate.patches.get(current or f"embedded:{native}")
    return CheckAnswer(
        update_available=True,
        manifest=candidate.manifest_b64,
        bundle_url=store.url(candidate.archive_sha256, now),
        head=head,
        # Unsigned, like the URLs: the device verifies every file it builds.
        patch=None if patch is None else PatchOffer(store.url(patch[0], now), patch[1], patch[2]),
        version=candidate.version,
        mandatory=candidate.mandatory,
        hash=candidate.archive_sha256,
        size=candidate.archive_length,
        manifest_id=candidate.manifest_id,
        sequence=candidate.sequence,
        epoch=candidate.epoch,
        signature=candidate.signature_b64,
    )


@attrs.frozen
class CheckService:
    """Everything the update check uses, injected as one dependency to keep the hot path lean."""

    active_releases: ActiveReleases
    device_tracker: DeviceTracker
    blob_store: BlobStore
    metrics: Metrics
    limits: Limits
    clock: Callable[[], datetime]
    #: Signs the channel head sent with every answer; None when no timestamp key is set.
    heads: ChannelHeads | None = None

    async def check(self, params: dict[str, Any]) -> CheckAnswer:
        """Validate, rate-limit, note the device, choose from the cache, answer."""
        query = parse_check(params)
        now = self.clock()
        await self.limits.check.enforce(f"{query.app_id}/{query.device_id}", now.timestamp())
        self.device_tracker.note(query, now)
        target = (query.app_id, query.platform, query.channel)
        candidates = await self.active_releases.get(*target)
        chosen = choose(query, candidates)
        self.metrics.inc("update_check", offered=str(chosen is not None).lower())
        # From the same candidates as the choice: the head never contradicts the answer.
        head = (
            None
            if self.heads is None
            else self.heads.head(target, candidates, head_start(query, candidates), now)
        )
        return _answer(
            chosen, self.blob_store, now, query.current_manifest_id, query.native_text, head
        )


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


class DeviceController(Controller):
    """Endpoints devices call: no credentials, nothing leaks across apps."""

    tags = ["devices"]  # noqa: RUF012 - Litestar reads it as a class attribute

    @get(
        "/update/check",
        summary="Check for an update (query parameters)",
        description=(
            "Query parameters: appId, platform (android | ios), deviceId, nativeVersion "
            "(also appVersion / binaryVersion), channel (default production), and optionally "
            "currentManifestId or currentEpoch + currentSequence. They are parsed by the "
            "handler itself rather than declared, which keeps this hot path free of a second "
            "validation pass (see docs/benchmarks.md)."
        ),
    )
    async def check_get(
        self,
        request: Request[Any, Any, Any],
        check_service: NamedDependency[SkipValidation[CheckService]],
    ) -> Response[CheckAnswer]:
        """Answer whether a newer signed release is available to this device."""
        return wire_response(await check_service.check(dict(request.query_params)))

    @post("/update/check", status_code=200, summary="Check for an update (JSON body)")
    async def check_post(
        self,
        data: JSONBody[dict[str, Any]],
        check_service: NamedDependency[SkipValidation[CheckService]],
    ) -> Response[CheckAnswer]:
        """Answer the same check from a JSON body (``appId``, ``platform``, ``deviceId``, ...)."""
        return wire_response(await check_service.check(data))

    @post("/devices", status_code=201, summary="Register a device")
    async def register(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[DeviceRegistration],
        device_tracker: NamedDependency[SkipValidation[DeviceTracker]],
        limits: NamedDependency[SkipValidation[Limits]],
        now: Now,
    ) -> dict[str, Any]:
        """Record a device (buffered like the check's tracking)."""
        await limits.telemetry.enforce(client_address(request), now.timestamp())
        query = parse_check(
            {
                "appId": data.app_id,
                "deviceId": data.device_id,
                "platform": data.platform,
                "channel": data.channel,
                "nativeVersion": data.native_version,
                "currentManifestId": data.current_manifest_id,
            }
        )
        device_tracker.note(query, now)
        return {"appId": query.app_id, "deviceId": query.device_id}

    @post("/installations", summary="Report an installation result")
    async def report(
        self,
        request: Request[Any, Any, Any],
        data: Annotated[dict[str, Any], Body(), WireBody(InstallationReport)],
        db_session: DbSession,
        now: Now,
        app_metrics: NamedDependency[SkipValidation[Metrics]],
        limits: NamedDependency[SkipValidation[Limits]],
        active_releases: ActiveReleasesDep,
    ) -> Response[dict[str, Any]]:
        """Record applied / failed / rolled_back; repeating a report id changes nothing."""
        await limits.telemetry.enforce(client_address(request), now.timestamp())
        sent = read_body(data, InstallationReport)
        await limits.report.enforce(f"{sent.app_id}/{sent.device_id}", now.timestamp())
        duplicate = await record_installation(
            db_session,
            Report(
                id=sent.id,
                app_id=sent.app_id,
                device_id=sent.device_id,
                manifest_id=sent.manifest_id,
                status=sent.status,
                phase=None if sent.phase is None else sent.phase.value,
                reason=sent.reason,
                patched_from=sent.patched_from,
            ),
            now,
            active_releases,
            app_metrics,
        )
        if duplicate:
            return Response({"id": sent.id, "duplicate": True}, status_code=200)
        return Response({"id": sent.id, "duplicate": False}, status_code=201)
