"""The real React Native toolchain: Metro builds the fixture app, hermesc compiles it.

Needs Node.js and the npm registry. The fixture app's dependencies are
installed once (``npm ci``, about 20 s) into a cache keyed by its lockfile
(``$HOTPATCH_RN_CACHE`` or ``~/.cache/hotpatch-tests``) and reused by later
runs. Skipped, with the reason printed, where Node is absent.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import httpx
import pytest

from .conftest import APP, Cli, Stage

HERMES_MAGIC = bytes.fromhex("c61fbc03c103191f")


def _sync(source: Path, target: Path) -> None:
    """Make ``target`` hold ``source`` (a file, or a tree less node_modules): copy what differs."""
    if source.is_file():
        pairs = [(source, target)]
    else:
        pairs = [
            (path, target / path.relative_to(source))
            for path in source.rglob("*")
            if path.is_file() and "node_modules" not in path.relative_to(source).parts
        ]
    for path, copy in pairs:
        if not copy.is_file() or copy.read_bytes() != path.read_bytes():
            copy.parent.mkdir(parents=True, exist_ok=True)
            copy.write_bytes(path.read_bytes())


@pytest.fixture(scope="session")
def rn_app(rn_app_source: Path) -> Path:
    """The fixture app with node_modules installed (cached between runs), beside the SDK.

    The cache holds the repository's layout (``fixtures/rn-app`` and
    ``packages/hotpatch-react-native``) because the app's Metro configuration
    finds the SDK at ``../../packages/hotpatch-react-native``. The sources are
    brought up to date on every run; only ``npm ci`` is cached.
    """
    if shutil.which("node") is None or shutil.which("npx") is None:
        pytest.skip("Node.js is not installed: the React Native bundler test needs node and npx")
    lock = hashlib.sha256((rn_app_source / "package-lock.json").read_bytes()).hexdigest()[:16]
    cache = Path(os.environ.get("HOTPATCH_RN_CACHE") or Path.home() / ".cache" / "hotpatch-tests")
    cache.mkdir(parents=True, exist_ok=True)
    tree = cache / f"rn-app-sdk-{lock}"
    app = tree / "fixtures" / "rn-app"
    sdk = rn_app_source.parents[1] / "packages" / "hotpatch-react-native"
    with (cache / f"rn-app-sdk-{lock}.lock").open("w") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)  # one xdist worker installs, the others wait
        if not (app / "node_modules" / "react-native" / "package.json").is_file():
            staging = cache / f"rn-app-sdk-{lock}.tmp"
            shutil.rmtree(staging, ignore_errors=True)
            shutil.copytree(rn_app_source, staging)
            for path in staging.rglob("*"):
                path.chmod(path.stat().st_mode | 0o200)
            npm = shutil.which("npm") or "npm"
            done = subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                cwd=staging, capture_output=True, text=True, timeout=900, check=False,
            )  # fmt: skip
            if done.returncode != 0:
                pytest.skip(f"npm ci failed (is the npm registry reachable?): {done.stderr[-500:]}")
            shutil.rmtree(tree, ignore_errors=True)
            app.parent.mkdir(parents=True)
            staging.rename(app)
        _sync(rn_app_source, app)
        for part in ("src", "package.json"):
            _sync(sdk / part, tree / "packages" / "hotpatch-react-native" / part)
    return app


def _archive_entries(url: str) -> dict[str, bytes]:
    data = httpx.get(url, timeout=60).content
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def test_metro_build_hermes_and_base_bytecode(
    cli: Cli, stage: Stage, rn_app: Path, tmp_path: Path, rn_builds: dict[str, dict[str, bytes]]
) -> None:
    """Metro builds the app; hermesc compiles it; the next release compiles against it."""
    env = {
        "HOTPATCH_API_URL": stage.server.base_url,
        "HOTPATCH_TOKEN": stage.publisher_key,
        "HOTPATCH_APP": APP,
    }
    first = cli.json(
        "release", "--platform", "android", "--version", "1.0.0", "--project-dir", str(rn_app),
        "--build-dir", str(tmp_path / "build"), env=env,
    )  # fmt: skip
    entries = _archive_entries(first["downloadUrl"])
    bundle = entries["index.android.bundle"]
    # The committed build is this app's own build, byte for byte (fixtures/README.md says how
    # to make it again after a change to the app or to the SDK's JavaScript).
    assert bundle == rn_builds["v1"]["index.android.bundle"], "fixtures/rn-build/v1 is stale"
    assert b"__d(" in bundle[:200_000] or b"__r(" in bundle  # a Metro module bundle
    assets = [name for name in entries if name.startswith("drawable-")]
    assert len(assets) > 10  # React Navigation's icons, copied by --assets-dest
    assert ".hotpatch-build" not in entries

    # Hermes: the fixture build's v1 JS compiled, then v2 compiled against v1's bytecode.
    for version, source in (("1.0.1", "v1"), ("1.0.2", "v2")):
        prebuilt = tmp_path / source
        prebuilt.mkdir()
        (prebuilt / "index.android.bundle").write_bytes(rn_builds[source]["index.android.bundle"])
        done = cli.run(
            "release", "--platform", "android", "--version", version, "--hermes",
            "--project-dir", str(rn_app), "--bundle-dir", str(prebuilt), "--json", env=env,
        )  # fmt: skip
        assert (prebuilt / "index.android.bundle").read_bytes()[:8] != HERMES_MAGIC  # untouched
        published = json.loads(done.stdout)
        compiled = _archive_entries(published["downloadUrl"])["index.android.bundle"]
        assert compiled[:8] == HERMES_MAGIC
        if version == "1.0.2":
            assert "against base.hbc" in done.stderr  # 1.0.1's bytecode was the base
        else:
            assert "1.0.0 is not Hermes bytecode; compiling without a base" in done.stderr

    # The base is checked against 1.0.2's signed manifest: bytes the server changed are refused.
    sha = published["downloadUrl"].split("/blobs/")[1].split("?")[0]
    data_dir = Path(stage.server.env["HOTPATCH_DATA_DIR"])
    (stored,) = [p for p in data_dir.rglob(f"{sha}*") if p.is_file()]
    damaged = bytearray(stored.read_bytes())
    for offset in range(len(damaged) // 2, len(damaged) // 2 + 16):
        damaged[offset] ^= 0xFF
    stored.write_bytes(bytes(damaged))
    refused = cli.run(
        "release", "--platform", "android", "--version", "1.0.3", "--hermes",
        "--project-dir", str(rn_app), "--bundle-dir", str(tmp_path / "v2"), env=env, check=False,
    )  # fmt: skip
    assert refused.returncode == 4, refused.stderr
    assert "1.0.2's archive on the server does not match its signed manifest" in refused.stderr
