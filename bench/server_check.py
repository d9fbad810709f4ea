"""Benchmark the update check against a bare Litestar route, in one run.

Setup: PostgreSQL with 1,000,000 device rows, one app with an active
release at a 50 % rollout (so about half the checks are offered an update),
device tracking on. Both servers run under the same ASGI server
configuration (uvicorn, one worker, no access log) and take the same load:
wrk, 2 threads, 64 connections, random device ids. Prints requests/s and
latency percentiles for both, and the ratios the issue targets.

The CodePush update check (``/v0.1/public/codepush/update_check``, same
devices, a deployment key for the same channel) and the Expo Updates
manifest request (``/expo/<app>/manifest``, same devices, the release's
Expo manifest attached) run on the same server process, alternating with
HotPatch's own check ``--runs`` times; the medians are compared.

Then the cost of channel heads: the same check against fresh server
processes on the same database, alternately without and with a timestamp key
(``HOTPATCH_TIMESTAMP_KEY_FILE``, so every answer also carries the signed
head), ``--runs`` times each. Each run starts its own process: two processes
alive at once measured 0.78 of each other with identical settings, which
would drown the difference being measured.

Usage: python bench/server_check.py [--seconds 15] [--devices 1000000] [--runs 3]
Needs: PostgreSQL (HOTPATCH_BENCH_DATABASE_URL, default the machine's test
server) and wrk (``apt-get install wrk``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from hotpatch_core.keys import SigningKey
from hotpatch_core.release import sign_release
from hotpatch_core.testing import build_release, make_pki
from hotpatch_server.testing import ServerDidNotStartError, free_port, wait_until_serving

HERE = Path(__file__).parent
BIN = Path(sys.executable).parent
ADMIN_URL = os.environ.get(
    "HOTPATCH_BENCH_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
DATABASE = "hotpatch_bench"
APP_ID = "com.bench.app"


async def _sql(url: str, *statements: str, autocommit: bool = False) -> list[object]:
    engine = create_async_engine(url, isolation_level="AUTOCOMMIT" if autocommit else None)
    results: list[object] = []
    try:
        async with engine.begin() as connection:
            for statement in statements:
                result = await connection.execute(text(statement))
                results.append(result.scalar() if result.returns_rows else None)
    finally:
        await engine.dispose()
    return results


def _start(args: list[str], env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [
            str(BIN / "uvicorn"),
            *args,
            "--port",
            str(port),
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        env=env,
    )
    try:
        wait_until_serving(f"http://127.0.0.1:{port}/update/check", process)
    except ServerDidNotStartError as exc:
        process.kill()
        raise SystemExit(f"benchmark server did not start: {exc}") from None
    return process


def _wrk(
    port: int, seconds: int, script: str = "check.lua", env: dict[str, str] | None = None
) -> dict[str, float]:
    out = subprocess.run(
        [
            "wrk",
            "-t2",
            "-c64",
            f"-d{seconds}s",
            "--latency",
            "-s",
            str(HERE / script),
            f"http://127.0.0.1:{port}",
        ],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    ).stdout

    def ms(label: str) -> float:
        match = re.search(rf"{label}\s+([\d.]+)(us|ms|s)", out)
        assert match, out
        value = float(match[1])
        return value / 1000 if match[2] == "us" else value * 1000 if match[2] == "s" else value

    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    assert rps, out
    return {
        "rps": float(rps[1]),
        "p50": ms("50%"),
        "p99": ms("99%"),
        "non2xx": float(errors[1]) if errors else 0.0,
    }


def _create_key(env: dict[str, str], name: str, role: str) -> str:
    done = subprocess.run(
        [BIN / "hotpatch-server", "create-key", "--name", name, "--role", role, "--app", APP_ID],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout.strip().splitlines()[-1]


def _median(runs: list[dict[str, float]]) -> dict[str, float]:
    return {name: statistics.median(run[name] for run in runs) for name in runs[0]}


def main() -> int:
    """Run both servers under the same load and print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--devices", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3, help="alternating runs of each check")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")
    asyncio.run(
        _sql(
            ADMIN_URL,
            f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)',
            f'CREATE DATABASE "{DATABASE}"',
            autocommit=True,
        )
    )
    url = ADMIN_URL.rsplit("/", 1)[0] + f"/{DATABASE}"
    with tempfile.TemporaryDirectory() as data:
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "JWT_SECRET": "b" * 48,
            "HOTPATCH_DATA_DIR": data,
            "HOTPATCH_RATE_LIMIT_SCALE": "100000",
        }
        env.pop("REDIS_URL", None)
        root = Path(data) / "root.json"
        pki = make_pki()
        root.write_bytes(pki.root_bytes)
        admin = BIN / "hotpatch-server"
        subprocess.run([admin, "migrate"], env=env, check=True, capture_output=True)
        subprocess.run(
            [admin, "create-app", APP_ID, "--trust-root", root],
            env=env,
            check=True,
            capture_output=True,
        )
        stamp = Path(data) / "timestamp.pem"
        stamp.write_bytes(SigningKey.generate().to_pem())
        heads_env = {**env, "HOTPATCH_TIMESTAMP_KEY_FILE": str(stamp)}
        key = _create_key(env, "bench", "publisher")
        admin_key = _create_key(env, "ops", "admin")
        started = time.monotonic()
        asyncio.run(
            _sql(
                url,
                f"""
            INSERT INTO devices (app_id, device_id, platform, channel, native_version,
                                 current_manifest_id, first_seen, last_seen)
            SELECT '{APP_ID}', 'device-' || g, 'android', 'production', '1.0.0', NULL, now(), now()
            FROM generate_series(0, {args.devices - 1}) AS g
        """,
                "ANALYZE devices",
            )
        )
        print(f"seeded {args.devices:,} devices in {time.monotonic() - started:.1f} s")
        port = free_port()
        server = _start(["--factory", "hotpatch_server.app:app_from_env"], env, port)
        try:
            built = build_release({"index.android.bundle": b"x" * 200_000}, app_id=APP_ID)
            published = httpx.post(
                f"http://127.0.0.1:{port}/releases",
                data={"appId": APP_ID, "rollout": "50"},
                files={
                    "manifest": ("m", sign_release(built.manifest, [pki.publisher])),
                    "archive": ("a", built.archive),
                },
                headers={"Authorization": f"Bearer {key}"},
                timeout=60,
            )
            published.raise_for_status()
            httpx.put(
                f"http://127.0.0.1:{port}/releases/{published.json()['id']}/expo",
                json={"runtimeVersion": "1.0.0"},
                headers={"Authorization": f"Bearer {key}"},
                timeout=60,
            ).raise_for_status()
            created = httpx.post(
                f"http://127.0.0.1:{port}/apps/{APP_ID}/deployment-keys",
                json={"platform": "android"},
                headers={"Authorization": f"Bearer {admin_key}"},
            )
            created.raise_for_status()
            wrk_env = {**os.environ, "HOTPATCH_BENCH_DEPLOYMENT_KEY": created.json()["key"]}
            _wrk(port, 3)  # warm up
            _wrk(port, 3, "codepush_check.lua", wrk_env)
            _wrk(port, 3, "expo_check.lua", wrk_env)
            native_runs, codepush_runs, expo_runs = [], [], []
            for _ in range(args.runs):
                native_runs.append(_wrk(port, args.seconds))
                codepush_runs.append(_wrk(port, args.seconds, "codepush_check.lua", wrk_env))
                expo_runs.append(_wrk(port, args.seconds, "expo_check.lua", wrk_env))
            hotpatch, codepush = _median(native_runs), _median(codepush_runs)
            expo = _median(expo_runs)
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
        plain_runs: list[dict[str, float]] = []
        heads_runs: list[dict[str, float]] = []
        for _ in range(args.runs):
            for runs, settings in ((plain_runs, env), (heads_runs, heads_env)):
                port = free_port()
                fresh = _start(["--factory", "hotpatch_server.app:app_from_env"], settings, port)
                try:
                    _wrk(port, 3)
                    runs.append(_wrk(port, args.seconds))
                finally:
                    fresh.send_signal(signal.SIGTERM)
                    fresh.wait(timeout=30)
        plain, headed = _median(plain_runs), _median(heads_runs)
        tracked = asyncio.run(_sql(url, "SELECT count(*) FROM devices"))[0]
        port = free_port()
        bare_env = {**env, "PYTHONPATH": str(HERE)}
        bare_server = _start(["--factory", "bare_app:app"], bare_env, port)
        try:
            _wrk(port, 3)
            bare = _wrk(port, args.seconds)
        finally:
            bare_server.send_signal(signal.SIGTERM)
            bare_server.wait(timeout=30)
    print()
    print(f"{'':24}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'non-2xx':>10}")
    rows = (
        ("bare Litestar route", bare),
        ("HotPatch update check", hotpatch),
        ("check, fresh process", plain),
        ("... with channel head", headed),
        ("CodePush update check", codepush),
        ("Expo manifest request", expo),
    )
    for name, r in rows:
        print(f"{name:24}{r['rps']:>10.0f}{r['p50']:>10.2f}{r['p99']:>10.2f}{r['non2xx']:>10.0f}")
    print()
    print(f"throughput ratio (check / bare): {hotpatch['rps'] / bare['rps']:.2f}  (target >= 0.70)")
    print(f"p99 ratio (check / bare):        {hotpatch['p99'] / bare['p99']:.2f}  (target <= 1.50)")
    print(
        f"CodePush / HotPatch check: throughput {codepush['rps'] / hotpatch['rps']:.2f} "
        f"(target >= 1.00 within noise), p99 {codepush['p99'] / hotpatch['p99']:.2f}  "
        f"(medians of {args.runs} alternating runs)"
    )
    print(
        f"Expo / HotPatch check:     throughput {expo['rps'] / hotpatch['rps']:.2f} "
        f"(target >= 1.00 within noise), p99 {expo['p99'] / hotpatch['p99']:.2f}  "
        f"(medians of {args.runs} alternating runs)"
    )
    print(
        f"check with head / without:  throughput {headed['rps'] / plain['rps']:.2f}, "
        f"p99 {headed['p99'] / plain['p99']:.2f}  (medians of {args.runs} alternating runs, "
        "a fresh process each)"
    )
    if codepush["non2xx"] or hotpatch["non2xx"] or expo["non2xx"] or headed["non2xx"]:
        print("WARNING: some checks were not answered 2xx; the figures are not comparable")
    print(f"device rows after the run: {tracked:,}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
