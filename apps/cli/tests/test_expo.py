"""``hotpatch release --expo-export`` and ``hotpatch expo attach`` against a real server process."""

from __future__ import annotations

import base64
import email.parser
import email.policy
import hashlib
import json
from pathlib import Path
from typing import Any

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from hotpatch_server.testing import expo_code_signing

from .conftest import APP, Cli, Stage

DEVICE = "0f6b3a52-7c1e-4d7e-9f2a-5b8c9d0e1f2a"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(64)
FONT = b"\x00\x01\x00\x00" + bytes(32)


def _export(root: Path, text: str) -> Path:
    """Write what `npx expo export --platform android` writes: metadata, bundle, assets."""
    bundle = root / "_expo" / "static" / "js" / "android" / "entry-4f2a.hbc"
    bundle.parent.mkdir(parents=True)
    bundle.write_bytes(f"__d(function(){{return '{text}'}});".encode())
    assets = []
    for data, ext in ((PNG, "png"), (FONT, "ttf")):
        name = hashlib.md5(data, usedforsecurity=False).hexdigest()
        (root / "assets").mkdir(exist_ok=True)
        (root / "assets" / name).write_bytes(data)
        assets.append({"path": f"assets/{name}", "ext": ext})
    metadata = {
        "version": 0,
        "bundler": "metro",
        "fileMetadata": {"android": {"bundle": str(bundle.relative_to(root)), "assets": assets}},
    }
    (root / "metadata.json").write_text(json.dumps(metadata))
    return root


def _code_signing(stage: Stage, tmp_path: Path) -> tuple[Path, Path]:
    """A key and self-signed code-signing certificate, as `expo-updates codesigning:generate`."""
    # The server process checks the certificate's validity against its own clock.
    key, cert = expo_code_signing(stage.server.now())
    key_path, cert_path = tmp_path / "private-key.pem", tmp_path / "certificate.pem"
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    cert_path.write_text(cert)
    return key_path, cert_path


def _manifest_request(stage: Stage, **headers: str) -> httpx.Response:
    return httpx.get(
        f"{stage.server.base_url}/expo/{APP}/manifest",
        headers={
            "expo-protocol-version": "1",
            "expo-platform": "android",
            "expo-runtime-version": "1.0.0",
            "eas-client-id": DEVICE,
            "expo-expect-signature": 'sig, keyid="main", alg="rsa-v1_5-sha256"',
            **headers,
        },
    )


def _signed_manifest(response: httpx.Response, cert_path: Path) -> dict[str, Any]:
    """Parse the multipart answer and check its signature as a device does."""
    assert response.status_code == 200, response.text
    raw = f"Content-Type: {response.headers['content-type']}\r\n\r\n".encode() + response.content
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(raw)
    parts = {p.get_param("name", header="content-disposition"): p for p in message.iter_parts()}
    assert set(parts) == {"manifest", "extensions"}
    part = parts["manifest"]
    body = part.get_payload(decode=True)
    assert isinstance(body, bytes)
    fields = dict(item.split("=", 1) for item in str(part["expo-signature"]).split(", "))
    assert fields["keyid"] == '"main"'
    public = x509.load_pem_x509_certificate(cert_path.read_bytes()).public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    public.verify(
        base64.b64decode(fields["sig"].strip('"')), body, padding.PKCS1v15(), hashes.SHA256()
    )
    document: dict[str, Any] = json.loads(body)
    return document


def test_release_an_expo_export_signed_then_roll_back(
    cli: Cli, stage: Stage, tmp_path: Path
) -> None:
    """An export is packed, published, signed and served; a rollback is a new signed update."""
    key, cert = _code_signing(stage, tmp_path)
    config = tmp_path / "expo-config.json"
    config.write_text(json.dumps({"name": "Shop", "slug": "shop", "runtimeVersion": "1.0.0"}))
    common = (
        "--api-url", stage.server.base_url, "--token", stage.publisher_key, "--app", APP,
        "--platform", "android", "--runtime-version", "1.0.0", "--expo-config", str(config),
        "--expo-signing-key", str(key), "--expo-certificate", str(cert),
    )  # fmt: skip
    first = cli.json(
        "release", "--version", "1.0.0", "--expo-export", str(_export(tmp_path / "v1", "one")),
        *common,
    )  # fmt: skip
    assert first["expo"]["signed"] is True
    manifest = _signed_manifest(_manifest_request(stage), cert)
    assert manifest["id"] == first["expo"]["updateId"]
    assert manifest["extra"]["expoClient"]["slug"] == "shop"
    assert sorted(a["fileExtension"] for a in manifest["assets"]) == [".png", ".ttf"]
    for asset in [manifest["launchAsset"], *manifest["assets"]]:
        served = httpx.get(asset["url"])
        digest = base64.urlsafe_b64encode(hashlib.sha256(served.content).digest()).rstrip(b"=")
        assert digest.decode() == asset["hash"]
    png = next(a for a in manifest["assets"] if a["fileExtension"] == ".png")
    assert png["key"] == hashlib.md5(PNG, usedforsecurity=False).hexdigest()
    assert httpx.get(manifest["launchAsset"]["url"]).content == b"__d(function(){return 'one'});"

    second = cli.json(
        "release", "--version", "1.1.0", "--expo-export", str(_export(tmp_path / "v2", "two")),
        *common,
    )  # fmt: skip
    on_first = _manifest_request(stage, **{"expo-current-update-id": manifest["id"]})
    assert _signed_manifest(on_first, cert)["id"] == second["expo"]["updateId"]

    back = cli.json("rollback", "--version", "1.0.0", *common)
    assert back["expo"]["updateId"] not in {first["expo"]["updateId"], second["expo"]["updateId"]}
    on_second = _manifest_request(stage, **{"expo-current-update-id": second["expo"]["updateId"]})
    rolled = _signed_manifest(on_second, cert)
    assert rolled["id"] == back["expo"]["updateId"]
    assert rolled["launchAsset"]["hash"] == manifest["launchAsset"]["hash"]
    assert rolled["createdAt"] > manifest["createdAt"]  # devices only take newer commit times


def test_attach_a_published_release_later(cli: Cli, stage: Stage, tmp_path: Path) -> None:
    """`hotpatch expo attach` serves a release published without Expo options, unsigned."""
    common = ("--api-url", stage.server.base_url, "--token", stage.publisher_key, "--app", APP)
    export = _export(tmp_path / "v1", "one")
    published = cli.json(
        "release", "--platform", "android", "--version", "1.0.0", "--expo-export", str(export),
        "--runtime-version", "1.0.0", *common,
    )  # fmt: skip
    assert published["expo"]["signed"] is False
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "index.android.bundle").write_text("plain")
    other = cli.json(
        "release", "--platform", "android", "--version", "1.0.1", "--bundle-dir", str(plain),
        *common,
    )  # fmt: skip
    attached = cli.json("expo", "attach", str(other["id"]), "--runtime-version", "1.0.0", *common)
    assert attached["runtimeVersion"] == "1.0.0"
    answer = _manifest_request(stage, **{"expo-expect-signature": ""})
    assert answer.status_code == 200
    assert attached["updateId"].encode() in answer.content
    again = cli.run(
        "expo", "attach", str(other["id"]), "--runtime-version", "2.0.0", *common, check=False
    )
    assert again.returncode != 0
    assert "never changes" in again.stderr


def test_bad_expo_options_are_refused_before_anything_is_published(
    cli: Cli, stage: Stage, tmp_path: Path
) -> None:
    """Missing runtime version, half a signing pair, or an export without the platform."""
    common = ("--api-url", stage.server.base_url, "--token", stage.publisher_key, "--app", APP)
    export = _export(tmp_path / "v1", "one")
    cases = [
        (("--expo-export", str(export)), "--runtime-version is required"),
        (
            ("--expo-export", str(export), "--runtime-version", "1.0.0",
             "--expo-signing-key", str(tmp_path / "k.pem")),
            "go together",
        ),
        (("--expo-export", str(tmp_path), "--runtime-version", "1.0.0"), "no metadata.json"),
        (
            ("--expo-export", str(export), "--runtime-version", "1.0.0", "--hermes"),
            "npx expo export",
        ),
    ]  # fmt: skip
    for extra, message in cases:
        done = cli.run(
            "release", "--platform", "android", "--version", "1.0.0", *extra, *common, check=False
        )
        assert done.returncode != 0, extra
        assert message in done.stderr, (extra, done.stderr)
    ios = cli.run(
        "release", "--platform", "ios", "--version", "1.0.0", "--expo-export", str(export),
        "--runtime-version", "1.0.0", *common, check=False,
    )  # fmt: skip
    assert "no ios build" in ios.stderr
    listed = httpx.get(
        f"{stage.server.base_url}/releases",
        params={"appId": APP},
        headers={"Authorization": f"Bearer {stage.publisher_key}"},
    )
    assert listed.json() == []
