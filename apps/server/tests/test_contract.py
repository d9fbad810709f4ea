"""The server's answers follow the OpenAPI schema it publishes, which follows the core documents.

The schemathesis run checks every answer it provokes against the schema;
here the answers a fuzzer rarely reaches (an offer, with a patch) are
checked the same way, and read back the way a device reads them.
"""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest

from hotpatch_core.errors import SchemaError
from hotpatch_core.protocol import CheckAnswer, read_check_answer
from hotpatch_core.wire import unstructure
from hotpatch_server.testing import Server

BUNDLE = b"".join(b"function f%d(a){return a+%d}\n" % (i, i) for i in range(4000))


def _response_schema(server: Server, method: str) -> dict[str, Any]:
    document = server.client.get("/schema/openapi.json").json()
    operation = document["paths"]["/update/check"][method]
    schema: dict[str, Any] = operation["responses"]["200"]["content"]["application/json"]["schema"]
    return schema


def test_every_check_answer_follows_the_published_schema(server: Server) -> None:
    """No offer, an offer, an offer with a patch: each validates and reads back unchanged."""
    schema = _response_schema(server, "get")
    assert schema == _response_schema(server, "post")
    assert schema["required"] == ["updateAvailable"]
    nothing = server.check()
    v1 = server.published(1, files={"index.android.bundle": BUNDLE})
    offer = server.check()
    changed = BUNDLE.replace(b"return a+17}", b"return a+71}")
    server.published(2, files={"index.android.bundle": changed})
    patched = server.check(currentManifestId=v1["manifestId"])
    assert "patch" in patched, patched
    for answer in (nothing, offer, patched):
        jsonschema.validate(answer, schema)
        assert unstructure(read_check_answer(answer)) == answer
    assert read_check_answer(nothing) == CheckAnswer(update_available=False, head=nothing["head"])
    bad_base = patched["patch"] | {"baseManifestId": patched["patch"]["baseManifestId"] + "\n"}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(patched | {"patch": bad_base}, schema)


@pytest.mark.parametrize(
    ("field", "value"),
    [("updateAvailable", "true"), ("size", "12"), ("bundleUrl", None)],
)
def test_the_schema_refuses_an_answer_that_breaks_it(
    server: Server, field: str, value: Any
) -> None:
    """The check above can fail: a mistyped field is refused by schema and device alike."""
    server.published(1)
    answer = server.check() | {field: value}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(answer, _response_schema(server, "get"))
    with pytest.raises(SchemaError):
        read_check_answer(answer)
