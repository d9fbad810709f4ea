"""Archives in S3-compatible object storage (AWS S3, Cloudflare R2, MinIO).

Objects live at ``archives/<sha256>`` with an immutable cache policy; devices
download them through presigned URLs straight from the bucket, so bundles
never stream through the server process. boto3 is synchronous, so every call
runs in a worker thread. The bucket must exist; the server never creates or
reconfigures buckets.

Faults (docs/reliability.md): each call connects and waits at most
``timeout`` seconds per attempt and makes 3 attempts with backoff (botocore's
standard retry mode, which retries throttling, 5xx and connection errors,
all safe here: objects are immutable and named by their content). A call
that still fails raises :class:`~hotpatch_server.errors.StorageUnavailableError`
(a 503 ``storage-unavailable`` problem with ``Retry-After``); the publish
that needed it keeps nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from hotpatch_server.errors import StorageUnavailableError

__all__ = ["S3BlobStore"]

_IMMUTABLE = "public, max-age=31536000, immutable"
_SHA = re.compile(r"[0-9a-f]{64}")
_T = TypeVar("_T")


async def _call(work: Callable[[], _T]) -> _T:
    """Run blocking ``work`` in a thread; an object-store failure is StorageUnavailableError."""
    try:
        return await asyncio.to_thread(work)
    except (BotoCoreError, ClientError) as exc:
        raise StorageUnavailableError(f"object storage failed: {exc}") from None


def _store_now(answer: dict[str, Any]) -> datetime:
    """Return the object store's time from an answer's ``Date`` header (else this machine's)."""
    header = answer.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
    if isinstance(header, str):
        with contextlib.suppress(TypeError, ValueError):
            stamped = parsedate_to_datetime(header)
            if stamped.tzinfo is not None:
                return stamped
    return datetime.now(UTC)


class S3BlobStore:
    """Content-addressed archives in one bucket."""

    def __init__(
        self,
        bucket: str,
        *,
        endpoint: str | None,
        access_key: str | None,
        secret_key: str | None,
        url_lifetime: int,
        region: str = "auto",
        timeout: float = 10.0,
    ) -> None:
        """Use ``bucket`` at ``endpoint`` (None: AWS); presigned URLs live ``url_lifetime`` s.

        ``timeout`` bounds connecting and each wait for data, per attempt.
        """
        self.bucket = bucket
        self.url_lifetime = url_lifetime
        self._client: Any = boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            region_name=None if region == "auto" and endpoint is None else region,
            config=Config(
                signature_version="s3v4",
                retries={"max_attempts": 3, "mode": "standard"},
                connect_timeout=timeout,
                read_timeout=timeout,
            ),
        )

    @staticmethod
    def key(sha256: str) -> str:
        """Return the object key of an archive."""
        return f"archives/{sha256}"

    def _exists(self, sha256: str) -> bool:
        try:
            self._client.head_object(Bucket=self.bucket, Key=self.key(sha256))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True

    def _put(self, sha256: str, source: Path) -> bool:
        if self._exists(sha256):
            source.unlink(missing_ok=True)
            return False
        self._client.upload_file(
            str(source),
            self.bucket,
            self.key(sha256),
            ExtraArgs={"ContentType": "application/zip", "CacheControl": _IMMUTABLE},
        )
        source.unlink(missing_ok=True)
        return True

    async def put(self, sha256: str, source: Path) -> bool:
        """Upload ``source`` (multipart for large files) unless the object exists."""
        return await _call(lambda: self._put(sha256, source))

    async def exists(self, sha256: str) -> bool:
        """Return whether the object exists."""
        return await _call(lambda: self._exists(sha256))

    async def delete(self, sha256: str) -> None:
        """Remove the object (undoing a failed publish)."""
        await _call(lambda: self._client.delete_object(Bucket=self.bucket, Key=self.key(sha256)))

    async def read(self, sha256: str, limit: int) -> bytes:
        """Return an object's bytes (at most ``limit``; a larger one raises ValueError)."""

        def load() -> bytes:
            body = self._client.get_object(Bucket=self.bucket, Key=self.key(sha256))["Body"]
            data: bytes = body.read(limit + 1)
            if len(data) > limit:
                msg = f"object {sha256[:12]} exceeds {limit} bytes"
                raise ValueError(msg)
            return data

        return await _call(load)

    async def listing(self) -> list[tuple[str, timedelta]]:
        """Return every archive object's sha256 and age (since its last modification).

        Ages are measured on the store's own clock (each listing answer's
        ``Date`` header), so a server whose clock runs ahead never sees a
        fresh upload as old.
        """

        def scan() -> list[tuple[str, timedelta]]:
            found = []
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix="archives/"
            )
            for page in pages:
                now = _store_now(page)
                for item in page.get("Contents", []):
                    name = str(item["Key"]).removeprefix("archives/")
                    if _SHA.fullmatch(name):
                        found.append((name, now - item["LastModified"]))
            return found

        return await _call(scan)

    def url(self, sha256: str, now: datetime) -> str:
        """Return a presigned GET URL straight at the bucket (no I/O: signed locally)."""
        del now  # presigning uses the SDK's clock
        url: str = self._client.generate_presigned_url(
            "get_object",
            Params={"Bucket": self.bucket, "Key": self.key(sha256)},
            ExpiresIn=self.url_lifetime,
        )
        return url
