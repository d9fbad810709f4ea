"""The cleanup pass: stored blobs that nothing references, and leftovers of uploads.

A server process killed in the middle of a publish, or a database
connection lost during its commit, can leave an archive in the blob store
with no release row, and a half-received upload in the data directory's
``tmp`` folder. Nothing serves them, but they take space.
``hotpatch-server cleanup`` (:func:`clean_up`) removes each one that is
older than a grace period (an hour by default, so a publish in flight in
another process is never touched) and that no release, patch, CodePush diff
or Expo asset references, checked again just before it is deleted.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import attrs
from sqlalchemy import select, union
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hotpatch_server.models import CodePushDiff, ExpoAsset, Patch, Release
from hotpatch_server.storage.blobs import BlobStore, file_system_now

__all__ = ["CleanupReport", "clean_up", "referenced_blobs"]


@attrs.frozen
class CleanupReport:
    """What a cleanup pass found and did."""

    blobs: int
    unreferenced: list[str]
    removed: list[str]
    temporary_files: list[str]


async def referenced_blobs(session: AsyncSession, among: set[str] | None = None) -> set[str]:
    """Return the sha256 of every blob a row references (only those ``among``, if given)."""
    columns = (Release.archive_sha256, Patch.sha256, CodePushDiff.sha256, ExpoAsset.sha256)
    queries = []
    for column in columns:
        query = select(column.label("sha256"))
        if among is not None:
            query = query.where(column.in_(sorted(among)))
        queries.append(query)
    return set((await session.execute(union(*queries))).scalars())


async def clean_up(
    *,
    sessionmaker: async_sessionmaker[AsyncSession],
    store: BlobStore,
    temporary: Path,
    grace: timedelta,
    dry_run: bool = False,
) -> CleanupReport:
    """Remove blobs no row references and temporary files, older than ``grace``.

    Ages are measured on the store's own clock (the file system's, or the
    object store's last-modified time against the time it answers with).
    """
    stored = await store.listing()
    old = {sha256 for sha256, age in stored if age >= grace}
    async with sessionmaker() as session:
        unreferenced = old - await referenced_blobs(session, old if len(old) < 10_000 else None)
    removed: list[str] = []
    if unreferenced and not dry_run:
        # A publish that reuses one of these archives may have committed meanwhile.
        async with sessionmaker() as session:
            unreferenced -= await referenced_blobs(session, unreferenced)
        for sha256 in sorted(unreferenced):
            await store.delete(sha256)
            removed.append(sha256)
    leftovers = []
    if temporary.is_dir():
        now = file_system_now(temporary)
        for path in temporary.iterdir():
            if path.name.startswith(".clock-"):
                continue  # another pass's probe
            if path.is_file() and now - path.stat().st_mtime >= grace.total_seconds():
                leftovers.append(path.name)
                if not dry_run:
                    path.unlink(missing_ok=True)
    return CleanupReport(len(stored), sorted(unreferenced), removed, sorted(leftovers))
