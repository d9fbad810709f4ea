"""The CodePush device protocol served from HotPatch releases (in-process, SQLite and PostgreSQL).

The end-to-end proof with the real ``code-push`` and ``react-native-code-push``
JavaScript is tests/e2e/test_codepush_client.py; these pin the server's side
of the contract and its errors.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import zipfile
from typing import Any
from urllib.parse import urlsplit

import pytest
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
from sqlalchemy.pool import NullPool

from hotpatch_core.cohort import bucket
from hotpatch_server.codepush import DeploymentKeys
from hotpatch_server.testing import APP_ID, OTHER_APP, Server

_CHECK = "/v0.1/public/codepush/update_check"
_DEPLOY = "/v0.1/public/codepush/report_status/deploy"
_DOWNLOAD = "/v0.1/public/codepush/report_status/download"


def _publish(server: Server, sequence: int, **kwargs: Any) -> dict[str, Any]:
    return server.published(sequence, **kwargs)


def _info(server: Server, key: str, device: str = "device-1", **params: str) -> dict[str, Any]:
    response = server.codepush_check(key, device, **params)
    assert response.status_code == 200, response.text
    info: dict[str, Any] = response.json()["update_info"]
    return info


def _folder_hash(archive: bytes) -> str:
    """The package hash as the Android client computes it over the unzipped folder."""
    with zipfile.ZipFile(io.BytesIO(archive)) as zf:
        lines = sorted(
            f"{name}:{hashlib.sha256(zf.read(name)).hexdigest()}"
            for name in zf.namelist()
            if not name.endswith("/")
        )
    return hashlib.sha256(json.dumps(lines, separators=(",", ":")).encode()).hexdigest()


def _download(server: Server, url: str) -> bytes:
    parts = urlsplit(url)
    assert parts.scheme in {"http", "https"}, "download_url must be absolute"
    response = server.client.get(
        f"{parts.path}?{parts.query}", headers={"Accept-Encoding": "identity"}
    )
    assert response.status_code == 200
    assert "content-encoding" not in response.headers
    assert int(response.headers["content-length"]) == len(response.content)
    return response.content


def test_fresh_device_gets_the_newest_release_as_codepush_expects(server: Server) -> None:
    """A fresh device gets the newest release, in the shape the client reads."""
    _publish(server, 1)
    second = _publish(server, 2, mandatory=True)
    key = server.deployment_key()
    info = _info(server, key, app_version="1.0")
    assert info["is_available"] is True
    assert info["label"] == "v2"
    assert info["is_mandatory"] is True
    assert info["update_app_version"] is False
    # The device keeps target_binary_range as the package's app version and runs
    # the package only on exactly that binary version: it must be what it sent.
    assert info["target_binary_range"] == "1.0"
    assert info["description"] == "1.0.2"
    archive = _download(server, info["download_url"])
    assert archive[:4] == b"PK\x03\x04"
    assert info["package_size"] == len(archive)
    assert info["package_hash"] == _folder_hash(archive)
    assert hashlib.sha256(archive).hexdigest() == second["hash"]


def test_device_on_the_newest_release_gets_nothing(server: Server) -> None:
    """A device whose package hash is the newest release's is told nothing is available."""
    _publish(server, 1)
    key = server.deployment_key()
    offered = _info(server, key)
    info = _info(server, key, package_hash=offered["package_hash"], label=offered["label"])
    assert info["is_available"] is False
    assert info["update_app_version"] is False
    # A device on v1 is offered v2 once it exists.
    _publish(server, 2)
    again = _info(server, key, package_hash=offered["package_hash"], label="v1")
    assert again["label"] == "v2"


def test_label_keeps_a_device_from_going_back(server: Server) -> None:
    """A device on a release no longer active (archived) is not offered an older one."""
    _publish(server, 1)
    newest = _publish(server, 2)
    key = server.deployment_key()
    hash_2 = _info(server, key)["package_hash"]
    archived = server.client.delete(f"/releases/{newest['id']}", headers=server.auth())
    assert archived.status_code == 200
    assert _info(server, key, package_hash=hash_2, label="v2")["is_available"] is False
    assert _info(server, key)["label"] == "v1"


def test_binary_targeting_and_upgrade_hint(server: Server) -> None:
    """Binary ranges decide; a binary below every range is told to upgrade."""
    _publish(server, 1, binary_range="2.x")
    key = server.deployment_key()
    info = _info(server, key, app_version="1.4")
    assert info["is_available"] is False
    assert info["update_app_version"] is True
    assert info["target_binary_range"] == "2.x"
    assert _info(server, key, app_version="2.1")["label"] == "v1"
    # A binary newer than every range gets nothing and no upgrade hint.
    newer = _info(server, key, app_version="3.0.0")
    assert newer["is_available"] is False
    assert newer["update_app_version"] is False


def test_rollout_uses_hotpatch_cohorts(server: Server) -> None:
    """CodePush devices fall in the same rollout cohorts as HotPatch devices."""
    release = _publish(server, 1, rollout=25)
    key = server.deployment_key()
    devices = [f"cp-{i}" for i in range(120)]
    offered = {d for d in devices if _info(server, key, d)["is_available"]}
    assert offered == {d for d in devices if bucket(d, release["manifestId"]) < 2500}


def test_failed_deployment_is_a_rollback_and_never_offered_again(server: Server) -> None:
    """DeploymentFailed is a rolled_back report, and the device is not offered it again."""
    release = _publish(server, 1)
    key = server.deployment_key()
    assert _info(server, key, "crashy")["label"] == "v1"
    body = {
        "app_version": "1.0.0",
        "deployment_key": key,
        "client_unique_id": "crashy",
        "label": "v1",
        "status": "DeploymentFailed",
        "previous_deployment_key": key,
    }
    first = server.client.post(_DEPLOY, json=body)
    assert first.status_code == 200, first.text
    assert first.json() == {"recorded": True, "duplicate": False}
    # The client re-sends a report it could not deliver: stored once.
    assert server.client.post(_DEPLOY, json=body).json()["duplicate"] is True
    assert _info(server, key, "crashy")["is_available"] is False
    assert _info(server, key, "healthy")["is_available"] is True
    ok = dict(body, client_unique_id="healthy", status="DeploymentSucceeded")
    assert server.client.post(_DEPLOY, json=ok).status_code == 200
    stats = server.client.get(f"/releases/{release['id']}/stats", headers=server.auth()).json()
    assert stats["installations"] == {"applied": 1, "failed": 0, "rolled_back": 1}
    assert stats["failuresByPhase"] == {"rolled_back/first_launch": 1}


def test_binary_first_run_and_download_reports_are_accepted(server: Server) -> None:
    """Reports with no release to store are accepted and record nothing."""
    key = server.deployment_key()
    binary = {"app_version": "1.0.0", "deployment_key": key, "client_unique_id": "u1"}
    response = server.client.post(_DEPLOY, json=binary)
    assert response.status_code == 200
    assert response.json() == {"recorded": False}
    download = {"client_unique_id": "u1", "deployment_key": key, "label": "v1"}
    assert server.client.post(_DOWNLOAD, json=download).status_code == 200


def test_get_with_json_content_type_and_no_body_is_a_check(server: Server) -> None:
    """The client sends Content-Type: application/json on its GET, with no body."""
    _publish(server, 1)
    key = server.deployment_key()
    response = server.client.get(
        _CHECK,
        params={"deployment_key": key, "app_version": "1.0.0", "client_unique_id": "u"},
        headers={"Content-Type": "application/json", "Accept": "application/json"},
    )
    assert response.status_code == 200
    assert response.json()["update_info"]["is_available"] is True


def test_key_routes_one_platform_and_channel(server: Server) -> None:
    """Each deployment key sees only its own platform and channel."""
    _publish(server, 1)
    _publish(server, 2, channel="staging")
    production = server.deployment_key()
    staging = server.deployment_key(channel="staging")
    ios = server.deployment_key(platform="ios")
    assert _info(server, production)["label"] == "v1"
    assert _info(server, staging)["label"] == "v2"
    assert _info(server, ios)["is_available"] is False


def test_unknown_and_revoked_keys_get_404(server: Server) -> None:
    """Unknown keys, and keys once revoked, are refused with 404."""
    _publish(server, 1)
    assert server.codepush_check("x" * 43).status_code == 404
    created = server.client.post(
        f"/apps/{APP_ID}/deployment-keys",
        json={"platform": "android", "name": "store build"},
        headers=server.auth(server.admin_key),
    ).json()
    assert server.codepush_check(created["key"]).status_code == 200
    revoked = server.client.delete(
        f"/apps/{APP_ID}/deployment-keys/{created['id']}", headers=server.auth(server.admin_key)
    )
    assert revoked.status_code == 200
    assert revoked.json()["revokedAt"] is not None
    assert server.codepush_check(created["key"]).status_code == 404
    report = {"app_version": "1.0.0", "deployment_key": created["key"], "client_unique_id": "u"}
    assert server.client.post(_DEPLOY, json=report).status_code == 404


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"deployment_key": "short"}, "deployment_key"),
        ({"deployment_key": "k" * 101}, "deployment_key"),
        ({"deployment_key": "good-key-but\n"}, "deployment_key"),
        ({"app_version": "1.0.0\n"}, "app_version"),
        ({"app_version": "1٣.0.0"}, "app_version"),
        ({"app_version": "9" * 5000}, "app_version"),
        ({"app_version": "1.x"}, "app_version"),
        ({"client_unique_id": "u" * 129}, "client_unique_id"),
        ({"client_unique_id": ""}, "client_unique_id"),
        ({"package_hash": "A" * 64}, "package_hash"),
        ({"package_hash": "0" * 64 + "\n"}, "package_hash"),
        ({"label": "v1\x00"}, "label"),
        ({"label": "v" * 65}, "label"),
    ],
)
def test_bad_check_queries_are_400(server: Server, params: dict[str, str], field: str) -> None:
    """Bad check queries get 400 naming the field, never a 500."""
    key = server.deployment_key()
    response = server.codepush_check(key, **params)
    assert response.status_code == 400, response.text
    assert response.json()["field"] == field


@pytest.mark.parametrize(
    "body",
    [
        {"client_unique_id": "u"},  # no deployment key, no app version
        {"app_version": "1.0.0", "client_unique_id": "u"},  # no deployment key
        {"deployment_key": "KEY", "client_unique_id": "u"},  # no app version
        {"deployment_key": "KEY", "app_version": "1.0.0", "client_unique_id": "u", "label": "v1"},
        {
            "deployment_key": "KEY",
            "app_version": "1.0.0",
            "client_unique_id": "u",
            "label": "v1",
            "status": "Whatever",
        },
        {"deployment_key": "KEY", "app_version": 1, "client_unique_id": "u"},
        {"deployment_key": "KEY", "app_version": "1.0.0", "client_unique_id": ["u"]},
        {"deployment_key": "KEY", "app_version": "1.0.0", "client_unique_id": "u\x00"},
        {"deployment_key": "KEY", "app_version": "1.0.0", "previous_deployment_key": "k\n"},
    ],
)
def test_bad_deploy_reports_are_400(server: Server, body: dict[str, Any]) -> None:
    """Bad report bodies get 400 and store nothing."""
    key = server.deployment_key()
    body = {name: key if value == "KEY" else value for name, value in body.items()}
    response = server.client.post(_DEPLOY, json=body)
    assert response.status_code == 400, response.text
    assert server.client.post(_DOWNLOAD, json={"deployment_key": "short"}).status_code == 400


def test_deployment_keys_are_admin_only_and_shown_once(server: Server) -> None:
    """Only an admin of the app manages its keys; listings never show a key."""
    publisher = server.auth()
    denied = server.client.post(
        f"/apps/{APP_ID}/deployment-keys", json={"platform": "android"}, headers=publisher
    )
    assert denied.status_code == 403
    other_admin = server.create_key("admin", [OTHER_APP])
    assert (
        server.client.get(
            f"/apps/{APP_ID}/deployment-keys", headers=server.auth(other_admin)
        ).status_code
        == 403
    )
    key = server.deployment_key()
    listing = server.client.get(
        f"/apps/{APP_ID}/deployment-keys", headers=server.auth(server.admin_key)
    ).json()
    assert len(listing) == 1
    assert key not in json.dumps(listing)
    assert listing[0]["platform"] == "android"
    assert listing[0]["channel"] == "production"
    audit = server.client.get(
        "/audit", params={"appId": APP_ID}, headers=server.auth(server.admin_key)
    ).json()
    assert any(entry["action"] == "create-deployment-key" for entry in audit)


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"platform": "windows"}, 422),
        ({"platform": "android\n"}, 422),
        ({"platform": "android", "channel": "Production"}, 422),
        ({"platform": "android", "channel": "c" * 65}, 422),
        ({"platform": "android", "name": "n" * 201}, 422),
        ({"platform": "android", "name": "a\x00b"}, 422),
        ({"platform": "android", "extra": 1}, 422),  # a field the document lacks
    ],
)
def test_bad_deployment_key_requests(server: Server, body: dict[str, Any], status: int) -> None:
    """Invalid platforms, channels and names are refused as the columns would."""
    response = server.client.post(
        f"/apps/{APP_ID}/deployment-keys", json=body, headers=server.auth(server.admin_key)
    )
    assert response.status_code == status, response.text


def test_keys_of_unknown_apps_and_ids(server: Server) -> None:
    """Unknown apps and key ids are 404, whatever the id looks like."""
    admin = server.auth(server.admin_key)
    missing = server.client.post(
        "/apps/com.nobody.app/deployment-keys", json={"platform": "android"}, headers=admin
    )
    assert missing.status_code == 404
    for key_id in ["0" * 16, "zz", "a" * 500, "%00"]:
        response = server.client.delete(f"/apps/{APP_ID}/deployment-keys/{key_id}", headers=admin)
        assert response.status_code == 404, key_id


def test_another_process_drops_a_revoked_key_within_the_cache_lifetime(server: Server) -> None:
    """A process that did not revoke the key serves it until its cached answer is reloaded."""
    key = server.deployment_key()
    listing = server.client.get(
        f"/apps/{APP_ID}/deployment-keys", headers=server.auth(server.admin_key)
    ).json()
    engine = create_async_engine(server.settings.database_url, poolclass=NullPool)
    moment = [0.0]
    other = DeploymentKeys(async_sessionmaker(engine), ttl=2.0, clock=lambda: moment[0])

    async def find_then_settle() -> tuple[object, object]:
        first = await other.find(key)
        for _ in range(100):  # let a background reload finish
            await asyncio.sleep(0.01)
        return first, await other.find(key)

    try:
        assert asyncio.run(find_then_settle()) != (None, None)
        server.client.delete(
            f"/apps/{APP_ID}/deployment-keys/{listing[0]['id']}",
            headers=server.auth(server.admin_key),
        ).raise_for_status()
        moment[0] = 1.0  # within the lifetime: the other process still honours it
        assert None not in asyncio.run(find_then_settle())
        moment[0] = 3.0  # past it: served once more while reloading, then refused
        first, then = asyncio.run(find_then_settle())
        assert first is not None
        assert then is None
    finally:
        asyncio.run(engine.dispose())


def test_the_legacy_camelcase_api_is_the_same_service(server: Server) -> None:
    """/updateCheck and /reportStatus/* of code-push SDK 2.x: same choice, same reports."""
    release = _publish(server, 1)
    key = server.deployment_key()
    query = {"deploymentKey": key, "appVersion": "1.0.0", "clientUniqueId": "old-app",
             "packageHash": "", "label": "", "isCompanion": ""}  # fmt: skip
    response = server.client.get("/updateCheck", params=query)
    assert response.status_code == 200, response.text
    info = response.json()["updateInfo"]
    current = _info(server, key, "old-app")
    assert info == {
        "isAvailable": True,
        "downloadURL": info["downloadURL"],
        "packageHash": current["package_hash"],
        "packageSize": current["package_size"],
        "label": "v1",
        "description": "1.0.1",
        "isMandatory": False,
        "updateAppVersion": False,
        "shouldRunBinaryVersion": False,
        "appVersion": "1.0.0",
    }
    assert urlsplit(info["downloadURL"]).path.startswith("/blobs/")
    failed = {"deploymentKey": key, "appVersion": "1.0.0", "clientUniqueId": "old-app",
              "label": "v1", "status": "DeploymentFailed"}  # fmt: skip
    reported = server.client.post("/reportStatus/deploy", json=failed)
    assert reported.json() == {"recorded": True, "duplicate": False}
    download = {"deploymentKey": key, "clientUniqueId": "old-app", "label": "v1"}
    assert server.client.post("/reportStatus/download", json=download).status_code == 200
    again = server.client.get("/updateCheck", params=query).json()["updateInfo"]
    assert again["isAvailable"] is False
    stats = server.client.get(f"/releases/{release['id']}/stats", headers=server.auth()).json()
    assert stats["installations"]["rolled_back"] == 1


def test_the_legacy_api_names_the_binary_a_release_needs(server: Server) -> None:
    """The old SDK reads appVersion, not target_binary_range: it carries the range."""
    _publish(server, 1, binary_range=">=2.0.0")
    key = server.deployment_key()
    query = {"deploymentKey": key, "appVersion": "1.0.0", "clientUniqueId": "old-app"}
    info = server.client.get("/updateCheck", params=query).json()["updateInfo"]
    assert (info["isAvailable"], info["updateAppVersion"], info["appVersion"]) == (
        False,
        True,
        ">=2.0.0",
    )


@pytest.mark.parametrize(
    ("path", "params", "body"),
    [
        ("/updateCheck", {"appVersion": "1.0.0", "clientUniqueId": "d"}, None),
        ("/updateCheck", {"deploymentKey": "KEY", "appVersion": "x", "clientUniqueId": "d"}, None),
        ("/reportStatus/deploy", None, {"deploymentKey": "KEY", "label": "v1", "status": "Maybe",
                                        "appVersion": "1.0.0", "clientUniqueId": "d"}),
        ("/reportStatus/deploy", None, {"deploymentKey": "KEY", "clientUniqueId": "d"}),
        ("/reportStatus/download", None, {"deploymentKey": "KEY", "label": "v 1"}),
    ],
)  # fmt: skip
def test_bad_legacy_requests_are_400(
    server: Server, path: str, params: dict[str, str] | None, body: dict[str, str] | None
) -> None:
    """The legacy spelling is validated exactly like the current one."""
    key = server.deployment_key()

    def fill(document: dict[str, str] | None) -> dict[str, str] | None:
        return (
            None if document is None else {k: key if v == "KEY" else v for k, v in document.items()}
        )

    if body is None:
        response = server.client.get(path, params=fill(params))
    else:
        response = server.client.post(path, json=fill(body))
    assert response.status_code == 400, response.text


def _apply_diff(base: dict[str, bytes], diff: bytes) -> dict[str, bytes]:
    """What react-native-code-push does with a diff zip: copy, delete, overlay."""
    files = dict(base)
    with zipfile.ZipFile(io.BytesIO(diff)) as zf:
        for name in json.loads(zf.read("hotcodepush.json"))["deletedFiles"]:
            files.pop(name, None)
        files |= {n: zf.read(n) for n in zf.namelist() if n != "hotcodepush.json"}
    return files


def _hash_of(files: dict[str, bytes]) -> str:
    lines = sorted(f"{name}:{hashlib.sha256(data).hexdigest()}" for name, data in files.items())
    return hashlib.sha256(json.dumps(lines, separators=(",", ":")).encode()).hexdigest()


def test_a_device_on_a_known_package_downloads_a_diff(server: Server) -> None:
    """After a publish, devices on a recent release get a zip of the changed files only."""
    picture = bytes(range(256)) * 400  # does not change: stays out of the diff
    v1 = {"index.android.bundle": b"console.log('one');\n" * 50, "assets/big.png": picture,
          "assets/old.png": b"\x89PNG gone in v2"}  # fmt: skip
    v2 = {"index.android.bundle": b"console.log('two');\n" * 50, "assets/big.png": picture}
    _publish(server, 1, files=v1, compresslevel=0)
    second = _publish(server, 2, files=v2, compresslevel=0)
    key = server.deployment_key()
    fresh = _info(server, key, "fresh")
    assert fresh["package_size"] == second["size"]  # no package: the whole archive
    on_v1 = _info(server, key, "on-v1", package_hash=_hash_of(v1), label="v1")
    assert on_v1["package_hash"] == fresh["package_hash"] == _hash_of(v2)
    assert on_v1["package_size"] < second["size"] / 10
    diff = _download(server, on_v1["download_url"])
    assert len(diff) == on_v1["package_size"]
    assert _apply_diff(v1, diff) == v2
    unknown = _info(server, key, "elsewhere", package_hash="0" * 64, label="v1")
    assert unknown["package_size"] == second["size"]
