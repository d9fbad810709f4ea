"""The Expo Updates protocol served from HotPatch releases (in-process, SQLite and PostgreSQL).

The end-to-end proof with Expo's own parser and certificate code is
tests/e2e/test_expo_client.py; these pin the server's side of the contract,
the attach rules and the errors.
"""

from __future__ import annotations

import base64
import email.parser
import email.policy
import hashlib
import json
import re
from datetime import timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from hotpatch_core.cohort import bucket
from hotpatch_core.expo import commit_time, roll_back_directive, update_id
from hotpatch_server.testing import APP_ID, Server, expo_code_signing

DEVICE = "4ee2e5f5-3f8d-4d0b-9d43-1a2b3c4d5e6f"
EMBEDDED = "00000000-0000-4000-8000-000000000001"


def _publish(server: Server, sequence: int, **kwargs: Any) -> dict[str, Any]:
    return server.published(sequence, **kwargs)


def _attached(server: Server, sequence: int, **kwargs: Any) -> dict[str, Any]:
    release = _publish(server, sequence, **kwargs)
    response = server.expo_attach(release["id"])
    assert response.status_code == 200, response.text
    return release


def _parts(response: Any) -> dict[str, tuple[dict[str, str], bytes]]:
    """Parse a multipart answer with the standard library's MIME parser."""
    assert response.headers["expo-protocol-version"] == "1"
    assert response.headers["expo-sfv-version"] == "0"
    assert response.headers["cache-control"] == "private, max-age=0"
    raw = f"Content-Type: {response.headers['content-type']}\r\n\r\n".encode() + response.content
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(raw)
    assert message.is_multipart()
    parts = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        assert isinstance(name, str)
        assert isinstance(payload, bytes)
        parts[name] = ({k.lower(): str(v) for k, v in part.items()}, payload)
    return parts


def _manifest(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    parts = _parts(response)
    assert set(parts) == {"manifest", "extensions"}
    assert json.loads(parts["extensions"][1]) == {"assetRequestHeaders": {}}
    document: dict[str, Any] = json.loads(parts["manifest"][1])
    return document


def _directive(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    parts = _parts(response)
    assert set(parts) == {"directive"}
    document: dict[str, Any] = json.loads(parts["directive"][1])
    return document


def _b64url_sha256(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def _signing_pair(server: Server, *, code_signing: bool = True) -> tuple[rsa.RSAPrivateKey, str]:
    return expo_code_signing(server.clock(), code_signing=code_signing)


def _preview(server: Server, release_id: int, runtime: str = "1.0.0") -> bytes:
    response = server.client.post(
        f"/releases/{release_id}/expo/preview",
        json={"runtimeVersion": runtime},
        headers=server.auth(),
    )
    assert response.status_code == 200, response.text
    body: bytes = response.content
    return body


def test_a_fresh_device_gets_the_manifest_and_every_asset_verifies(server: Server) -> None:
    """Manifest fields follow the protocol's rules; assets download with their hashes and types."""
    release = _attached(server, 1)
    manifest = _manifest(server.expo_check(expo_current_update_id=EMBEDDED))
    assert manifest["id"] == update_id(release["manifestId"])
    # JavaScript's toISOString() form: the only one Android parses.
    assert re.fullmatch(
        r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z", manifest["createdAt"]
    )
    assert manifest["runtimeVersion"] == "1.0.0"
    launch = manifest["launchAsset"]
    assert launch["contentType"] == "application/javascript"
    assert "fileExtension" not in launch
    (asset,) = manifest["assets"]
    assert (asset["key"], asset["fileExtension"], asset["contentType"]) == (
        "logo",
        ".png",
        "image/png",
    )
    for listed in (launch, asset):
        assert listed["url"].startswith(server.settings.public_url + "/expo/assets/")
        response = server.client.get(listed["url"].removeprefix(server.settings.public_url))
        assert response.status_code == 200
        assert _b64url_sha256(response.content) == listed["hash"]
        assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
        assert response.headers["content-type"].startswith(listed["contentType"])
        assert "content-encoding" not in response.headers
    assert server.client.get(launch["url"].removeprefix(server.settings.public_url)).content == (
        b"release 1" * 20
    )


def test_the_device_on_the_newest_update_gets_no_update_available(server: Server) -> None:
    """A device running the newest update is told so with the directive."""
    release = _attached(server, 1)
    current = update_id(release["manifestId"])
    assert _directive(server.expo_check(expo_current_update_id=current)) == {
        "type": "noUpdateAvailable"
    }


def test_a_newer_release_is_offered_to_a_device_on_the_older_one(server: Server) -> None:
    """Sequence order decides; the device's update id names its release."""
    first = _attached(server, 1)
    second = _attached(server, 2)
    current = update_id(first["manifestId"])
    assert _manifest(server.expo_check(expo_current_update_id=current))["id"] == update_id(
        second["manifestId"]
    )


def test_releases_without_an_expo_manifest_or_of_another_runtime_are_not_offered(
    server: Server,
) -> None:
    """Only an attached manifest of exactly the device's runtime version is served."""
    plain = _publish(server, 1)
    assert _directive(server.expo_check())["type"] == "noUpdateAvailable"
    attached = server.expo_attach(plain["id"], runtime_version="1.0.0")
    assert attached.status_code == 200, attached.text
    assert _directive(server.expo_check(expo_runtime_version="1.0.1"))["type"] == (
        "noUpdateAvailable"
    )
    assert _manifest(server.expo_check())["runtimeVersion"] == "1.0.0"


def test_rollout_cohorts_are_hotpatchs_own(server: Server) -> None:
    """At 50 % a device gets the release exactly when its HotPatch cohort bucket is inside."""
    release = _attached(server, 1, rollout=50)
    devices = [f"{n:08x}-0000-4000-8000-000000000000" for n in range(40)]
    for device in devices:
        inside = bucket(device, release["manifestId"]) < 5000
        response = server.expo_check(device)
        parts = _parts(response)
        assert ("manifest" in parts) == inside


def test_a_failed_launch_header_becomes_a_rollback_and_is_never_offered_again(
    server: Server,
) -> None:
    """expo-recent-failed-update-ids is stored as rolled_back; stats count it; once per device."""
    release = _attached(server, 1)
    failed = update_id(release["manifestId"])
    for _ in range(2):
        answer = server.expo_check(
            expo_current_update_id=EMBEDDED, expo_recent_failed_update_ids=f'"{failed}"'
        )
        assert _directive(answer)["type"] == "noUpdateAvailable"
    stats = server.client.get(f"/releases/{release['id']}/stats", headers=server.auth()).json()
    assert stats["installations"]["rolled_back"] == 1, stats
    assert stats["failuresByPhase"] == {"rolled_back/first_launch": 1}
    other = server.expo_check("5ee2e5f5-3f8d-4d0b-9d43-1a2b3c4d5e6f")
    assert _manifest(other)["id"] == failed


def test_running_an_update_is_counted_as_applied_once(server: Server) -> None:
    """The update a device reports running becomes one applied installation."""
    release = _attached(server, 1)
    current = update_id(release["manifestId"])
    for _ in range(3):
        server.expo_check(expo_current_update_id=current)
    stats = server.client.get(f"/releases/{release['id']}/stats", headers=server.auth()).json()
    assert stats["installations"] == {"applied": 1, "failed": 0, "rolled_back": 0}, stats


def test_a_signed_release_carries_the_publishers_signature(server: Server) -> None:
    """The part header holds the signature over the exact manifest bytes, with the keyid."""
    release = _publish(server, 1)
    key, cert = _signing_pair(server)
    body = _preview(server, release["id"])
    signature = key.sign(body, padding.PKCS1v15(), hashes.SHA256())
    response = server.expo_attach(
        release["id"],
        signature=base64.b64encode(signature).decode(),
        keyId="main",
        certificate=cert,
    )
    assert response.status_code == 200, response.text
    assert response.json()["signed"] is True
    answer = server.expo_check(expo_expect_signature='sig, keyid="main", alg="rsa-v1_5-sha256"')
    headers, served = _parts(answer)["manifest"]
    assert served == body
    assert headers["expo-signature"] == (
        f'sig="{base64.b64encode(signature).decode()}", keyid="main", alg="rsa-v1_5-sha256"'
    )
    loaded = x509.load_pem_x509_certificate(cert.encode()).public_key()
    assert isinstance(loaded, rsa.RSAPublicKey)
    loaded.verify(signature, served, padding.PKCS1v15(), hashes.SHA256())
    current = update_id(release["manifestId"])
    nothing = server.expo_check(expo_current_update_id=current, expo_expect_signature="sig")
    assert (nothing.status_code, nothing.content) == (204, b"")
    assert nothing.headers["expo-protocol-version"] == "1"


def test_a_device_expecting_a_signature_is_refused_an_unsigned_update(server: Server) -> None:
    """409 says why, instead of a manifest the device would reject anyway."""
    _attached(server, 1)
    response = server.expo_check(expo_expect_signature='sig, keyid="main"')
    assert response.status_code == 409
    assert "not signed" in response.json()["detail"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"signature": "AAAA"}, "signature"),
        ({"keyId": "other key"}, "keyId"),
        ({"certificate": "not a pem"}, "certificate"),
        ({"certificate": None}, "keyId"),
    ],
)
def test_a_bad_signature_or_certificate_is_refused_and_nothing_is_kept(
    server: Server, change: dict[str, Any], field: str
) -> None:
    """The server checks the signature as a device would before keeping anything."""
    release = _publish(server, 1)
    key, cert = _signing_pair(server)
    body = _preview(server, release["id"])
    sent: dict[str, str | None] = {
        "signature": base64.b64encode(key.sign(body, padding.PKCS1v15(), hashes.SHA256())).decode(),
        "keyId": "main",
        "certificate": cert,
    }
    sent.update(change)
    present: dict[str, Any] = {k: v for k, v in sent.items() if v is not None}
    response = server.expo_attach(release["id"], **present)
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field
    assert (
        server.client.get(f"/releases/{release['id']}/expo", headers=server.auth()).status_code
        == 404
    )
    assert _directive(server.expo_check())["type"] == "noUpdateAvailable"


def test_a_certificate_that_is_not_for_code_signing_is_refused(server: Server) -> None:
    """expo-updates requires Extended Key Usage codeSigning: so does the attach."""
    release = _publish(server, 1)
    key, cert = _signing_pair(server, code_signing=False)
    body = _preview(server, release["id"])
    signature = base64.b64encode(key.sign(body, padding.PKCS1v15(), hashes.SHA256())).decode()
    response = server.expo_attach(
        release["id"], signature=signature, keyId="main", certificate=cert
    )
    assert response.status_code == 422
    assert "code-signing" in response.json()["detail"]


def test_an_update_never_changes(server: Server) -> None:
    """The same attach is idempotent; a different one for the same release is a conflict."""
    release = _publish(server, 1)
    first = server.expo_attach(release["id"])
    assert server.expo_attach(release["id"]).json() == first.json()
    conflict = server.expo_attach(release["id"], runtime_version="1.0.1")
    assert conflict.status_code == 409
    assert (
        server.client.get(f"/releases/{release['id']}/expo", headers=server.auth()).json()[
            "runtimeVersion"
        ]
        == "1.0.0"
    )


@pytest.mark.parametrize(
    ("files", "runtime", "kind"),
    [
        (
            {"index.android.bundle": b"x", "drawable-mdpi/logo.png": b"y"},
            "1.0.0",
            "not-expo-release",
        ),
        ({"assets/a.png": b"y"}, "1.0.0", "not-expo-release"),
        (None, "2.0.0", "invalid"),
        (None, "1.0.0\n", "invalid"),
        (None, "", "invalid"),
    ],
)
def test_releases_and_runtimes_expo_cannot_serve_are_refused(
    server: Server, files: dict[str, bytes] | None, runtime: str, kind: str
) -> None:
    """Files outside assets/<key>.<ext>, no entry file, or a runtime outside the range: 422."""
    release = _publish(server, 1, files=files, binary_range=">=1.0.0 <2.0.0")
    response = server.expo_attach(release["id"], runtime_version=runtime)
    assert response.status_code == 422, response.text
    assert response.json()["type"].endswith(kind)


def test_publishers_of_other_apps_cannot_attach(server: Server) -> None:
    """Attaching is publishing: the key must be scoped to the app."""
    release = _publish(server, 1)
    stranger = server.create_key("publisher", ["com.other.app"])
    response = server.client.put(
        f"/releases/{release['id']}/expo",
        json={"runtimeVersion": "1.0.0"},
        headers=server.auth(stranger),
    )
    assert response.status_code == 403


@pytest.mark.parametrize(
    "headers",
    [
        {"expo_protocol_version": "0"},
        {"expo_platform": "web"},
        {"expo_runtime_version": "1.0.0 beta"},
        {"expo_runtime_version": "x" * 65},
        {"eas_client_id": "a b"},
        {"expo_channel_name": "Main Channel"},
        {"expo_current_update_id": "not-a-uuid"},
        {"expo_recent_failed_update_ids": "unquoted"},
        {"expo_recent_failed_update_ids": '"a", '},
        {"expo_expect_signature": "sig, keyid=main, ="},
        {"expo_recent_failed_update_ids": '"' + "a" * 5000 + '"'},
    ],
)
def test_malformed_headers_get_400(server: Server, headers: dict[str, str]) -> None:
    """Every header is validated exactly; bad input is a problem document, never a 500."""
    _attached(server, 1)
    response = server.expo_check(**headers)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/problem+json")


def test_missing_required_headers_get_400(server: Server) -> None:
    """A request without the platform, runtime or client id is refused."""
    for name in ("expo-platform", "expo-runtime-version", "eas-client-id"):
        headers = {
            "expo-protocol-version": "1",
            "expo-platform": "android",
            "expo-runtime-version": "1.0.0",
            "eas-client-id": DEVICE,
        }
        del headers[name]
        response = server.client.get(f"/expo/{APP_ID}/manifest", headers=headers)
        assert response.status_code == 400, name


def test_unknown_assets_are_404(server: Server) -> None:
    """Only files an attached manifest lists are served; other blobs are not."""
    release = _attached(server, 1)
    assert server.client.get(f"/expo/assets/{release['hash']}").status_code == 404
    assert server.client.get("/expo/assets/" + "0" * 64).status_code == 404
    assert server.client.get("/expo/assets/NOT-HEX").status_code == 400


def test_the_channel_header_picks_the_channel(server: Server) -> None:
    """expo-channel-name routes like EAS; without it the channel is production."""
    staging = _publish(server, 1, channel="staging")
    assert server.expo_attach(staging["id"]).status_code == 200
    assert _directive(server.expo_check())["type"] == "noUpdateAvailable"
    assert _manifest(server.expo_check(expo_channel_name="staging"))["id"] == update_id(
        staging["manifestId"]
    )


def _roll_back(server: Server, **body: Any) -> Any:
    sent = {
        "platform": "android",
        "runtimeVersion": "1.0.0",
        "commitTime": commit_time(server.clock()),
        **body,
    }
    return server.client.put(
        f"/apps/{APP_ID}/expo/roll-back-to-embedded", json=sent, headers=server.auth()
    )


def test_a_channel_rolled_back_to_the_embedded_bundle(server: Server) -> None:
    """Devices on an update get rollBackToEmbedded; on the embedded bundle, nothing; newer wins."""
    release = _attached(server, 1)
    running = update_id(release["manifestId"])
    server.clock.advance(seconds=60)
    rolled = _roll_back(server)
    assert rolled.status_code == 200, rolled.text
    directive = _directive(server.expo_check(expo_current_update_id=running,
                                             expo_embedded_update_id=EMBEDDED))  # fmt: skip
    assert directive == {
        "type": "rollBackToEmbedded",
        "parameters": {"commitTime": rolled.json()["commitTime"]},
    }
    on_embedded = server.expo_check(
        expo_current_update_id=EMBEDDED, expo_embedded_update_id=EMBEDDED
    )
    assert _directive(on_embedded)["type"] == "noUpdateAvailable"
    other_runtime = server.expo_check(expo_runtime_version="2.0.0", expo_current_update_id=running)
    assert _directive(other_runtime)["type"] == "noUpdateAvailable"
    server.clock.advance(seconds=60)
    newer = _publish(server, 2, created_at=server.clock())
    assert server.expo_attach(newer["id"]).status_code == 200
    assert _manifest(server.expo_check(expo_current_update_id=EMBEDDED))["id"] == update_id(
        newer["manifestId"]
    )
    stale = _roll_back(server, commitTime=rolled.json()["commitTime"])
    assert stale.status_code == 409


def test_a_signed_rollback_to_the_embedded_bundle(server: Server) -> None:
    """Signed by the publisher over the exact directive bytes; a bad signature keeps nothing."""
    release = _attached(server, 1)
    key, cert = _signing_pair(server)
    when = commit_time(server.clock() + timedelta(seconds=1))
    body = roll_back_directive(when)
    signature = base64.b64encode(key.sign(body, padding.PKCS1v15(), hashes.SHA256())).decode()
    forged = base64.b64encode(key.sign(b"other", padding.PKCS1v15(), hashes.SHA256())).decode()
    bad = _roll_back(server, commitTime=when, signature=forged, keyId="main", certificate=cert)
    assert bad.status_code == 422
    answer = server.expo_check(expo_current_update_id=EMBEDDED)
    assert _manifest(answer)["id"] == update_id(release["manifestId"])  # nothing changed
    good = _roll_back(server, commitTime=when, signature=signature, keyId="main",
                      certificate=cert)  # fmt: skip
    assert good.json()["signed"] is True
    served = server.expo_check(
        expo_current_update_id=update_id(release["manifestId"]),
        expo_expect_signature='sig, keyid="main"',
    )
    headers, part = _parts(served)["directive"]
    assert part == body
    assert headers["expo-signature"].startswith(f'sig="{signature}"')


@pytest.mark.parametrize(
    ("change", "status"),
    [
        ({"commitTime": "2026-01-01T00:00:00Z"}, 422),
        ({"commitTime": "1999-01-01T00:00:00.000Z"}, 422),
        ({"platform": "web"}, 422),
        ({"runtimeVersion": "1 0"}, 422),
        ({"channel": "Prod"}, 422),
        ({"keyId": "main"}, 422),
    ],
)
def test_bad_rollbacks_to_the_embedded_bundle_are_refused(
    server: Server, change: dict[str, str], status: int
) -> None:
    """Every field is checked; a commit time far from the server's clock is refused."""
    assert _roll_back(server, **change).status_code == status


def test_only_rollback_keys_may_roll_back(server: Server) -> None:
    """A key of another app cannot roll this app's channel back."""
    stranger = server.create_key("publisher", ["com.other.app"])
    response = server.client.put(
        f"/apps/{APP_ID}/expo/roll-back-to-embedded",
        json={"platform": "android", "runtimeVersion": "1.0.0",
              "commitTime": commit_time(server.clock())},
        headers=server.auth(stranger),
    )  # fmt: skip
    assert response.status_code == 403
