"""The server's own domain errors, under the core's one :class:`HotPatchError` tree.

Services (storage, download URLs) raise these and know nothing of HTTP;
:func:`hotpatch_server.problems.problem_for` maps each to its problem+json
status, slug and ``Retry-After`` in one table, beside the core's errors.
"""

from __future__ import annotations

from typing import ClassVar

from hotpatch_core.errors import HotPatchError

__all__ = [
    "DiskFullError",
    "NoSuchBlobError",
    "ServerError",
    "StorageUnavailableError",
    "UnsignedUrlError",
    "UrlExpiredError",
]


class ServerError(HotPatchError):
    """A request the server could not serve, for a reason its client should hear."""

    #: Seconds a client should wait before trying again, when waiting helps.
    retry_after: ClassVar[int | None] = None


class StorageUnavailableError(ServerError):
    """The object store failed (5xx, timeout, unreachable) after its retries."""

    retry_after = 5


class DiskFullError(ServerError):
    """The server's data directory filled up; nothing was kept."""

    retry_after = 60


class UnsignedUrlError(ServerError):
    """A download URL without a signature, or with one that does not match."""


class UrlExpiredError(ServerError):
    """A signed download URL past its expiry: the device checks again for a fresh one."""


class NoSuchBlobError(ServerError):
    """No archive or patch by that name is stored."""
