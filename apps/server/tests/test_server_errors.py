"""The server's domain errors: one table maps each to the problem a client gets."""

from __future__ import annotations

import pytest

from hotpatch_core.errors import ExpiredError, HotPatchError, KeyScopeError, RollbackError
from hotpatch_server import errors
from hotpatch_server.problems import problem_for
from hotpatch_server.testing import Server

EXPECTED = {
    errors.StorageUnavailableError: (503, "storage-unavailable", "5"),
    errors.DiskFullError: (507, "insufficient-storage", "60"),
    errors.UnsignedUrlError: (403, "forbidden", None),
    errors.UrlExpiredError: (410, "url-expired", None),
    errors.NoSuchBlobError: (404, "not-found", None),
    errors.NotFoundError: (404, "not-found", None),
    errors.InvalidInputError: (422, "invalid", None),
    errors.VersionExistsError: (409, "version-exists", None),
    errors.PatchExistsError: (409, "patch-exists", None),
    errors.PatchRejectedError: (422, "invalid-patch", None),
    errors.ContentMismatchError: (422, "content-mismatch", None),
    errors.TargetMismatchError: (422, "identity-mismatch", None),
    errors.MandatoryIsSignedError: (422, "mandatory-is-signed", None),
    errors.AppExistsError: (409, "app-exists", None),
    errors.RootConflictError: (409, "root-conflict", None),
    errors.EmbeddedExistsError: (409, "embedded-exists", None),
    errors.TooLargeInputError: (413, "too-large", None),
    errors.NotExpoReleaseError: (422, "not-expo-release", None),
    errors.ExpoSignatureError: (422, "bad-signature", None),
    errors.ExpoUpdateExistsError: (409, "expo-update-exists", None),
    errors.DirectiveNotNewerError: (409, "directive-not-newer", None),
    errors.UnauthenticatedError: (401, "unauthorized", None),
    errors.ForbiddenError: (403, "forbidden", None),
    errors.DeviceInputError: (400, "invalid", None),
    errors.UnsignedUpdateError: (409, "unsigned-update", None),
}


def test_every_server_error_has_its_row() -> None:
    """A new domain error without a row would be answered as a generic 400: none is."""
    wrapping = {errors.RejectedFieldError}  # answered as the core error it wraps
    assert set(errors.ServerError.__subclasses__()) == set(EXPECTED) | wrapping


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (RollbackError("not above"), (409, "sequence-not-increasing")),
        (ExpiredError("expired"), (422, "expired")),
        (KeyScopeError("not yours"), (403, "key-out-of-scope")),
    ],
)
def test_a_rejected_field_is_answered_as_the_core_error_it_wraps(
    error: HotPatchError, expected: tuple[int, str]
) -> None:
    """The core's reason decides the status; the field names what the client sent wrong."""
    problem = problem_for(errors.RejectedFieldError(error, "manifest"))
    assert (problem.status, problem.kind, problem.field) == (*expected, "manifest")
    assert problem.detail == str(error)


def test_a_field_named_by_a_service_reaches_the_problem() -> None:
    """Services name the request field at fault; the problem carries it."""
    problem = problem_for(errors.InvalidInputError("appId is required", field="appId"))
    assert (problem.status, problem.field) == (422, "appId")


@pytest.mark.parametrize(("kind", "expected"), EXPECTED.items())
def test_each_server_error_maps_to_its_problem(
    kind: type[errors.ServerError], expected: tuple[int, str, str | None]
) -> None:
    """Status, type slug, the message as detail, and Retry-After where waiting helps."""
    problem = problem_for(kind("what happened"))
    retry_after = (problem.headers or {}).get("Retry-After")
    assert (problem.status, problem.kind, retry_after) == expected
    assert problem.detail == "what happened"


ENVELOPE_DETAIL = "manifest must be base64 of the envelope"


@pytest.mark.parametrize(
    ("call", "body", "field", "detail"),
    [
        ("PATCH rollback", {"manifest": "not base64!"}, "manifest", ENVELOPE_DETAIL),
        ("POST promote", {"manifest": "é"}, "manifest", ENVELOPE_DETAIL),
        ("POST patches", {"baseManifestId": "a" * 64, "patch": "%%"}, "patch",
         "patch must be base64"),
    ],
)  # fmt: skip
def test_a_field_that_is_not_base64_is_a_422_naming_it_and_changes_nothing(
    server: Server, call: str, body: dict[str, str], field: str, detail: str
) -> None:
    """Every base64 request field is read the same way: 422, the field, no new row."""
    release = server.published(1)
    rows = server.release_rows()
    method, route = call.split()
    answer = server.client.request(
        method, f"/releases/{release['id']}/{route}", json=body, headers=server.auth()
    )
    assert answer.status_code == 422, answer.text
    assert (answer.json()["field"], answer.json()["detail"]) == (field, detail)
    assert server.release_rows() == rows


def test_an_authentication_challenge_asks_for_a_bearer_credential() -> None:
    """A missing credential is a 401 with WWW-Authenticate; a refused one names no scheme."""
    asked = problem_for(errors.UnauthenticatedError("send a bearer token", challenge=True))
    assert (asked.status, asked.headers) == (401, {"WWW-Authenticate": "Bearer"})
    assert problem_for(errors.UnauthenticatedError("revoked")).headers == {}
