"""The server's messages follow the OpenAPI schema it publishes, which follows the core documents.

The schemathesis run checks every answer it provokes against the schema;
here the answers a fuzzer rarely reaches (an offer, with a patch) are
checked the same way, and read back the way a device reads them.
"""

from __future__ import annotations

from typing import Any

import attrs
import jsonschema
import pytest

from hotpatch_core.errors import SchemaError
from hotpatch_core.machine import ReportPhase, ReportStatus
from hotpatch_core.manifest import Platform
from hotpatch_core.protocol import (
    CheckAnswer,
    CheckRequest,
    InstallationReport,
    ReportReceipt,
    check_query,
    read_check_answer,
)
from hotpatch_core.publishing import (
    ApiKeyView,
    AppView,
    AuditEntryView,
    CreatedApiKey,
    CreatedDeploymentKey,
    DeploymentKeyView,
    EmbeddedRegistration,
    ExpoAttachment,
    ExpoRollBack,
    Health,
    NewApp,
    NewDeploymentKey,
    NewPatch,
    NewTrustRoot,
    ReleaseStats,
    ReleaseView,
    Republish,
    RolloutChange,
    Tokens,
)
from hotpatch_core.wire import camel, structure, unstructure
from hotpatch_server.testing import APP_ID, Server

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


def _check_request_schema(server: Server) -> dict[str, Any]:
    document = server.client.get("/schema/openapi.json").json()
    body = document["paths"]["/update/check"]["post"]["requestBody"]
    schema: dict[str, Any] = body["content"]["application/json"]["schema"]
    return schema | {"components": document["components"]}


def test_the_check_a_device_sends_follows_the_published_schema(server: Server) -> None:
    """One CheckRequest: its body validates, and as body or query it gets the same answer."""
    v1 = server.published(1)
    server.published(2)
    request = CheckRequest(
        app_id=APP_ID,
        platform=Platform.ANDROID,
        device_id="device-1",
        native_version="1.0.0",
        current_manifest_id=v1["manifestId"],
    )
    schema = _check_request_schema(server)
    assert schema["required"] == ["appId", "platform", "deviceId", "nativeVersion"]
    jsonschema.validate(unstructure(request), schema)
    by_post = server.client.post("/update/check", json=unstructure(request))
    by_get = server.client.get("/update/check", params=check_query(request))
    assert by_post.status_code == by_get.status_code == 200, (by_post.text, by_get.text)
    assert by_post.json() == by_get.json()
    assert by_post.json()["sequence"] == 2
    for bad in ({"channel": "Prod"}, {"currentManifestId": "a" * 63}, {"deviceId": ""}):
        body = unstructure(request) | bad
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(body, schema)
        with pytest.raises(SchemaError):
            structure(body, CheckRequest)
        answer = server.client.post("/update/check", json=body)
        assert answer.status_code == 422, answer.text
        assert answer.json()["field"] == next(iter(bad)), answer.json()


def _report_schema(server: Server) -> dict[str, Any]:
    document = server.client.get("/schema/openapi.json").json()
    body = document["paths"]["/installations"]["post"]["requestBody"]
    schema: dict[str, Any] = body["content"]["application/json"]["schema"]
    # Resolve the enums' references for a standalone validator.
    for name in ("status", "phase"):
        ref = schema["properties"][name]["$ref"].rsplit("/", 1)[-1]
        schema["properties"][name] = document["components"]["schemas"][ref]
    return schema


def test_a_report_the_agent_writes_follows_the_published_schema(server: Server) -> None:
    """The device's report document validates against the request schema and is accepted."""
    release = server.published(1)
    report = InstallationReport(
        id="r-1",
        app_id=APP_ID,
        device_id="device-1",
        manifest_id=release["manifestId"],
        status=ReportStatus.FAILED,
        phase=ReportPhase.VERIFY,
        reason="hash mismatch",
    )
    schema = _report_schema(server)
    assert schema["required"] == ["id", "appId", "deviceId", "manifestId", "status"]
    jsonschema.validate(unstructure(report), schema)
    answer = server.client.post("/installations", json=unstructure(report))
    assert answer.status_code == 201, answer.text
    again = server.client.post("/installations", json=unstructure(report))
    assert again.status_code == 200, again.text
    for reply, status in ((answer, "201"), (again, "200")):
        jsonschema.validate(reply.json(), _answer_schema(server, "/installations", "post", status))
        receipt = structure(reply.json(), ReportReceipt)
        assert receipt == ReportReceipt(id="r-1", duplicate=status == "200")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"status": 1}, "status"),
        ({"status": "exploded"}, "status"),
        ({"phase": "launch"}, "phase"),
        ({"deviceId": "device-1\n"}, "deviceId"),
        ({"id": "x" * 129}, "id"),
        ({"manifestId": "A" * 64}, "manifestId"),
        ({"patchedFrom": "a" * 64}, "patchedFrom"),  # only on an applied report
    ],
)
def test_a_report_that_breaks_the_contract_is_refused_and_not_stored(
    server: Server, change: dict[str, Any], field: str
) -> None:
    """422 naming the field; no row; the same body is refused by the published schema."""
    release = server.published(1)
    body = {
        "id": "r-1",
        "appId": APP_ID,
        "deviceId": "device-1",
        "manifestId": release["manifestId"],
        "status": "failed",
    } | change
    answer = server.client.post("/installations", json=body)
    assert answer.status_code == 422, answer.text
    assert answer.json()["field"] == field
    stats = server.client.get(f"/releases/{release['id']}/stats", headers=server.auth()).json()
    assert stats["installations"] == {"applied": 0, "failed": 0, "rolled_back": 0}, stats
    if field != "patchedFrom":  # a rule across two fields, which the schema cannot state
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(body, _report_schema(server))


def _answer_schema(server: Server, path: str, method: str, status: str = "200") -> dict[str, Any]:
    """The published schema of one answer, with the document's components to resolve $refs."""
    document = server.client.get("/schema/openapi.json").json()
    response = document["paths"][path][method]["responses"][status]
    schema: dict[str, Any] = response["content"]["application/json"]["schema"]
    return schema | {"components": document["components"]}


def test_every_publisher_answer_follows_the_published_schema(server: Server) -> None:
    """Releases (published, listed, shown, rolled out), stats and apps read back unchanged."""
    server.published(1, files={"index.android.bundle": BUNDLE})
    changed = BUNDLE.replace(b"return a+17}", b"return a+71}")
    v2 = server.published(2, files={"index.android.bundle": changed})
    auth = server.auth()
    shown = server.client.get(f"/releases/{v2['id']}", headers=auth).json()
    listing = server.client.get("/releases", params={"appId": APP_ID}, headers=auth).json()
    stats = server.client.get(f"/releases/{v2['id']}/stats", headers=auth).json()
    narrowed = server.client.patch(
        f"/releases/{v2['id']}/rollout", json={"rolloutPercent": 12.5}, headers=auth
    ).json()
    app = server.client.get(f"/apps/{APP_ID}", headers=auth).json()
    assert stats["patches"], "v2 is patched from v1 in the background: stats list the patch"
    assert "manifest" in shown
    assert "manifest" not in v2
    assert listing[0]["rollbackOf"] is None
    for answer, path, method, status, kind in [
        (v2, "/releases", "post", "201", ReleaseView),
        (shown, "/releases/{release_id}", "get", "200", ReleaseView),
        (narrowed, "/releases/{release_id}/rollout", "patch", "200", ReleaseView),
        (stats, "/releases/{release_id}/stats", "get", "200", ReleaseStats),
        (app, "/apps/{app_id}", "get", "200", AppView),
    ]:
        jsonschema.validate(answer, _answer_schema(server, path, method, status))
        assert unstructure(structure(answer, kind)) == answer, path
    jsonschema.validate(listing, _answer_schema(server, "/releases", "get"))
    assert [unstructure(structure(r, ReleaseView)) for r in listing] == listing
    broken = shown | {"rolloutPercent": "12.5"}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, _answer_schema(server, "/releases/{release_id}", "get"))
    with pytest.raises(SchemaError, match="rolloutPercent"):
        structure(broken, ReleaseView)


def test_every_credential_answer_follows_the_published_schema(server: Server) -> None:
    """API keys, tokens and CodePush deployment keys: the secret only in the creating answer."""
    admin = server.auth(server.admin_key)
    created = server.client.post(
        "/keys", json={"name": "ci", "role": "viewer", "apps": [APP_ID]}, headers=admin
    )
    listing = server.client.get("/keys", headers=admin)
    tokens = server.client.post("/auth/token", json={"apiKey": created.json()["key"]})
    refreshed = server.client.post(
        "/auth/refresh", json={"refreshToken": tokens.json()["refreshToken"]}
    )
    revoked = server.client.delete(f"/keys/{created.json()['id']}", headers=admin)
    key_path = f"/apps/{APP_ID}/deployment-keys"
    deployment = server.client.post(key_path, json={"platform": "ios"}, headers=admin)
    deployment_keys = server.client.get(key_path, headers=admin)
    gone = server.client.delete(f"{key_path}/{deployment.json()['id']}", headers=admin)
    for answer, path, method, status, kind in [
        (created, "/keys", "post", "201", CreatedApiKey),
        (revoked, "/keys/{key_id}", "delete", "200", ApiKeyView),
        (tokens, "/auth/token", "post", "200", Tokens),
        (refreshed, "/auth/refresh", "post", "200", Tokens),
        (deployment, "/apps/{app_id}/deployment-keys", "post", "201", CreatedDeploymentKey),
        (gone, "/apps/{app_id}/deployment-keys/{key_id}", "delete", "200", DeploymentKeyView),
    ]:
        assert answer.status_code == int(status), answer.text
        jsonschema.validate(answer.json(), _answer_schema(server, path, method, status))
        assert unstructure(structure(answer.json(), kind)) == answer.json(), path
    for rows, path in ((listing, "/keys"), (deployment_keys, key_path)):
        jsonschema.validate(
            rows.json(), _answer_schema(server, path.replace(APP_ID, "{app_id}"), "get")
        )
        assert all("key" not in row for row in rows.json())  # secrets are shown once
    assert "key" not in revoked.json()
    assert revoked.json()["revokedAt"] is not None


BODIES = [
    ("post", "/apps", NewApp, ["id", "trustRoot"]),
    ("put", "/apps/{app_id}/trust-root", NewTrustRoot, ["trustRoot"]),
    ("post", "/apps/{app_id}/embedded", EmbeddedRegistration,
     ["platform", "nativeVersion", "archive", "files"]),
    ("post", "/apps/{app_id}/deployment-keys", NewDeploymentKey, ["platform"]),
    ("patch", "/releases/{release_id}/rollout", RolloutChange, None),
    ("patch", "/releases/{release_id}/rollback", Republish, ["manifest"]),
    ("post", "/releases/{release_id}/promote", Republish, ["manifest"]),
    ("post", "/releases/{release_id}/patches", NewPatch, ["baseManifestId", "patch"]),
    ("put", "/releases/{release_id}/expo", ExpoAttachment, ["runtimeVersion"]),
    ("post", "/releases/{release_id}/expo/preview", ExpoAttachment, ["runtimeVersion"]),
    ("put", "/apps/{app_id}/expo/roll-back-to-embedded", ExpoRollBack,
     ["platform", "runtimeVersion", "commitTime"]),
]  # fmt: skip


@pytest.mark.parametrize(("method", "path", "kind", "required"), BODIES)
def test_publisher_request_bodies_are_the_core_documents(
    server: Server, method: str, path: str, kind: type[Any], required: list[str] | None
) -> None:
    """Each publisher body's published schema is the core document the CLI writes."""
    document = server.client.get("/schema/openapi.json").json()
    body = document["paths"][path][method]["requestBody"]["content"]["application/json"]
    schema = body["schema"]
    assert schema["title"] == kind.__name__
    assert schema.get("required") == required
    assert set(schema["properties"]) == {camel(field.name) for field in attrs.fields(kind)}


@pytest.mark.parametrize(
    ("method", "path", "required"),
    [
        ("post", "/apps/{app_id}/embedded", ["platform", "nativeVersion", "archive", "files"]),
        ("post", "/apps/{app_id}/deployment-keys", ["platform"]),
        ("patch", "/releases/{release_id}/rollout", []),
        ("post", "/releases/{release_id}/patches", ["baseManifestId", "patch"]),
        ("put", "/releases/{release_id}/expo", ["runtimeVersion"]),
        ("post", "/releases/{release_id}/expo/preview", ["runtimeVersion"]),
        ("put", "/apps/{app_id}/expo/roll-back-to-embedded", ["platform", "runtimeVersion"]),
    ],
)
def test_a_misspelt_publisher_field_is_refused_and_changes_nothing(
    server: Server, method: str, path: str, required: list[str]
) -> None:
    """A field the document lacks is a 422 naming it, before anything is stored."""
    release = server.published(1)
    url = path.format(app_id=APP_ID, release_id=release["id"])
    sent = dict.fromkeys(required, "x") | {"runtimeVerison": "1.0.0"}
    answer = server.client.request(
        method.upper(), url, json=sent, headers=server.auth(server.admin_key)
    )
    assert answer.status_code == 422, answer.text
    assert answer.json()["field"] == "runtimeVerison"
    after = server.client.get(f"/releases/{release['id']}", headers=server.auth()).json()
    assert after["rolloutPercent"] == release["rolloutPercent"]
    expo = server.client.get(f"/releases/{release['id']}/expo", headers=server.auth())
    assert expo.status_code == 404, expo.text
    keys = server.client.get(
        f"/apps/{APP_ID}/deployment-keys", headers=server.auth(server.admin_key)
    )
    assert keys.json() == [], keys.text


def test_health_answers_follow_the_published_schema(server: Server) -> None:
    """200 and the 503 a load balancer sees are both the Health document."""
    answer = server.client.get("/health")
    assert answer.status_code == 200, answer.text
    jsonschema.validate(answer.json(), _answer_schema(server, "/health", "get"))
    assert structure(answer.json(), Health) == Health("ok", "ok", "not configured")
    down = _answer_schema(server, "/health", "get", "503")
    jsonschema.validate({"status": "unavailable", "database": "unavailable", "cache": "ok"}, down)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"status": "fine", "database": "ok", "cache": "ok"}, down)


def test_the_audit_log_follows_the_published_schema(server: Server) -> None:
    """Each entry is an AuditEntryView: its time in the wire format, its details an object."""
    server.published(1)
    answer = server.client.get("/audit", params={"appId": APP_ID}, headers=server.auth())
    assert answer.status_code == 200, answer.text
    jsonschema.validate(answer.json(), _answer_schema(server, "/audit", "get"))
    entries = [structure(entry, AuditEntryView) for entry in answer.json()]
    assert [entry.action for entry in entries] == ["publish", "create-key", "create-app"]
    assert {entry.app_id for entry in entries} == {APP_ID}
    assert entries[0].at == server.clock()
    assert {"archive", "manifestId", "sequence", "epoch"} <= set(entries[0].details)
