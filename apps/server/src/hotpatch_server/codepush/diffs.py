"""CodePush diff updates: a zip of the changed files, for devices on a known release.

``react-native-code-push`` applies a *diff* when the downloaded zip holds
``hotcodepush.json`` (``{"deletedFiles": [...]}``): it copies the running
package, deletes the listed files, lays the zip's files over them, and then
checks the result against ``package_hash`` (``CodePushUpdateManager``,
``copyNecessaryFilesFromCurrentPackage``, ``verifyFolderHash``). A device
names its running package by its hash in every check, so the server offers
it the diff made from that package when there is one, and the whole archive
otherwise.

After each publish, the diffs to the new release from the channel's newest
releases are made in the background, from the signed file lists (which
files changed, which went away) and the new release's archive; a diff is
kept only if it is meaningfully smaller than the archive
(:data:`~hotpatch_server.patches.service.WORTH`). The zip is deterministic
(:func:`hotpatch_core.archive.write_archive`).
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Final

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hotpatch_core.archive import ArchiveInput, FileEntry, write_archive
from hotpatch_core.codepush import package_hash
from hotpatch_core.manifest import decode_manifest
from hotpatch_core.release import decode_release_envelope
from hotpatch_server.cache import ActiveReleases
from hotpatch_server.models import CodePushDiff, Release
from hotpatch_server.patches.service import (
    BASES,
    MAX_ARCHIVE,
    WORTH,
    ExpandsTooFarError,
    extracted,
    log_failure,
    store_bytes,
)
from hotpatch_server.storage.blobs import BlobStore

__all__ = ["DIFF_MANIFEST", "diff_zip", "generate_codepush_diffs"]

log = logging.getLogger("hotpatch_server")

#: The file that makes a CodePush download a diff.
DIFF_MANIFEST: Final = "hotcodepush.json"


def _files(release: Release) -> tuple[FileEntry, ...]:
    return decode_manifest(decode_release_envelope(release.manifest).payload).files


def diff_zip(
    base: tuple[FileEntry, ...], target: tuple[FileEntry, ...], read: Callable[[FileEntry], bytes]
) -> bytes:
    """Return the CodePush diff zip that turns a package of ``base`` into one of ``target``."""
    before = {(f.path, f.sha256) for f in base}
    kept = {f.path for f in target}
    changed = [f for f in target if (f.path, f.sha256) not in before]
    deleted = sorted(f.path for f in base if f.path not in kept)
    manifest = json.dumps({"deletedFiles": deleted}, separators=(",", ":")).encode()
    out = io.BytesIO()
    write_archive(
        [
            ArchiveInput.of_bytes(DIFF_MANIFEST, manifest),
            *(ArchiveInput.of_bytes(f.path, read(f)) for f in changed),
        ],
        out,
    )
    return out.getvalue()


async def _bases(session: AsyncSession, target: Release) -> list[Release]:
    newest = (
        select(Release)
        .where(
            Release.app_id == target.app_id,
            Release.platform == target.platform,
            Release.channel == target.channel,
            Release.id != target.id,
        )
        .order_by(Release.epoch.desc(), Release.sequence.desc())
        .limit(BASES)
    )
    return list((await session.scalars(newest)).all())


async def generate_codepush_diffs(
    sessionmaker: async_sessionmaker[AsyncSession],
    store: BlobStore,
    active_releases: ActiveReleases,
    release_id: int,
    tmp_dir: Path,
    clock: Callable[[], datetime],
    max_expanded: int,
) -> int:
    """Make the CodePush diffs to release ``release_id``; return how many. Never raises.

    A release whose files add up to more than ``max_expanded`` bytes gets none.
    """
    try:
        return await _generate(
            sessionmaker, store, active_releases, release_id, tmp_dir, clock, max_expanded
        )
    except ExpandsTooFarError as exc:
        log.warning(
            "no CodePush diffs to release %s: %s (HOTPATCH_MAX_EXPANDED_BYTES)", release_id, exc
        )
        return 0
    except Exception as exc:  # noqa: BLE001 - logged; devices get the full archive
        log_failure("CodePush diffs", release_id, exc)
        return 0


async def _generate(
    sessionmaker: async_sessionmaker[AsyncSession],
    store: BlobStore,
    active_releases: ActiveReleases,
    release_id: int,
    tmp_dir: Path,
    clock: Callable[[], datetime],
    max_expanded: int,
) -> int:
    async with sessionmaker() as session:
        target = await session.get(Release, release_id)
        if target is None or target.archive_length > MAX_ARCHIVE:
            return 0
        bases = await _bases(session, target)
        done = set(
            (
                await session.scalars(
                    select(CodePushDiff.base_hash).where(
                        CodePushDiff.target_manifest_id == target.manifest_id
                    )
                )
            ).all()
        )
    target_files = _files(target)
    target_hash = package_hash(target_files)
    side = None
    added = 0
    for base in bases:
        base_files = _files(base)
        base_hash = package_hash(base_files)
        if base_hash in done or base_hash == target_hash:
            continue
        done.add(base_hash)
        side = side or await extracted(store, target, max_expanded)
        data = diff_zip(base_files, target_files, side.read)
        if len(data) >= WORTH * target.archive_length:
            log.info(
                "CodePush diff %s -> %s is not worth it (%d bytes)", base.id, target.id, len(data)
            )
            continue
        sha256 = await store_bytes(store, data, tmp_dir)
        async with sessionmaker() as session:
            session.add(
                CodePushDiff(
                    target_manifest_id=target.manifest_id,
                    base_hash=base_hash,
                    sha256=sha256,
                    length=len(data),
                    created_at=clock(),
                )
            )
            try:
                await session.commit()
            except IntegrityError:
                continue  # another process made the same diff first
        added += 1
    if added:
        await active_releases.invalidate(target.app_id, target.platform, target.channel)
    return added
