"""The server's domain errors: one table maps each to the problem a client gets."""

from __future__ import annotations

import pytest

from hotpatch_server import errors
from hotpatch_server.problems import problem_for

EXPECTED = {
    errors.StorageUnavailableError: (503, "storage-unavailable", "5"),
    errors.DiskFullError: (507, "insufficient-storage", "60"),
    errors.UnsignedUrlError: (403, "forbidden", None),
    errors.UrlExpiredError: (410, "url-expired", None),
    errors.NoSuchBlobError: (404, "not-found", None),
}


def test_every_server_error_has_its_row() -> None:
    """A new domain error without a row would be answered as a generic 400: none is."""
    assert set(errors.ServerError.__subclasses__()) == set(EXPECTED)


@pytest.mark.parametrize(("kind", "expected"), EXPECTED.items())
def test_each_server_error_maps_to_its_problem(
    kind: type[errors.ServerError], expected: tuple[int, str, str | None]
) -> None:
    """Status, type slug, the message as detail, and Retry-After where waiting helps."""
    problem = problem_for(kind("what happened"))
    retry_after = (problem.headers or {}).get("Retry-After")
    assert (problem.status, problem.kind, retry_after) == expected
    assert problem.detail == "what happened"
