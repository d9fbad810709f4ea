"""Patches between releases, made in the background after a publish (never on a request path).

For a newly published release the server picks its bases — the releases
that devices of that channel were last seen running (device tracking), plus
the newest few releases of the channel — and, for each, makes a
:mod:`hotpatch_diff` patch from the base's files to the new release's. A
patch is kept only if it is meaningfully smaller than the archive (below
:data:`WORTH` of its length). Patches are content-addressed blobs like
archives; the update check offers one to a device whose current release is
its base. Several processes may race to make the same patch: the unique
(base, target) row decides, the loser's blob is shared.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import logging
import tempfile
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Final

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hotpatch_core.archive import ArchiveLimits, FileEntry, MemorySink, extract_archive
from hotpatch_core.errors import HotPatchError, TooLargeError
from hotpatch_core.manifest import decode_manifest
from hotpatch_core.release import decode_release_envelope
from hotpatch_core.versions import BinaryRange, Version
from hotpatch_diff import PatchSide, make_patch
from hotpatch_server.cache import ActiveReleases
from hotpatch_server.errors import PatchRejectedError
from hotpatch_server.models import Device, EmbeddedBundle, Patch, Release
from hotpatch_server.problems import disk_full
from hotpatch_server.storage.blobs import BlobStore

__all__ = [
    "BASES",
    "WORTH",
    "extracted",
    "generate_patches",
    "log_failure",
    "register_patch",
    "store_bytes",
]

log = logging.getLogger("hotpatch_server.patches.service")

#: The newest releases of the channel always patched from (besides what devices run).
BASES: Final = 3
#: A patch is offered only below this fraction of the archive's length.
WORTH: Final = 0.8
#: Archives larger than this are not patched (their files are held in memory).
MAX_ARCHIVE: Final = 256 * 1024 * 1024
_RUNNING_BASES: Final = 20


async def store_bytes(store: BlobStore, data: bytes, tmp_dir: Path) -> str:
    """Put ``data`` in the blob store under its SHA-256 (via a temporary file); return that."""
    sha256 = hashlib.sha256(data).hexdigest()
    tmp_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=tmp_dir, delete=False) as handle:
        staged = Path(handle.name)
        try:
            handle.write(data)
        except BaseException:
            staged.unlink(missing_ok=True)
            raise
    try:
        await store.put(sha256, staged)
    finally:
        staged.unlink(missing_ok=True)  # put moved or removed it, unless it failed
    return sha256


def _patch_row(target: Release, base_id: str, sha256: str, length: int, now: datetime) -> Patch:
    return Patch(
        app_id=target.app_id,
        base_manifest_id=base_id,
        target_manifest_id=target.manifest_id,
        sha256=sha256,
        length=length,
        archive_length=target.archive_length,
        downloads=0,
        created_at=now,
    )


class ExpandsTooFarError(TooLargeError):
    """A release's files add up to more than the server expands in memory."""


def check_expanded(name: str, files: Sequence[FileEntry], max_bytes: int) -> None:
    """Raise :class:`ExpandsTooFarError` when ``files``' signed sizes exceed ``max_bytes``."""
    expanded = sum(entry.size for entry in files)
    if expanded > max_bytes:
        raise ExpandsTooFarError(f"{name}'s files ({expanded} bytes)", max_bytes)


async def extracted(
    store: BlobStore, release: Release | EmbeddedBundle, max_bytes: int
) -> PatchSide:
    """Read and extract a release's (or embedded bundle's) archive, checked against its files.

    Raises :class:`ExpandsTooFarError` before reading anything when its
    signed file sizes add up to more than ``max_bytes``
    (``HOTPATCH_MAX_EXPANDED_BYTES``): the files are held in memory, and a
    small archive of a publisher's may expand a thousandfold.
    """
    if isinstance(release, EmbeddedBundle):
        files = tuple(
            FileEntry(str(f["path"]), str(f["sha256"]), int(str(f["size"]))) for f in release.files
        )
        name = release.base_id
    else:
        files = decode_manifest(decode_release_envelope(release.manifest).payload).files
        name = release.manifest_id
    check_expanded(name[:12], files, max_bytes)
    data = await store.read(release.archive_sha256, MAX_ARCHIVE)

    def extract() -> dict[str, bytes]:
        sink = MemorySink()
        limits = ArchiveLimits(max_files=max(1, len(files)))
        extract_archive(io.BytesIO(data), files, sink, limits=limits)
        return sink.files

    contents = await asyncio.to_thread(extract)
    return PatchSide(name, files, lambda entry: contents[entry.path])


async def register_patch(
    session: AsyncSession,
    store: BlobStore,
    base: Release,
    target: Release,
    data: bytes,
    tmp_dir: Path,
    now: datetime,
    max_expanded: int,
) -> Patch:
    """Check that ``data`` rebuilds ``target`` from ``base`` exactly, then store it.

    Raises :class:`PatchRejectedError` (and stores nothing) if it does not,
    or if it is not smaller than the archive; :class:`IntegrityError` on commit
    if the pair has a patch already.
    """
    from hotpatch_diff import apply_patch  # noqa: PLC0415 - only here

    if len(data) >= target.archive_length:
        raise PatchRejectedError(
            "the patch is not smaller than the release's archive", field="patch"
        )
    try:
        base_side = await extracted(store, base, max_expanded)
        target_side = await extracted(store, target, max_expanded)
    except ExpandsTooFarError as exc:
        raise PatchRejectedError(
            f"the server does not check patches of releases this large: {exc}", field="patch"
        ) from None

    def check() -> None:
        sink = MemorySink()
        apply_patch(data, base_side, target.manifest_id, target_side.files, sink)

    try:
        await asyncio.to_thread(check)
    except HotPatchError as exc:
        raise PatchRejectedError(
            f"the patch does not rebuild the release: {exc}", field="patch"
        ) from None
    row = _patch_row(
        target, base.manifest_id, await store_bytes(store, data, tmp_dir), len(data), now
    )
    session.add(row)
    await session.commit()
    return row


async def _bases(session: AsyncSession, target: Release) -> list[Release | EmbeddedBundle]:
    scope = (
        Release.app_id == target.app_id,
        Release.platform == target.platform,
        Release.channel == target.channel,
        Release.id != target.id,
    )
    # The releases most devices run. Devices name their current release
    # themselves (checks and registrations are unauthenticated), so only ids
    # of this channel's real releases count, most-run first: made-up ids
    # cannot crowd the real bases out.
    devices = func.count()
    running = (
        select(Device.current_manifest_id)
        .where(
            Device.app_id == target.app_id,
            Device.platform == target.platform,
            Device.channel == target.channel,
            Device.current_manifest_id.in_(select(Release.manifest_id).where(*scope)),
        )
        .group_by(Device.current_manifest_id)
        .order_by(devices.desc(), Device.current_manifest_id)
        .limit(_RUNNING_BASES)
    )
    run_ids = [m for m in (await session.scalars(running)).all() if m]
    chosen: dict[str, Release] = {}
    if run_ids:
        for row in (
            await session.scalars(select(Release).where(*scope, Release.manifest_id.in_(run_ids)))
        ).all():
            chosen[row.manifest_id] = row
    newest = select(Release).where(*scope).order_by(Release.epoch.desc(), Release.sequence.desc())
    for row in (await session.scalars(newest.limit(BASES))).all():
        chosen.setdefault(row.manifest_id, row)
    done = set(
        (
            await session.scalars(
                select(Patch.base_manifest_id).where(Patch.target_manifest_id == target.manifest_id)
            )
        ).all()
    )
    bases: list[Release | EmbeddedBundle] = [row for mid, row in chosen.items() if mid not in done]
    # The bundles shipped in binaries this release fits: a device's first update.
    fits = BinaryRange.parse(target.binary_range)
    embedded = await session.scalars(
        select(EmbeddedBundle).where(
            EmbeddedBundle.app_id == target.app_id, EmbeddedBundle.platform == target.platform
        )
    )
    for bundle in embedded.all():
        native = Version.parse_native(bundle.native_version)
        if bundle.base_id not in done and fits.contains(native):
            bases.append(bundle)
    return bases


def log_failure(what: str, release_id: int, exc: Exception) -> None:
    """Log why making ``what`` (patches, diffs) to a release failed: a full disk in one line."""
    if disk_full(exc):
        log.warning(
            "no %s to release %s: the disk is full (%s); devices get the full archive",
            what, release_id, exc,
        )  # fmt: skip
    else:
        log.error(
            "making %s to release %s failed; devices get the full archive",
            what, release_id, exc_info=exc,
        )  # fmt: skip


async def generate_patches(
    sessionmaker: async_sessionmaker[AsyncSession],
    store: BlobStore,
    active_releases: ActiveReleases,
    release_id: int,
    tmp_dir: Path,
    clock: Callable[[], datetime],
    max_expanded: int,
) -> list[Patch]:
    """Make the patches to release ``release_id``; return the rows added. Never raises.

    Releases whose files add up to more than ``max_expanded`` bytes get no
    patches (to them, or from them as a base); a warning names them.
    """
    try:
        return await _generate(
            sessionmaker, store, active_releases, release_id, tmp_dir, clock, max_expanded
        )
    except Exception as exc:  # noqa: BLE001 - logged; devices get the full archive
        log_failure("patches", release_id, exc)
        return []


async def _generate(
    sessionmaker: async_sessionmaker[AsyncSession],
    store: BlobStore,
    active_releases: ActiveReleases,
    release_id: int,
    tmp_dir: Path,
    clock: Callable[[], datetime],
    max_expanded: int,
) -> list[Patch]:
    async with sessionmaker() as session:
        target = await session.get(Release, release_id)
        if target is None or target.archive_length > MAX_ARCHIVE:
            return []
        bases = await _bases(session, target)
    if not bases:
        return []
    try:
        target_side = await extracted(store, target, max_expanded)
    except ExpandsTooFarError as exc:
        log.warning("no patches to release %s: %s (HOTPATCH_MAX_EXPANDED_BYTES)", target.id, exc)
        return []
    added: list[Patch] = []
    for base in bases:
        try:
            base_side = await extracted(store, base, max_expanded)
        except (HotPatchError, ValueError, OSError) as exc:
            log.warning("cannot read %s as a patch base: %s", base.id, exc)
            continue
        patch, stats = await asyncio.to_thread(make_patch, base_side, target_side)
        if len(patch) >= WORTH * target.archive_length:
            log.info("patch %s -> %s is not worth it (%d bytes)", base.id, target.id, len(patch))
            continue
        sha256 = await store_bytes(store, patch, tmp_dir)
        row = _patch_row(target, base_side.manifest_id, sha256, len(patch), clock())
        async with sessionmaker() as session:
            session.add(row)
            try:
                await session.commit()
            except IntegrityError:
                continue  # another process made the same patch first
        log.info("patch %s -> %s: %d bytes (%s)", base.id, target.id, len(patch), stats.ops)
        added.append(row)
    if added:
        await active_releases.invalidate(target.app_id, target.platform, target.channel)
    return added
