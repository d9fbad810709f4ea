"""Failures of the device agent itself, below :class:`~hotpatch_core.errors.HotPatchError`.

Verification failures keep their core types (``BadSignatureError``,
``RollbackError``, ``HashMismatchError`` ...); these add what only a device
meets::

    HotPatchError
    └── AgentError
        ├── NetworkError         the server could not be reached or answered badly
        ├── SlowDownloadError    below the minimum throughput or past the deadline (A9)
        ├── StorageError         the device's disk failed (full, read-only, I/O error)
        └── AgentLockedError     another agent uses the same storage directory
"""

from __future__ import annotations

from hotpatch_core.errors import HotPatchError

__all__ = [
    "AgentError",
    "AgentLockedError",
    "NetworkError",
    "SlowDownloadError",
    "StorageError",
]


class AgentError(HotPatchError):
    """A device-side failure that is not about the signed content."""


class NetworkError(AgentError):
    """The server could not be reached, or answered with an error.

    ``retryable`` says whether trying again later may work.
    """

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        """Describe the failure; transient by default."""
        super().__init__(message)
        self.retryable = retryable


class SlowDownloadError(AgentError):
    """The download fell below the minimum throughput or ran past its deadline (A9)."""


class StorageError(AgentError):
    """The device's storage failed; nothing half-written is ever used."""


class AgentLockedError(AgentError):
    """Another agent holds the storage directory's lock."""
