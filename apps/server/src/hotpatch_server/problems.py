"""Errors as RFC 9457 problem details (``application/problem+json``).

Handlers raise :class:`Problem` (or a core ``HotPatchError``, mapped by
:func:`problem_for`); :func:`problem_handler` renders them with the field at
fault. Bad input never becomes a 500.
"""

from __future__ import annotations

import errno
import logging
from typing import Any

from litestar import Request, Response
from litestar.exceptions import HTTPException, NotAuthorizedException, ValidationException

from hotpatch_core import errors as core
from hotpatch_server.errors import (
    AppExistsError,
    ContentMismatchError,
    DeviceInputError,
    DirectiveNotNewerError,
    DiskFullError,
    EmbeddedExistsError,
    ExpoSignatureError,
    ExpoUpdateExistsError,
    ForbiddenError,
    InvalidInputError,
    MandatoryIsSignedError,
    NoSuchBlobError,
    NotExpoReleaseError,
    NotFoundError,
    PatchExistsError,
    PatchRejectedError,
    RejectedFieldError,
    RootConflictError,
    ServerError,
    StorageUnavailableError,
    TargetMismatchError,
    TooLargeInputError,
    UnauthenticatedError,
    UnsignedUpdateError,
    UnsignedUrlError,
    UrlExpiredError,
    VersionExistsError,
)

__all__ = [
    "Problem",
    "disk_full",
    "http_exception_handler",
    "insufficient_storage",
    "problem_for",
    "problem_handler",
    "unexpected_error_handler",
]

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger("hotpatch_server")


class Problem(Exception):  # noqa: N818 - named for what it renders, RFC 9457
    """An HTTP error with a stable ``type`` slug, a human ``detail`` and optional ``field``."""

    def __init__(
        self,
        status: int,
        kind: str,
        detail: str,
        *,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Describe the problem; ``kind`` becomes the ``type`` URI's last segment."""
        super().__init__(detail)
        self.status = status
        self.kind = kind
        self.detail = detail
        self.field = field
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        """Return the problem document."""
        document: dict[str, Any] = {
            "type": f"https://hotpatch.dev/problems/{self.kind}",
            "title": self.kind.replace("-", " "),
            "status": self.status,
            "detail": self.detail,
        }
        if self.field:
            document["field"] = self.field
        return document


# Which HTTP status each core error earns when it comes from a request body.
_STATUS: list[tuple[type[core.HotPatchError], int, str]] = [
    (core.TooLargeError, 413, "too-large"),
    (core.KeyScopeError, 403, "key-out-of-scope"),
    (core.ExpiredError, 422, "expired"),
    (core.VerificationError, 422, "signature-rejected"),
    (core.IdentityMismatchError, 422, "identity-mismatch"),
    (core.EpochError, 409, "wrong-epoch"),
    (core.RollbackError, 409, "sequence-not-increasing"),
    (core.EquivocationError, 409, "sequence-taken"),
    (core.HashMismatchError, 422, "hash-mismatch"),
    (core.ArchiveError, 422, "archive-rejected"),
    (core.FormatError, 400, "malformed"),
    # The server's own services:
    (StorageUnavailableError, 503, "storage-unavailable"),
    (DiskFullError, 507, "insufficient-storage"),
    (UnsignedUrlError, 403, "forbidden"),
    (UrlExpiredError, 410, "url-expired"),
    (NoSuchBlobError, 404, "not-found"),
    (NotFoundError, 404, "not-found"),
    (InvalidInputError, 422, "invalid"),
    (VersionExistsError, 409, "version-exists"),
    (PatchExistsError, 409, "patch-exists"),
    (PatchRejectedError, 422, "invalid-patch"),
    (ContentMismatchError, 422, "content-mismatch"),
    (TargetMismatchError, 422, "identity-mismatch"),
    (MandatoryIsSignedError, 422, "mandatory-is-signed"),
    (AppExistsError, 409, "app-exists"),
    (RootConflictError, 409, "root-conflict"),
    (EmbeddedExistsError, 409, "embedded-exists"),
    (UnauthenticatedError, 401, "unauthorized"),
    (ForbiddenError, 403, "forbidden"),
    (DeviceInputError, 400, "invalid"),
    (UnsignedUpdateError, 409, "unsigned-update"),
    (TooLargeInputError, 413, "too-large"),
    (NotExpoReleaseError, 422, "not-expo-release"),
    (ExpoSignatureError, 422, "bad-signature"),
    (ExpoUpdateExistsError, 409, "expo-update-exists"),
    (DirectiveNotNewerError, 409, "directive-not-newer"),
]


def problem_for(error: core.HotPatchError, field: str | None = None) -> Problem:
    """Map a core or server error to the problem it is for an HTTP client."""
    if isinstance(error, RejectedFieldError):
        return problem_for(error.error, field or error.field)
    wait = error.retry_after if isinstance(error, ServerError) else None
    headers = None if wait is None else {"Retry-After": str(wait)}
    if isinstance(error, UnauthenticatedError) and error.challenge:
        headers = {"WWW-Authenticate": "Bearer"}
    for kind, status, slug in _STATUS:
        if isinstance(error, kind):
            schema_field = getattr(error, "field", None) or None
            return Problem(status, slug, str(error), field=field or schema_field, headers=headers)
    return Problem(400, "bad-request", str(error), field=field)


def problem_handler(_request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """Render a :class:`Problem` or core error as problem+json."""
    problem = exc if isinstance(exc, Problem) else problem_for(exc)  # type: ignore[arg-type]
    return Response(
        problem.body(),
        status_code=problem.status,
        media_type=PROBLEM_JSON,
        headers=problem.headers,
    )


def disk_full(exc: BaseException) -> bool:
    """Return whether ``exc`` says a file system (or a quota on it) is full."""
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


def insufficient_storage() -> DiskFullError:
    """Return the error a request gets when the server's disk filled up under it."""
    return DiskFullError("the server's disk is full; nothing was kept, try again later")


def unexpected_error_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """Log an unexpected error with its traceback; answer a bare 500 problem.

    A full disk is not unexpected: one warning line, and 507 (insufficient storage).
    """
    if disk_full(exc):
        log.warning("disk full on %s %s: %s", request.method, request.url.path, exc)
        return problem_handler(request, insufficient_storage())
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    problem = Problem(500, "internal-error", "the server failed; the error was logged")
    return problem_handler(request, problem)


def http_exception_handler(_request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    """Render Litestar's own errors (validation, 401, 404, 413, ...) as problem+json."""
    assert isinstance(exc, HTTPException)  # noqa: S101 - registered for HTTPException only
    if exc.status_code >= 500:
        # An unexpected failure: keep the traceback for operators, not for clients.
        log.error(
            "unhandled error on %s %s",
            _request.method,
            _request.url.path,
            exc_info=exc.__cause__ or exc,
        )
    field = None
    detail = exc.detail
    if isinstance(exc, ValidationException) and isinstance(exc.extra, list) and exc.extra:
        first = exc.extra[0]
        if isinstance(first, dict):
            field = str(first.get("key") or "") or None
            detail = str(first.get("message") or detail)
    kind = {
        400: "bad-request",
        401: "unauthorized",
        403: "forbidden",
        404: "not-found",
        405: "method-not-allowed",
        413: "too-large",
        429: "rate-limited",
    }.get(exc.status_code, "error")
    if isinstance(exc, NotAuthorizedException):
        kind = "unauthorized"
    problem = Problem(exc.status_code, kind, detail, field=field, headers=dict(exc.headers or {}))
    return problem_handler(_request, problem)
