"""The server's own domain errors, under the core's one :class:`HotPatchError` tree.

Services (releases, storage, download URLs) raise these and know nothing
of HTTP; :func:`hotpatch_server.problems.problem_for` maps each to its
problem+json status, slug and ``Retry-After`` in one table, beside the
core's errors. ``field`` names the request field at fault, when one is.
"""

from __future__ import annotations

from typing import ClassVar

from hotpatch_core import errors as core
from hotpatch_core.errors import HotPatchError

__all__ = [
    "AppExistsError",
    "ContentMismatchError",
    "DeviceInputError",
    "DirectiveNotNewerError",
    "DiskFullError",
    "EmbeddedExistsError",
    "ExpoSignatureError",
    "ExpoUpdateExistsError",
    "ForbiddenError",
    "InvalidInputError",
    "MandatoryIsSignedError",
    "NoSuchBlobError",
    "NotExpoReleaseError",
    "NotFoundError",
    "PatchExistsError",
    "PatchRejectedError",
    "RejectedFieldError",
    "RootConflictError",
    "ServerError",
    "StorageUnavailableError",
    "TargetMismatchError",
    "TooLargeInputError",
    "UnauthenticatedError",
    "UnsignedUpdateError",
    "UnsignedUrlError",
    "UrlExpiredError",
    "VersionExistsError",
]


class ServerError(HotPatchError):
    """A request the server could not serve, for a reason its client should hear."""

    #: Seconds a client should wait before trying again, when waiting helps.
    retry_after: ClassVar[int | None] = None

    def __init__(self, message: str, *, field: str | None = None) -> None:
        """Say what went wrong and, when it is one, which request field caused it."""
        super().__init__(message)
        self.field = field


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


class NotFoundError(ServerError):
    """No app, release or other record by that id (or none the caller may see)."""


class InvalidInputError(ServerError):
    """A request field a service cannot use: missing, malformed or out of range."""


class VersionExistsError(ServerError):
    """The channel has a release of that version already (a rollback takes a new sequence)."""


class PatchExistsError(ServerError):
    """A patch between these two releases is stored already."""


class PatchRejectedError(ServerError):
    """An uploaded patch is not smaller than the archive, or does not rebuild the release."""


class ContentMismatchError(ServerError):
    """A rollback or promote manifest points at other content than the release it names."""


class TargetMismatchError(ServerError):
    """A signed manifest is for another app, platform or channel than it was sent to."""


class MandatoryIsSignedError(ServerError):
    """A form field contradicts the signed manifest's ``mandatory`` (it is set when signing)."""


class RejectedFieldError(ServerError):
    """A request field the core refused: ``error`` says why (its type decides the status)."""

    def __init__(self, error: core.HotPatchError, field: str) -> None:
        """Name the field the core's ``error`` is about."""
        super().__init__(str(error), field=field)
        self.error = error


class AppExistsError(ServerError):
    """An app by that id exists already (its trust root is rotated, never replaced)."""


class RootConflictError(ServerError):
    """That version of the app's trust root was installed already (a concurrent rotation)."""


class EmbeddedExistsError(ServerError):
    """That native version's embedded bundle is registered already."""


class NotExpoReleaseError(ServerError):
    """A release expo-updates cannot be served (no launch bundle, or files it cannot name)."""


class ExpoSignatureError(ServerError):
    """An Expo code-signing signature that does not verify with its certificate's key."""


class ExpoUpdateExistsError(ServerError):
    """The release serves another Expo update already; an update never changes."""


class DirectiveNotNewerError(ServerError):
    """An Expo roll-back directive not committed later than the one in force."""


class TooLargeInputError(ServerError):
    """An upload, or what it expands to, larger than the server takes (its settings say so)."""


class UnauthenticatedError(ServerError):
    """No credential, or one that is unknown, malformed, expired or revoked.

    ``challenge`` asks the client for a bearer credential (``WWW-Authenticate``).
    """

    def __init__(self, message: str, *, challenge: bool = False) -> None:
        """Say why the credential is not accepted."""
        super().__init__(message)
        self.challenge = challenge


class ForbiddenError(ServerError):
    """A valid credential whose role or apps do not allow this action."""


class DeviceInputError(ServerError):
    """A CodePush or Expo device request the server cannot use (those clients expect a 400)."""


class UnsignedUpdateError(ServerError):
    """An Expo device expects a signature with a key id the update is not signed with."""
