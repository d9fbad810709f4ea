"""Benchmark packing a release against ``zip -9`` + ``sha256sum`` of the same files, in one run.

For two Android build directories made from ../shared/corpus (the Metro JS
bundle with its assets, and the same with Hermes bytecode), it alternates
``--runs`` times:

- *baseline*: ``zip -9 -r -X -q`` of the directory, then ``sha256sum`` of the zip;
- *hotpatch*: what ``hotpatch release`` does before uploading: collect the
  files (refusing symlinks and unsafe names), write the deterministic archive
  at level 9 while hashing every file, hash the archive, build the manifest
  and sign it (Ed25519).

It prints the medians and their ratio (target <= 1.5). Then it runs the real
``hotpatch release --bundle-dir`` command (a subprocess: Python start-up,
the server round trips and the upload included) against a local
``hotpatch-server`` process, and prints that time too.

Usage: python bench/cli_publish.py [--runs 9]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from corpus import corpus_dir

from hotpatch_cli.pack import collect_files, pack_directory, release_manifest
from hotpatch_core.keys import SigningKey
from hotpatch_core.manifest import Platform
from hotpatch_core.release import sign_release

CORPUS = corpus_dir() / "rn"
BIN = Path(sys.executable).parent


def build_dir(target: Path, bundle: Path) -> Path:
    """Make an Android build directory: the bundle plus the app's assets."""
    shutil.copytree(CORPUS / "android-assets", target)
    shutil.copy(bundle, target / "index.android.bundle")
    return target


def baseline(source: Path, work: Path) -> float:
    """Zip -9 the directory, sha256sum the zip; return seconds."""
    archive = work / "baseline.zip"
    archive.unlink(missing_ok=True)
    started = time.perf_counter()
    subprocess.run(["zip", "-9", "-r", "-X", "-q", str(archive), "."], cwd=source, check=True)
    subprocess.run(["sha256sum", str(archive)], check=True, capture_output=True)
    return time.perf_counter() - started


def hotpatch(source: Path, work: Path, key: SigningKey) -> float:
    """Collect, pack at level 9 with per-file hashes, hash, describe and sign; return seconds."""
    started = time.perf_counter()
    packed = pack_directory(collect_files(source), work / "hotpatch.zip", compresslevel=9)
    manifest = release_manifest(
        app_id="com.example.app",
        platform=Platform.ANDROID,
        channel="production",
        binary_range="*",
        version="1.0.0",
        epoch=1,
        sequence=1,
        packed=packed,
        created_at=datetime.now(UTC).replace(microsecond=0),
        mandatory=False,
    )
    sign_release(manifest, [key])
    return time.perf_counter() - started


def full_command(source: Path, work: Path) -> float:
    """Time the real ``hotpatch release --bundle-dir`` against a local server process."""
    from hotpatch_server.testing import server_process  # noqa: PLC0415

    home = work / "cli-home"
    env = {**os.environ, "HOTPATCH_HOME": str(home), "HOME": str(work)}
    hotpatch_bin = str(BIN / "hotpatch")

    def cli(*args: str) -> None:
        subprocess.run([hotpatch_bin, *args], env=env, check=True, capture_output=True)

    root_key, public, root = work / "root.pem", work / "pub.pem", work / "root.json"
    cli("keys", "generate")
    cli("keys", "generate", "--out", str(root_key))
    cli("keys", "export-public", "--out", str(public))
    cli("trust-root", "create", "--root-key", str(root_key), "--publisher", str(public),
        "--out", str(root))  # fmt: skip
    with server_process(work / "server") as server:
        server.admin("create-app", "com.bench.app", "--trust-root", str(root))
        key = server.admin(
            "create-key", "--name", "b", "--role", "publisher", "--app", "com.bench.app"
        )
        started = time.perf_counter()
        cli("release", "--platform", "android", "--version", "1.0.0", "--bundle-dir", str(source),
            "--api-url", server.base_url, "--token", key.strip().splitlines()[-1],
            "--app", "com.bench.app")  # fmt: skip
        return time.perf_counter() - started


def main() -> None:
    """Run the benchmark and print its table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()
    if shutil.which("zip") is None or shutil.which("sha256sum") is None:
        raise SystemExit("the baseline needs zip and sha256sum (apt-get install zip coreutils)")
    key = SigningKey.generate()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        sets = {
            "JS bundle + assets": build_dir(work / "js", CORPUS / "v1" / "index.android.bundle"),
            "Hermes bytecode + assets": build_dir(
                work / "hbc", CORPUS / "v1" / "index.android.hbc"
            ),
        }
        print(f"{'build directory':26}{'size':>9}{'zip+sha256':>12}{'hotpatch':>10}{'ratio':>7}")
        for name, source in sets.items():
            size = sum(p.stat().st_size for p in source.rglob("*") if p.is_file())
            base: list[float] = []
            ours: list[float] = []
            for _ in range(args.runs):
                base.append(baseline(source, work))
                ours.append(hotpatch(source, work, key))
            b, o = statistics.median(base), statistics.median(ours)
            print(
                f"{name:26}{size / 1e6:>7.2f}MB{b * 1000:>10.1f}ms{o * 1000:>8.1f}ms{o / b:>7.2f}"
            )
        print("target: ratio <= 1.50 (medians of alternating runs)")
        seconds = full_command(sets["JS bundle + assets"], work)
        print(
            f"`hotpatch release --bundle-dir` (JS set) end to end, with Python start-up, "
            f"server checks and the upload to a local server: {seconds * 1000:.0f} ms"
        )


if __name__ == "__main__":
    main()
