"""The whole publishing workflow through the installed command, against a real server process."""

from __future__ import annotations

import base64
import stat
from datetime import timedelta
from pathlib import Path

import httpx

from hotpatch_core.envelope import decode_envelope
from hotpatch_core.manifest import decode_manifest

from .conftest import APP, Cli, Stage


def _bundle(directory: Path, label: str) -> Path:
    (directory / "assets").mkdir(parents=True)
    (directory / "index.android.bundle").write_text(f"console.log({label!r});\n" * 200)
    (directory / "assets" / "logo.png").write_bytes(b"\x89PNG" + bytes(64))
    return directory


def _server_releases(stage: Stage) -> list[dict[str, object]]:
    response = httpx.get(
        f"{stage.server.base_url}/releases",
        params={"appId": APP},
        headers={"Authorization": f"Bearer {stage.publisher_key}"},
    )
    response.raise_for_status()
    rows: list[dict[str, object]] = response.json()
    return rows


def test_login_release_list_rollout_rollback_promote(
    cli: Cli, stage: Stage, tmp_path: Path
) -> None:
    """Login -> release x2 -> list -> rollout -> rollback -> promote, checked on the server."""
    url = stage.server.base_url
    done = cli.run("login", "--api-url", url, "--token", stage.publisher_key, "--app", APP)
    assert "logged in" in done.stdout
    config = cli.home / "config.toml"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert stage.publisher_key in config.read_text()

    first = cli.json(
        "release", "--platform", "android", "--version", "1.0.0", "--rollout", "10",
        "--bundle-dir", str(_bundle(tmp_path / "v1", "v1")),
    )  # fmt: skip
    assert (first["version"], first["sequence"], first["rolloutPercent"]) == ("1.0.0", 1, 10)
    second = cli.json(
        "release", "--platform", "android", "--version", "1.1.0",
        "--bundle-dir", str(_bundle(tmp_path / "v2", "v2")),
    )  # fmt: skip
    assert second["sequence"] == 2

    patched = cli.json("patch", "--platform", "android", "--from", "1.0.0", "--to", "1.1.0")
    assert patched["size"] < patched["archiveSize"]
    offered = httpx.get(
        f"{url}/update/check",
        params={"appId": APP, "platform": "android", "deviceId": "d9", "nativeVersion": "1.0",
                "currentManifestId": first["manifestId"]},
    ).json()  # fmt: skip
    assert offered["patch"]["size"] == patched["size"]
    again = cli.run("patch", "--platform", "android", "--from", "1.0.0", "--to", "1.1.0",
                    check=False)  # fmt: skip
    assert again.returncode == 3
    assert "exists already" in again.stderr

    embedded = cli.json(
        "embedded", "register", "--platform", "android", "--native-version", "1.0.0",
        "--bundle-dir", str(tmp_path / "v1"),
    )  # fmt: skip
    assert (embedded["nativeVersion"], embedded["files"]) == ("1.0.0", 2)
    assert len(embedded["baseId"]) == 64

    listing = cli.json("releases", "list")
    assert [r["version"] for r in listing] == ["1.1.0", "1.0.0"]
    table = cli.run("releases", "list").stdout
    assert "1.1.0" in table
    assert "version" in table.splitlines()[0]

    half = cli.json("rollout", "--platform", "android", "--version", "1.1.0", "--percent", "50")
    assert half["rolloutPercent"] == 50
    assert cli.json("rollout", "--platform", "android", "--version", "1.1.0", "--pause")["paused"]
    resumed = cli.json("rollout", "--platform", "android", "--version", "1.1.0", "--resume")
    assert resumed["paused"] is False

    back = cli.json("rollback", "--platform", "android", "--version", "1.0.0")
    assert (back["version"], back["sequence"], back["rollbackOf"]) == (
        "1.0.0",
        3,
        first["manifestId"],
    )
    assert back["hash"] == first["hash"]  # the same content, a new signed manifest

    promoted = cli.json(
        "promote", "--platform", "android", "--version", "1.1.0", "--from", "production",
        "--to", "staging",
    )  # fmt: skip
    assert (promoted["channel"], promoted["sequence"], promoted["hash"]) == (
        "staging",
        1,
        second["hash"],
    )

    rows = _server_releases(stage)
    summary = sorted((r["channel"], r["sequence"], r["version"]) for r in rows)
    assert summary == [
        ("production", 1, "1.0.0"),
        ("production", 2, "1.1.0"),
        ("production", 3, "1.0.0"),
        ("staging", 1, "1.1.0"),
    ]
    # What devices are offered now is the rollback: 1.0.0's content at sequence 3.
    answer = httpx.get(
        f"{url}/update/check",
        params={"appId": APP, "platform": "android", "deviceId": "d1", "nativeVersion": "1.0"},
    ).json()
    manifest = decode_manifest(decode_envelope(base64.b64decode(answer["manifest"])).payload)
    assert (manifest.sequence, manifest.rollback_of) == (3, first["manifestId"])
    assert manifest.archive.sha256 == first["hash"]


def test_ci_needs_no_prompt_and_no_key_file(cli: Cli, stage: Stage, tmp_path: Path) -> None:
    """Everything from the environment: the key as PEM text, never written to disk."""
    pem = (cli.home / "signing_key.pem").read_text()
    (cli.home / "signing_key.pem").unlink()
    env = {
        "HOTPATCH_API_URL": stage.server.base_url,
        "HOTPATCH_TOKEN": stage.publisher_key,
        "HOTPATCH_APP": APP,
        "HOTPATCH_SIGNING_KEY": pem,
    }
    done = cli.run(
        "release", "--platform", "android", "--version", "2.0.0", "--json",
        "--bundle-dir", str(_bundle(tmp_path / "b", "ci")), stdin="", env=env,
    )  # fmt: skip
    assert '"sequence": 1' in done.stdout
    assert not (cli.home / "signing_key.pem").exists()
    assert "uploading" in done.stderr  # steps go to stderr, stdout stays JSON


def test_releases_expire_after_expires_in(cli: Cli, stage: Stage, tmp_path: Path) -> None:
    """--expires-in signs an expiry into the manifest (365 days by default, or never)."""
    build = tmp_path / "build"
    build.mkdir()
    common = ("--api-url", stage.server.base_url, "--token", stage.publisher_key, "--app", APP)

    def published(version: str, *extra: str) -> tuple[object, object]:
        (build / "index.android.bundle").write_text(f"console.log({version!r});\n")
        document = cli.json(
            "release", "--platform", "android", "--version", version,
            "--bundle-dir", str(build), *extra, *common,
        )  # fmt: skip
        shown = httpx.get(
            f"{stage.server.base_url}/releases/{document['id']}",
            headers={"Authorization": f"Bearer {stage.publisher_key}"},
        ).json()
        manifest = decode_manifest(decode_envelope(base64.b64decode(shown["manifest"])).payload)
        return manifest.created_at, manifest.expires_at

    created, expires = published("1.0.0")
    assert expires == created + timedelta(days=365)  # type: ignore[operator]
    created, expires = published("1.0.1", "--expires-in", "12h")
    assert expires == created + timedelta(hours=12)  # type: ignore[operator]
    assert published("1.0.2", "--expires-in", "never")[1] is None
    for bad in ("0d", "12", "1w", "12h\n", "\u0661d", "-1d"):
        refused = cli.run(
            "release", "--platform", "android", "--version", "1.0.3", "--bundle-dir", str(build),
            "--expires-in", bad, *common, check=False,
        )  # fmt: skip
        assert refused.returncode == 1, bad  # usage
        assert "--expires-in" in refused.stderr
