"""Faults survived, with numbers: ``nox -s faults`` (issue 18).

Real ``hotpatch-server`` processes run against private dependencies (a
PostgreSQL cluster made with ``initdb``, a ``redis-server``, moto's S3
server, a tmpfs data directory) while a small fleet keeps checking for
updates and sending installation reports, and a publisher publishes. Each
fault is injected for a few seconds and then ended:

=====================  ==============================================================
postgres restart       the cluster stopped (fast shutdown) and started again
postgres drop          every connection to it dropped, new ones refused (a TCP proxy)
redis down             ``redis-server`` stopped, then started again
s3 503                 the object store answers ``503 Slow Down`` to everything
s3 hang                the object store accepts and never answers
sigkill                the server process killed (SIGKILL) and started again
disk full              the data directory's file system full (tmpfs; root only)
=====================  ==============================================================

The table counts the fleet's update checks and installation reports from
the fault's start until the server has recovered: ok (a 2xx in at most
1 s), fast error (an error, such as 503 with ``Retry-After``, in at most
1 s) and slow (over 1 s, answered or not, or timed out at 2 s).
Recovery is the time from the fault's end (for a kill: the restart, made at
once as a supervisor does) until a request that needs the faulted dependency
succeeds. Consistency, after a cleanup pass: every
acknowledged publish is a release, every release's archive is stored and
nothing else is, and the reports the server counts equal the distinct
reports the fleet sent (each resent until acknowledged).

Goals: no slow request, recovery within 5 s, consistency exact. The exit
status is 1 when a goal is missed. Clock jumps are not here: the server
takes its wall clock as an argument, and ``apps/server/tests/
test_clock_jumps.py`` jumps it by hours both ways.

Usage: python faults/inject.py [--seconds 3] [--devices 6] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import attrs
import httpx

from hotpatch_core.manifest import encode_manifest, manifest_id
from hotpatch_core.testing import build_release
from hotpatch_server.fault_injection import (
    FaultProxy,
    Mode,
    MotoS3,
    PrivatePostgres,
    PrivateRedis,
    postgres_bin,
)
from hotpatch_server.testing import APP_ID, ServerProcess, server_process

#: A request answered later than this is slow (the goal: none during a fault).
FAST = 1.0
#: The fleet's own timeout.
TIMEOUT = 2.0
#: The recovery goal, in seconds.
RECOVERY_GOAL = 5.0


@attrs.define
class Count:
    """Requests of one kind: served, failed fast, slow."""

    served: int = 0
    failed_fast: int = 0
    slow: int = 0

    def add(self, ok: bool, seconds: float) -> None:  # noqa: FBT001 - a count's one call
        """Count one request."""
        if seconds > FAST:
            self.slow += 1
        elif ok:
            self.served += 1
        else:
            self.failed_fast += 1

    def __str__(self) -> str:
        """Return ``served / failed fast / slow``."""
        return f"{self.served} / {self.failed_fast} / {self.slow}"


@attrs.define
class Tally:
    """The fleet's requests in one phase: update checks and installation reports."""

    checks: Count = attrs.field(factory=Count)
    reports: Count = attrs.field(factory=Count)

    @property
    def slow(self) -> int:
        """Slow requests of either kind."""
        return self.checks.slow + self.reports.slow


class Fleet:
    """Devices checking for updates and reporting installs, in threads, until stopped."""

    def __init__(self, base_url: str, release: str, devices: int) -> None:
        """Check ``base_url`` as ``devices`` devices; reports name ``release``."""
        self.base_url = base_url
        self.release = release
        self.devices = devices
        self.tally = Tally()
        self.sent: set[str] = set()
        self.pending: list[dict[str, str]] = []
        #: Reports taken from ``pending`` whose answer has not come back yet.
        self.in_flight = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        #: Set: devices queue no new reports (while the runner counts what was sent).
        self.quiet = threading.Event()
        self._ids = itertools.count()
        self._threads = [
            threading.Thread(target=self._run, args=(n,), daemon=True) for n in range(devices)
        ]

    def __enter__(self) -> Fleet:
        """Start the devices."""
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        """Stop the devices."""
        self._stop.set()
        for thread in self._threads:
            thread.join(10)

    def phase(self) -> Tally:
        """Start counting into a new tally; return the previous one."""
        with self._lock:
            done, self.tally = self.tally, Tally()
        return done

    def _request(self, http: httpx.Client, method: str, path: str, **kwargs: Any) -> int | None:
        started = time.monotonic()
        status: int | None = None
        with contextlib.suppress(httpx.HTTPError):
            status = http.request(method, path, timeout=TIMEOUT, **kwargs).status_code
        with self._lock:
            count = self.tally.reports if method == "POST" else self.tally.checks
            count.add(status is not None and status < 300, time.monotonic() - started)
        return status

    def _run(self, number: int) -> None:
        device = f"fleet-{number}"
        params = {"appId": APP_ID, "platform": "android", "deviceId": device,
                  "nativeVersion": "1.0.0"}  # fmt: skip
        with httpx.Client(base_url=self.base_url) as http:
            for step in itertools.count():
                if self._stop.is_set():
                    return
                self._request(http, "GET", "/update/check", params=params)
                if step % 4 == 0 and not self.quiet.is_set():
                    self._queue(device)
                self._send_one(http)
                time.sleep(0.05)

    def _queue(self, device: str) -> None:
        report = {"id": f"r{next(self._ids)}", "appId": APP_ID, "deviceId": device,
                  "manifestId": self.release, "status": "applied"}  # fmt: skip
        with self._lock:
            if self.quiet.is_set():  # checked under the lock that settled() sets it under
                return
            self.pending.append(report)
            self.sent.add(report["id"])

    def _send_one(self, http: httpx.Client) -> None:
        with self._lock:
            if not self.pending:
                return
            report = self.pending.pop(0)
            self.in_flight += 1
        status = None
        try:
            status = self._request(http, "POST", "/installations", json=report)
        finally:
            with self._lock:
                if status not in (200, 201):
                    self.pending.append(report)  # resent later, as the agent's queue does
                self.in_flight -= 1

    def _idle(self) -> bool:
        with self._lock:
            return not self.pending and self.in_flight == 0

    @contextlib.contextmanager
    def settled(self, deadline: float = 30.0) -> Iterator[bool]:
        """Queue no new reports until the block ends; yield once every report was answered.

        A report on its way to the server counts as not yet answered, so the
        runner never counts the stored reports while one is in flight.
        """
        with self._lock:
            self.quiet.set()
        try:
            end = time.monotonic() + deadline
            while not self._idle() and time.monotonic() < end:
                time.sleep(0.1)
            yield self._idle()
        finally:
            self.quiet.clear()


@attrs.define
class Deployment:
    """One server process with its dependencies, and what was published to it."""

    server: ServerProcess
    blobs: Callable[[], set[str]]
    port: int
    sequence: int = 0
    acknowledged: list[str] = attrs.field(factory=list)
    fleet: Fleet | None = None

    @property
    def headers(self) -> dict[str, str]:
        """The publisher's credential."""
        return {"Authorization": f"Bearer {self.server.publisher_key}"}

    def publish(self, size: int = 200_000) -> tuple[int | None, float]:
        """Publish the next release; return its status (None: no answer) and the seconds taken."""
        self.sequence += 1
        built = build_release({"index.android.bundle": os.urandom(size)}, app_id=APP_ID,
                              version=f"1.0.{self.sequence}", sequence=self.sequence,
                              compresslevel=0)  # fmt: skip
        started = time.monotonic()
        status: int | None = None
        with contextlib.suppress(httpx.HTTPError):
            status = self.server.publish(built.manifest, built.archive).status_code
        if status == 201:
            self.acknowledged.append(manifest_id(encode_manifest(built.manifest)))
        return status, time.monotonic() - started

    def get(self, path: str) -> httpx.Response:
        """GET ``path`` as the publisher."""
        return httpx.get(f"{self.server.base_url}{path}", headers=self.headers, timeout=TIMEOUT)

    def restart(self) -> None:
        """Start the server again on the same port and data (after a kill); do not wait."""
        process = subprocess.Popen(
            [str(Path(sys.executable).with_name("hotpatch-server")), "serve",
             "--port", str(self.port)],
            env=self.server.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        self.server = attrs.evolve(self.server, process=process)

    def consistency(self) -> tuple[str, bool]:
        """After a cleanup pass: releases, blobs and reports against what was sent."""
        self.server.admin("cleanup", "--grace-hours", "0")
        releases = self.get("/releases").json()
        listed = {r["manifestId"] for r in releases}
        hashes = {r["hash"] for r in releases}
        stored = self.blobs()
        first = min(releases, key=lambda r: r["sequence"])
        assert self.fleet is not None  # set when deployed
        with self.fleet.settled():
            stats = self.get(f"/releases/{first['id']}/stats").json()
            counted, sent = stats["installations"]["applied"], len(self.fleet.sent)
        kept = sum(1 for m in self.acknowledged if m in listed)
        ok = kept == len(self.acknowledged) and stored == hashes and counted == sent
        text = (
            f"releases {kept}/{len(self.acknowledged)}, blobs {len(stored)}"
            f"{'=' if stored == hashes else '!='}{len(hashes)}, reports {counted}/{sent}"
        )
        return text, ok


@attrs.define
class Fault:
    """A fault: how to start it, how to end it, and what shows the server recovered."""

    name: str
    start: Callable[[], None]
    end: Callable[[], None]
    recovered: Callable[[], bool]
    #: Whether the fault lasts the run's ``--seconds`` (a kill is restarted at once,
    #: as a supervisor does; its recovery is the restart).
    lasts: bool = True


@attrs.frozen
class Row:
    """One line of the table."""

    fault: str
    tally: Tally
    recovery: float | None
    publish: str
    consistency: str
    consistent: bool

    @property
    def met(self) -> bool:
        """Whether every goal was met."""
        return (
            self.tally.slow == 0
            and self.recovery is not None
            and self.recovery <= RECOVERY_GOAL
            and self.consistent
        )


def _poll(check: Callable[[], bool], deadline: float = 30.0) -> float | None:
    """Seconds until ``check()`` is true (polled every 0.1 s), or None after ``deadline``."""
    started = time.monotonic()
    while time.monotonic() - started < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if check():
                return time.monotonic() - started
        time.sleep(0.1)
    return None


def run_fault(deployment: Deployment, fault: Fault, seconds: float) -> Row:
    """Inject ``fault`` for ``seconds`` under the fleet, end it; measure what users saw."""
    assert deployment.fleet is not None
    time.sleep(0.5)
    deployment.fleet.phase()
    fault.start()
    outcome: list[tuple[int | None, float]] = []
    publisher = threading.Thread(target=lambda: outcome.append(deployment.publish()))
    publisher.start()
    time.sleep(seconds if fault.lasts else 0.0)
    fault.end()
    recovery = _poll(fault.recovered)
    tally = deployment.fleet.phase()
    publisher.join(60)
    status, took = outcome[0] if outcome else (None, 0.0)
    return Row(fault.name, tally, recovery, f"{status or 'no answer'} in {took:.1f} s",
               *deployment.consistency())  # fmt: skip


@contextlib.contextmanager
def deployment(
    work: Path, name: str, blobs: Callable[[Path], set[str]], devices: int, **env: str
) -> Iterator[Deployment]:
    """Run a server process (``env`` over fault-run defaults) with a release and a fleet."""
    data = work / name
    settings = {"HOTPATCH_RATE_LIMIT_SCALE": "1000", "HOTPATCH_AUTO_PATCHES": "0", **env}
    with server_process(data, None, None, **settings) as server:
        port = int(server.base_url.rsplit(":", 1)[1])
        deployed = Deployment(server, lambda: blobs(data), port)
        status, _ = deployed.publish()
        if status != 201:
            raise SystemExit(f"{name}: the first publish failed ({status})")
        fleet = Fleet(server.base_url, deployed.acknowledged[0], devices)
        deployed.fleet = fleet
        try:
            with fleet:
                yield deployed
        finally:
            with contextlib.suppress(ProcessLookupError):
                deployed.server.process.kill()


def local_blobs(data: Path) -> set[str]:
    """Return the archives in a data directory's local store."""
    return {p.name for p in (data / "blobs").glob("??/*") if p.is_file()}


def _published(deployment: Deployment) -> Callable[[], bool]:
    return lambda: deployment.publish()[0] == 201


def postgres_faults(work: Path, args: argparse.Namespace, rows: list[Row]) -> None:
    """PostgreSQL restart and connection drops, Redis down: one PostgreSQL + Redis deployment."""
    reason = PrivatePostgres.available() or PrivateRedis.available()
    if reason:
        print(f"skipped postgres/redis faults: {reason}")
        return
    bin_dir = postgres_bin()
    assert bin_dir is not None  # checked by available()
    pg, redis = PrivatePostgres(bin_dir), PrivateRedis(work)
    pg.init()
    pg.start()
    redis.start()
    try:
        with FaultProxy(("127.0.0.1", pg.port)) as proxy, deployment(
            work, "postgres", local_blobs, args.devices,
            DATABASE_URL=pg.url.replace(f":{pg.port}/", f":{proxy.port}/"),
            JWT_SECRET="f" * 48, REDIS_URL=redis.url, HOTPATCH_CACHE_SECONDS="1",
        ) as deployed:  # fmt: skip

            def database_answers() -> bool:
                return deployed.get("/releases").status_code == 200

            def cache_answers() -> bool:
                return bool(deployed.get("/health").json()["cache"] == "ok")

            faults = [
                Fault("postgres restart", pg.stop, pg.start, database_answers),
                Fault("postgres drop", lambda: proxy.set(Mode.DROP),
                      lambda: proxy.set(Mode.FORWARD), database_answers),
                Fault("redis down", redis.stop, redis.start, cache_answers),
            ]  # fmt: skip
            rows.extend(
                run_fault(deployed, f, args.seconds) for f in faults if _wanted(f.name, args)
            )
    finally:
        redis.stop()
        pg.remove()


def s3_faults(work: Path, args: argparse.Namespace, rows: list[Row]) -> None:
    """Make the object store answer 503, then hang: SQLite + moto's S3 behind a proxy."""
    moto = MotoS3()
    moto.start()
    try:
        with FaultProxy(("127.0.0.1", moto.port), delay=0.05) as proxy, deployment(
            work, "s3", lambda _: {k.removeprefix("archives/") for k in moto.objects()},
            args.devices, S3_BUCKET=moto.bucket, S3_ENDPOINT=f"http://{proxy.address}",
            AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test", HOTPATCH_S3_TIMEOUT="1",
        ) as deployed:  # fmt: skip
            for name, mode in (("s3 503", Mode.HTTP_503), ("s3 hang", Mode.HANG)):
                fault = Fault(name, lambda m=mode: proxy.set(m),  # type: ignore[misc]
                              lambda: proxy.set(Mode.FORWARD), _published(deployed))  # fmt: skip
                if _wanted(name, args):
                    rows.append(run_fault(deployed, fault, args.seconds))
    finally:
        moto.stop()


def _mount_small_disk(where: Path) -> bool:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    where.mkdir(parents=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(where)],
        capture_output=True, check=False,
    )  # fmt: skip
    return done.returncode == 0


def embedded_faults(work: Path, args: argparse.Namespace, rows: list[Row]) -> None:
    """SIGKILL and restart, and a full disk: the embedded default (SQLite, local disk)."""
    disk = work / "disk"
    mounted = _mount_small_disk(disk)
    if not mounted:
        print("skipped disk full: mounting a tmpfs needs root")
    home = disk if mounted else work
    try:
        with deployment(home, "embedded", local_blobs, args.devices) as deployed:

            def kill() -> None:
                deployed.server.process.kill()
                deployed.server.process.wait(10)

            def healthy() -> bool:
                return deployed.get("/health").status_code == 200

            faults = [Fault("sigkill", kill, deployed.restart, healthy, lasts=False)]
            filler = home / "filler"
            if mounted:

                def fill() -> None:
                    stat = os.statvfs(home)
                    filler.write_bytes(bytes(max(stat.f_bavail * stat.f_frsize - 65536, 0)))

                faults.append(Fault("disk full", fill, filler.unlink, _published(deployed)))
            rows.extend(
                run_fault(deployed, f, args.seconds) for f in faults if _wanted(f.name, args)
            )
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(disk)], check=False)


def _wanted(name: str, args: argparse.Namespace) -> bool:
    return not args.only or name in args.only


def run_faults(deployed: Deployment, faults: list[Fault], args: argparse.Namespace) -> list[Row]:
    """Run each of ``faults`` asked for (``--only``) in turn on one deployment."""
    return [run_fault(deployed, f, args.seconds) for f in faults if _wanted(f.name, args)]


def print_table(rows: list[Row]) -> None:
    """Print the table of the module docstring's columns, one row per fault."""
    header = ("fault", "checks ok / fast error / slow", "reports ok / fast error / slow",
              "recovery", "publish during it", "consistency", "goals")  # fmt: skip
    lines = [header] + [
        (
            r.fault,
            str(r.tally.checks),
            str(r.tally.reports),
            "never" if r.recovery is None else f"{r.recovery:.1f} s",
            r.publish,
            r.consistency,
            "met" if r.met else "MISSED",
        )
        for r in rows
    ]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    for number, line in enumerate(lines):
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)))
        if number == 0:
            print("  ".join("-" * width for width in widths))


def main() -> int:
    """Run every fault (or ``--only`` some), print the table, exit 1 if a goal is missed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="how long each fault lasts")
    parser.add_argument("--devices", type=int, default=6, help="devices in the fleet")
    parser.add_argument("--only", nargs="*", default=[], help="fault names to run")
    args = parser.parse_args()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="hotpatch-faults-") as directory:
        work = Path(directory)
        for group in (postgres_faults, s3_faults, embedded_faults):
            group(work, args, rows)
    print()
    print_table(rows)
    missed = [r.fault for r in rows if not r.met]
    print()
    print(f"goals missed: {', '.join(missed)}" if missed else "every goal met")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
