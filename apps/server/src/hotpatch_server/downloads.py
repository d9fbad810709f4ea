"""The download route for the local-disk backend: signed, expiring, immutable, resumable."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from litestar import Request, get
from litestar.params import FromPath
from litestar.response import Stream
from sqlalchemy import update

from hotpatch_server.deps import BlobStoreDep, DbSession, Now
from hotpatch_server.errors import NoSuchBlobError
from hotpatch_server.models import Patch
from hotpatch_server.problems import Problem
from hotpatch_server.storage.blobs import LocalBlobStore

__all__ = ["download_blob", "read_range"]

_RANGE = re.compile(r"^bytes=([0-9]{0,18})-([0-9]{0,18})\Z")  # 18 digits: no int() overflow
_CHUNK = 256 * 1024


def _byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """Parse a single ``Range: bytes=a-b``; return inclusive bounds or None for the whole file."""
    if header is None:
        return None
    match = _RANGE.match(header.strip())
    if match is None or (not match[1] and not match[2]):
        raise Problem(416, "range-not-satisfiable", "only a single 'bytes=a-b' range is supported")
    if match[1]:
        start = int(match[1])
        end = min(int(match[2]), size - 1) if match[2] else size - 1
    else:
        start, end = max(size - int(match[2]), 0), size - 1
    if start > end or start >= size:
        raise Problem(
            416,
            "range-not-satisfiable",
            f"range outside the {size}-byte archive",
            headers={"Content-Range": f"bytes */{size}"},
        )
    return start, end


async def read_range(path: Path, start: int, end: int) -> AsyncIterator[bytes]:
    """Yield bytes ``start..end`` (inclusive) of ``path`` in chunks, off the event loop."""
    with path.open("rb") as handle:
        handle.seek(start)
        left = end - start + 1
        while left > 0:
            chunk = await asyncio.to_thread(handle.read, min(_CHUNK, left))
            if not chunk:
                return
            left -= len(chunk)
            yield chunk


@get("/blobs/{sha256:str}", include_in_schema=True, summary="Download an archive (signed URL)")
async def download_blob(
    request: Request[Any, Any, Any],
    sha256: FromPath[str],
    blob_store: BlobStoreDep,
    now: Now,
    db_session: DbSession,
) -> Stream:
    """Serve an archive from local storage: signed, expiring, immutable, Range-capable."""
    store = blob_store
    if not isinstance(store, LocalBlobStore):
        raise Problem(404, "not-found", "archives are served by the object store")
    store.signer.check(
        sha256, request.query_params.get("exp"), request.query_params.get("sig"), now
    )
    path = store.path(sha256)
    if not path.exists():
        raise NoSuchBlobError("no such archive")
    size = path.stat().st_size
    bounds = _byte_range(request.headers.get("range"), size)
    if bounds is None or bounds == (0, size - 1):
        # A patch served whole in one answer counts once. A Range request does
        # not: a one-byte request for the last byte must not count as a download.
        await db_session.execute(
            update(Patch).where(Patch.sha256 == sha256).values(downloads=Patch.downloads + 1)
        )
        await db_session.commit()
    headers = {
        "Accept-Ranges": "bytes",
        "Cache-Control": "public, max-age=31536000, immutable",
        "ETag": f'"{sha256}"',
    }
    if bounds is None:
        headers["Content-Length"] = str(size)
        return Stream(read_range(path, 0, size - 1), media_type="application/zip", headers=headers)
    start, end = bounds
    headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    headers["Content-Length"] = str(end - start + 1)
    return Stream(
        read_range(path, start, end), status_code=206, media_type="application/zip", headers=headers
    )
