"""The bundle embedded in a native binary, registered as the base of a device's first patch.

A device that has never updated runs the bundle its binary shipped with.
Once that bundle is registered here (``hotpatch embedded``), the server can
make a patch from it to each channel's newest release, so even a first
update is a patch. Registration checks the archive against its file list
with the strict extractor and stores it like any archive; the errors are
the server's domain errors (:mod:`hotpatch_server.errors`).
"""

from __future__ import annotations

import asyncio
import base64
import io
from datetime import datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from hotpatch_core.archive import ArchiveLimits, FileEntry, MemorySink, extract_archive
from hotpatch_core.errors import HotPatchError
from hotpatch_core.publishing import EmbeddedRegistration
from hotpatch_core.versions import BinaryRange, Version
from hotpatch_server.errors import EmbeddedExistsError, InvalidInputError, TooLargeInputError
from hotpatch_server.models import EmbeddedBundle, Release
from hotpatch_server.patches.service import (
    MAX_ARCHIVE,
    ExpandsTooFarError,
    check_expanded,
    store_bytes,
)
from hotpatch_server.storage.blobs import BlobStore

__all__ = ["newest_fitting", "register_embedded_bundle"]


async def register_embedded_bundle(
    session: AsyncSession,
    store: BlobStore,
    app_id: str,
    upload: EmbeddedRegistration,
    tmp_dir: Path,
    now: datetime,
    max_expanded: int,
) -> EmbeddedBundle:
    """Check and store the bundle embedded in one native version; raise a domain error if bad.

    Its files may add up to at most ``max_expanded`` bytes: they are
    expanded in memory to check them, and later to make patches from them.
    """
    from hotpatch_diff import embedded_id  # noqa: PLC0415

    if upload.platform not in {"android", "ios"}:
        raise InvalidInputError("platform is android or ios", field="platform")
    try:
        Version.parse_native(upload.native_version)
        files = tuple(FileEntry(f.path, f.sha256, f.size) for f in upload.files)
    except (HotPatchError, ValueError) as exc:
        raise InvalidInputError(f"not a valid embedded bundle: {exc}", field="archive") from None
    try:
        check_expanded("the embedded bundle", files, max_expanded)
    except ExpandsTooFarError as exc:
        message = (
            f"the server does not expand bundles this large: {exc} (HOTPATCH_MAX_EXPANDED_BYTES)"
        )
        raise TooLargeInputError(message, field="files") from None
    try:
        data = base64.b64decode(upload.archive.encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError) as exc:
        raise InvalidInputError(f"not a valid embedded bundle: {exc}", field="archive") from None
    if len(data) > MAX_ARCHIVE:
        message = f"the archive exceeds {MAX_ARCHIVE} bytes"
        raise TooLargeInputError(message, field="archive")
    try:
        limits = ArchiveLimits(max_files=max(1, len(files)))
        await asyncio.to_thread(
            extract_archive, io.BytesIO(data), files, MemorySink(), limits=limits
        )
    except (HotPatchError, ValueError) as exc:
        raise InvalidInputError(f"not a valid embedded bundle: {exc}", field="archive") from None
    sha256 = await store_bytes(store, data, tmp_dir)
    bundle = EmbeddedBundle(
        app_id=app_id,
        platform=upload.platform,
        native_version=upload.native_version,
        base_id=embedded_id(app_id, upload.platform, upload.native_version, files),
        files=[{"path": f.path, "sha256": f.sha256, "size": f.size} for f in files],
        archive_sha256=sha256,
        archive_length=len(data),
        created_at=now,
    )
    session.add(bundle)
    try:
        await session.flush()
    except IntegrityError:
        message = f"native version {upload.native_version} already has an embedded bundle"
        raise EmbeddedExistsError(message) from None
    return bundle


async def newest_fitting(session: AsyncSession, bundle: EmbeddedBundle) -> list[int]:
    """Return the newest active release of each channel whose binary range fits ``bundle``."""
    rows = await session.scalars(
        select(Release)
        .where(
            Release.app_id == bundle.app_id,
            Release.platform == bundle.platform,
            Release.active.is_(True),
        )
        .order_by(Release.epoch.desc(), Release.sequence.desc())
    )
    native = Version.parse_native(bundle.native_version)
    newest: dict[str, int] = {}
    for row in rows.all():
        if row.channel not in newest and BinaryRange.parse(row.binary_range).contains(native):
            newest[row.channel] = row.id
    return list(newest.values())
