"""Content-addressed archive storage and the download URLs devices use.

Archives live under their sha256 and never change, so URLs are immutable and
cacheable (ARCHITECTURE.md idea 5). Two backends:

- :class:`LocalBlobStore` keeps files under the data directory; devices
  download them from ``/blobs/{sha256}`` with an HMAC-signed, expiring query
  (``exp``, ``sig``; constant-time compare; expired -> 410, tampered -> 403)
  and HTTP Range support for resuming (:mod:`hotpatch_server.downloads`).
- S3 / R2 (presigned URLs straight at the bucket) — see :mod:`hotpatch_server.storage.s3`.

The server is trusted for availability, not integrity: devices verify every
byte against the signed manifest anyway.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import re
import tempfile
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol

from hotpatch_core.wire import parse_decimal
from hotpatch_server.errors import NoSuchBlobError, UnsignedUrlError, UrlExpiredError

__all__ = ["BlobStore", "LocalBlobStore", "UrlSigner"]

_SHA = re.compile(r"^[0-9a-f]{64}\Z")


class BlobStore(Protocol):
    """Where archives live, by sha256."""

    async def put(self, sha256: str, source: Path) -> bool:
        """Store ``source`` under ``sha256``; return False if it was already there."""

    async def exists(self, sha256: str) -> bool:
        """Return whether ``sha256`` is stored."""

    async def delete(self, sha256: str) -> None:
        """Remove ``sha256`` (used only to undo a failed publish)."""

    async def read(self, sha256: str, limit: int) -> bytes:
        """Return a blob's bytes, at most ``limit`` (for making patches, off the request path)."""

    def url(self, sha256: str, now: datetime) -> str:
        """Return a URL a device can download ``sha256`` from."""

    async def listing(self) -> list[tuple[str, timedelta]]:
        """Return every stored blob's sha256 and age (for the cleanup pass)."""


def file_system_now(directory: Path) -> float:
    """Return the current time as the file system in ``directory`` stamps files.

    Ages of files are measured against it rather than the process clock, which
    may differ (a network file system, a container's clock).
    """
    with tempfile.NamedTemporaryFile(dir=directory, prefix=".clock-") as probe:
        return os.fstat(probe.fileno()).st_mtime


class UrlSigner:
    """HMAC-signs ``(sha256, expiry)`` pairs for local download URLs."""

    def __init__(self, secret: bytes, lifetime: int) -> None:
        """Sign with a key derived from ``secret``; URLs live ``lifetime`` seconds."""
        self._key = hmac.new(secret, b"hotpatch-download-url", hashlib.sha256).digest()
        self.lifetime = lifetime
        self._recent: dict[str, tuple[int, str]] = {}

    def signature(self, sha256: str, expires: int) -> str:
        """Return the hex HMAC of ``sha256`` and ``expires``."""
        return hmac.new(self._key, f"{sha256}:{expires}".encode(), hashlib.sha256).hexdigest()

    def query(self, sha256: str, now: datetime) -> str:
        """Return ``exp=...&sig=...`` for a URL valid at least ``lifetime - 60`` s from ``now``.

        Expiries are rounded up to the minute, so one signature serves every
        device for a minute (the check signs nothing per request).
        """
        expires = (int(now.timestamp()) // 60 + 1) * 60 + self.lifetime - 60
        cached = self._recent.get(sha256)
        if cached is not None and cached[0] == expires:
            return cached[1]
        query = f"exp={expires}&sig={self.signature(sha256, expires)}"
        if len(self._recent) > 1024:
            self._recent.clear()
        self._recent[sha256] = (expires, query)
        return query

    def check(self, sha256: str, exp: str | None, sig: str | None, now: datetime) -> None:
        """Raise UnsignedUrlError for a missing or wrong signature, UrlExpiredError past expiry."""
        expires = parse_decimal(exp)
        if expires is None or not sig:
            raise UnsignedUrlError("download URL is not signed")
        if not hmac.compare_digest(self.signature(sha256, expires), sig):
            raise UnsignedUrlError("download URL signature does not match")
        if expires <= now.timestamp():
            raise UrlExpiredError("download URL expired; check for updates again")


class LocalBlobStore:
    """Archives on local disk: ``<root>/<sha[:2]>/<sha>``, written atomically."""

    def __init__(self, root: Path, signer: UrlSigner, public_url: str) -> None:
        """Keep blobs under ``root``; build URLs on ``public_url``."""
        self.root = root
        self.signer = signer
        self.public_url = public_url

    def path(self, sha256: str) -> Path:
        """Where ``sha256`` lives on disk."""
        if not _SHA.match(sha256):
            raise NoSuchBlobError("no such archive")
        return self.root / sha256[:2] / sha256

    async def put(self, sha256: str, source: Path) -> bool:
        """Move ``source`` into place (fsynced) unless the blob exists already."""
        return await asyncio.to_thread(self._put, sha256, source)

    def _put(self, sha256: str, source: Path) -> bool:
        target = self.path(sha256)
        if target.exists():
            source.unlink(missing_ok=True)
            return False
        target.parent.mkdir(parents=True, exist_ok=True)
        with source.open("rb") as handle:
            os.fsync(handle.fileno())
        source.replace(target)
        directory = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
        return True

    async def exists(self, sha256: str) -> bool:
        """Return whether the blob is on disk."""
        return self.path(sha256).exists()

    async def delete(self, sha256: str) -> None:
        """Remove the blob if present."""
        self.path(sha256).unlink(missing_ok=True)

    async def read(self, sha256: str, limit: int) -> bytes:
        """Return a blob's bytes (at most ``limit``; larger blobs raise :class:`ValueError`)."""

        def load() -> bytes:
            with self.path(sha256).open("rb") as handle:
                data = handle.read(limit + 1)
            if len(data) > limit:
                msg = f"blob {sha256[:12]} exceeds {limit} bytes"
                raise ValueError(msg)
            return data

        return await asyncio.to_thread(load)

    async def listing(self) -> list[tuple[str, timedelta]]:
        """Return every blob on disk and its age, measured on the file system's own clock."""

        def scan() -> list[tuple[str, timedelta]]:
            now = file_system_now(self.root)
            return [
                (path.name, timedelta(seconds=now - path.stat().st_mtime))
                for path in self.root.glob("??/*")
                if _SHA.match(path.name) and path.parent.name == path.name[:2]
            ]

        if not self.root.is_dir():
            return []
        return await asyncio.to_thread(scan)

    def url(self, sha256: str, now: datetime) -> str:
        """Return a signed, expiring URL of the download route."""
        return f"{self.public_url}/blobs/{sha256}?{self.signer.query(sha256, now)}"
