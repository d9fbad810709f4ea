"""``hotpatch deployment-keys`` and CodePush code signing against a real server process."""

from __future__ import annotations

import base64
import io
import json
import zipfile
from pathlib import Path

import httpx
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from .conftest import APP, Cli, Stage


def _check(stage: Stage, key: str) -> httpx.Response:
    return httpx.get(
        f"{stage.server.base_url}/v0.1/public/codepush/update_check",
        params={"deployment_key": key, "app_version": "1.0.0", "client_unique_id": "d1"},
    )


def test_create_list_revoke(cli: Cli, stage: Stage) -> None:
    """A key is printed once, listed without its secret, and refused once revoked."""
    common = ("--api-url", stage.server.base_url, "--token", stage.admin_key, "--app", APP)
    created = cli.json(
        "deployment-keys", "create", "--platform", "ios", "--channel", "beta",
        "--name", "TestFlight", *common,
    )  # fmt: skip
    assert (created["platform"], created["channel"], created["name"]) == (
        "ios",
        "beta",
        "TestFlight",
    )
    assert _check(stage, created["key"]).status_code == 200

    listed = cli.run("deployment-keys", "list", *common)
    assert created["id"] in listed.stdout
    assert "TestFlight" in listed.stdout
    assert created["key"] not in listed.stdout

    text = cli.run("deployment-keys", "create", "--platform", "android", *common).stdout
    assert "CodePushDeploymentKey" in text

    revoked = cli.json("deployment-keys", "revoke", created["id"], *common)
    assert revoked["revokedAt"] is not None
    assert _check(stage, created["key"]).status_code == 404
    assert "revoked" in cli.run("deployment-keys", "list", *common).stdout


def test_a_publisher_cannot_make_keys(cli: Cli, stage: Stage) -> None:
    """Deployment keys are an admin's: a publisher key gets a clear refusal."""
    done = cli.run(
        "deployment-keys", "create", "--platform", "android",
        "--api-url", stage.server.base_url, "--token", stage.publisher_key, "--app", APP,
        check=False,
    )  # fmt: skip
    assert done.returncode != 0
    assert "may not admin" in done.stderr


def test_release_signed_for_codepush(cli: Cli, stage: Stage, tmp_path: Path) -> None:
    """--codepush-signing-key adds CodePush/.codepushrelease: an RS256 JWT of the package hash."""
    private = tmp_path / "codepush-private.pem"
    made = cli.json("keys", "generate-codepush", "--out", str(private))
    assert made["publicKey"] == str(tmp_path / "codepush-private.pub.pem")
    assert private.stat().st_mode & 0o777 == 0o600
    public = serialization.load_pem_public_key((tmp_path / "codepush-private.pub.pem").read_bytes())
    assert isinstance(public, rsa.RSAPublicKey)
    refused = cli.run("keys", "generate-codepush", "--out", str(private), check=False)
    assert refused.returncode != 0
    build = tmp_path / "build"
    (build / "assets").mkdir(parents=True)
    (build / "index.android.bundle").write_text("console.log('signed');\n")
    (build / "assets" / "logo.png").write_bytes(b"\x89PNG" + bytes(8))
    common = ("--api-url", stage.server.base_url, "--token", stage.publisher_key, "--app", APP)
    published = cli.json(
        "release", "--platform", "android", "--version", "1.0.0", "--bundle-dir", str(build),
        "--codepush-signing-key", str(private), *common,
    )  # fmt: skip
    admin = ("--api-url", stage.server.base_url, "--token", stage.admin_key, "--app", APP)
    deployment_key = cli.json("deployment-keys", "create", "--platform", "android", *admin)["key"]
    info = _check(stage, deployment_key).json()["update_info"]
    archive = httpx.get(info["download_url"]).content
    with zipfile.ZipFile(io.BytesIO(archive)) as zf:
        token = zf.read("CodePush/.codepushrelease").decode()
    header, claims, signature = token.split(".")
    public.verify(
        base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)),
        f"{header}.{claims}".encode(),
        padding.PKCS1v15(),
        hashes.SHA256(),
    )
    decoded = json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))
    assert decoded["claimVersion"] == "1.0.0"
    assert decoded["contentHash"] == info["package_hash"]
    assert published["size"] == len(archive)

    again = cli.run(
        "release", "--platform", "android", "--version", "1.0.1", "--bundle-dir", str(build),
        "--codepush-signing-key", str(tmp_path / "missing.pem"), *common, check=False,
    )  # fmt: skip
    assert again.returncode != 0
    assert "cannot read --codepush-signing-key" in again.stderr
