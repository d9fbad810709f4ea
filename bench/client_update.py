"""Benchmark a full device update against raw download + sha256 + unzip, in one run.

Setup: a real ``hotpatch-server`` process on loopback (SQLite, local disk)
serving a release of 10 MB of real build output from ../shared/corpus
(React Native bundles, Hermes bytecode, npm builds, assets).

- *baseline*: stream the archive's URL to a file while hashing it with
  sha256, then ``zipfile.extractall`` into a directory: what a naive OTA
  client does, with no verification beyond one hash and no durability;
- *agent*: a fresh :class:`hotpatch_client.Agent` doing ``on_launch`` +
  ``sync``: the update check, signature and identity verification, the
  streamed download, the strict extraction with per-file hashes, every
  fsync, the read-back re-verification and the atomic state switch.

They alternate ``--runs`` times; the medians and their ratio are printed
(target: ratio <= 1.3). Then a child process updates to a 100 MB release and
reports its peak RSS growth (target: <= 32 MB: the archive is streamed,
never held in memory).

Usage: python bench/client_update.py [--runs 5] [--rss-mb 100]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
from corpus import corpus_dir
from procstatus import status_kib

from hotpatch_cli.pack import pack_directory, release_manifest
from hotpatch_client import Agent, AgentConfig, SyncStatus
from hotpatch_core.manifest import Platform
from hotpatch_core.testing import FIXED_TIME
from hotpatch_core.trust import load_trust_root

if TYPE_CHECKING:
    from hotpatch_server.testing import ServerProcess

APP_ID = "com.example.app"

CORPUS = corpus_dir()
CHUNK = 256 * 1024


def corpus_files(limit: int) -> dict[str, Path]:
    """Real build output from the corpus, about ``limit`` bytes, the entry bundle first."""
    paths = sorted(p for p in CORPUS.rglob("*") if p.is_file() and p.name != "SHA256SUMS")
    entry = CORPUS / "rn" / "v1" / "index.android.bundle"
    chosen = {"index.android.bundle": entry}
    total = entry.stat().st_size
    for path in paths:
        if total >= limit:
            break
        if path == entry or path.suffix == ".md":
            continue
        chosen[path.relative_to(CORPUS).as_posix()] = path
        total += path.stat().st_size
    return chosen


def random_files(size: int) -> dict[str, Path]:
    """``size`` bytes of incompressible data in 8 files written to a temp dir (never in memory)."""
    directory = Path(tempfile.mkdtemp(prefix="hotpatch-bench-"))
    rng = random.Random(5)  # noqa: S311 - test data
    files: dict[str, Path] = {}
    per_file = size // 8
    for index in range(8):
        path = directory / f"chunk{index}.bin"
        with path.open("wb") as out:
            for _ in range(per_file // CHUNK):
                out.write(rng.randbytes(CHUNK))
        files["index.android.bundle" if index == 0 else f"assets/chunk{index}.bin"] = path
    return files


def publish(server: ServerProcess, files: dict[str, Path], sequence: int, work: Path) -> str:
    """Pack, sign and upload ``files``; return the archive URL a device would get."""
    packed = pack_directory(files, work / f"release-{sequence}.zip", compresslevel=6)
    manifest = release_manifest(
        app_id=APP_ID,
        platform=Platform.ANDROID,
        channel="production",
        binary_range="*",
        version=f"1.0.{sequence}",
        epoch=1,
        sequence=sequence,
        packed=packed,
        created_at=FIXED_TIME,
        mandatory=False,
    )
    with packed.path.open("rb") as body:
        response = server.publish(manifest, body)
    response.raise_for_status()
    answer = httpx.get(
        f"{server.base_url}/update/check",
        params={"appId": APP_ID, "platform": "android", "deviceId": "probe", "nativeVersion": "1"},
    ).json()
    url: str = answer["bundleUrl"]
    return url


def baseline(http: httpx.Client, url: str, work: Path) -> float:
    """Download while hashing, then unzip; return seconds."""
    started = time.perf_counter()
    work.mkdir(parents=True)
    target = work / "archive.zip"
    digest = hashlib.sha256()
    with http.stream("GET", url) as response, target.open("wb") as out:
        response.raise_for_status()
        for chunk in response.iter_raw():
            out.write(chunk)
            digest.update(chunk)
    digest.hexdigest()
    with zipfile.ZipFile(target) as archive:
        archive.extractall(work / "out")
    return time.perf_counter() - started


def config(server: ServerProcess, device_id: str) -> AgentConfig:
    """Return the config of a device of the benchmark app."""
    return AgentConfig(
        server_url=server.base_url,
        app_id=APP_ID,
        platform=Platform.ANDROID,
        native_version="1.0.0",
        trust_root=server.pki.root,
        device_id=device_id,
    )


def agent_update(http: httpx.Client, server: ServerProcess, work: Path, device_id: str) -> float:
    """Update a fresh device; return seconds."""
    started = time.perf_counter()
    with Agent(config(server, device_id), http=http, storage_dir=work) as agent:
        agent.on_launch()
        result = agent.sync()
    elapsed = time.perf_counter() - started
    if result.status is not SyncStatus.STAGED:
        raise SystemExit(f"the agent did not update: {result}")
    return elapsed


def rss_child(server_url: str, root: Path, storage: Path) -> None:
    """Run in a child process: update once, print the RSS before and the peak after (KiB)."""
    agent_config = AgentConfig(
        server_url=server_url,
        app_id=APP_ID,
        platform=Platform.ANDROID,
        native_version="1.0.0",
        trust_root=load_trust_root(root.read_bytes()),
        device_id="rss-device",
    )
    with httpx.Client(timeout=60) as http, Agent(agent_config, http=http, storage_dir=storage) as a:
        a.on_launch()
        before = status_kib("VmRSS")
        result = a.sync()
        after = status_kib("VmHWM")
    print(json.dumps({"before": before, "after": after, "status": result.status.value}))


def main() -> None:
    """Run the benchmark and print its table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--size-mb", type=int, default=10)
    parser.add_argument("--rss-mb", type=int, default=100)
    parser.add_argument("--rss-child", nargs=3, metavar=("URL", "ROOT", "STORAGE"))
    args = parser.parse_args()
    if args.rss_child:
        url, root, storage = args.rss_child
        rss_child(url, Path(root), Path(storage))
        return
    from hotpatch_server.testing import server_process  # noqa: PLC0415 - not in the RSS child

    with tempfile.TemporaryDirectory() as tmp, server_process(Path(tmp) / "server") as server:
        work = Path(tmp)
        files = corpus_files(args.size_mb * 1024 * 1024)
        size = sum(p.stat().st_size for p in files.values())
        url = publish(server, files, 1, work)
        archive_bytes = (work / "release-1.zip").stat().st_size
        print(
            f"release: {len(files)} corpus files, {size / 1e6:.1f} MB, "
            f"archive {archive_bytes / 1e6:.1f} MB"
        )
        ours: list[float] = []
        base: list[float] = []
        with httpx.Client(timeout=60) as http:
            for run in range(args.runs):
                base.append(baseline(http, url, work / f"base-{run}"))
                ours.append(agent_update(http, server, work / f"device-{run}", f"bench-{run}"))
        b, o = statistics.median(base), statistics.median(ours)
        pairs = statistics.median(x / y for x, y in zip(ours, base, strict=True))
        print(f"{'':30}{'median':>10}{'min':>10}{'max':>10}")
        for name, times in (("baseline (get+sha256+unzip)", base), ("agent (check..staged)", ours)):
            cells = "".join(
                f"{t * 1000:>8.1f}ms" for t in (statistics.median(times), min(times), max(times))
            )
            print(f"{name:30}{cells}")
        print(
            f"ratio agent / baseline: medians {o / b:.2f}, median of paired runs {pairs:.2f}, "
            f"minimums {min(ours) / min(base):.2f}  (target <= 1.30)"
        )

        big = random_files(args.rss_mb * 1024 * 1024)
        publish(server, big, 2, work)
        root = work / "root.json"
        root.write_bytes(server.pki.root_bytes)
        command = [sys.executable, __file__, "--rss-child", server.base_url, str(root)]
        child = subprocess.run(
            [*command, str(work / "rss")], capture_output=True, text=True, check=True, timeout=600
        )
        measured = json.loads(child.stdout.strip().splitlines()[-1])
        growth = (measured["after"] - measured["before"]) / 1024
        print(
            f"{args.rss_mb} MB update ({measured['status']}): "
            f"RSS {measured['before'] / 1024:.0f} MB -> peak {measured['after'] / 1024:.0f} MB, "
            f"growth {growth:.1f} MB (target <= 32 MB)"
        )


if __name__ == "__main__":
    main()
