"""Faults on demand, for the fault-injection tests and ``nox -s faults`` (issue 18).

Nothing here runs in a serving process. It starts private instances of the
server's dependencies, never touching the machine's shared ones:

- :class:`PrivatePostgres`: a cluster made with ``initdb`` in a temporary
  directory, started and stopped with ``pg_ctl``;
- :class:`PrivateRedis`: a ``redis-server`` of its own;
- :class:`MotoS3`: moto's S3-compatible server process, with one bucket;
- :class:`FaultProxy`: a TCP proxy put between the server and a dependency
  (an S3 endpoint, PostgreSQL), which forwards, or answers HTTP 503, or
  hangs, or is slow, or drops every connection, as it is told.

PostgreSQL and Redis run on the real clock even when the caller runs under
libfaketime (the clock session): :func:`real_clock_env` strips it. moto's
server keeps the caller's clock, or runs shifted from it (:attr:`MotoS3.faketime`)
to test a server and an object store whose clocks disagree.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from enum import Enum
from pathlib import Path
from typing import Any

import attrs
import boto3

from hotpatch_server.testing import free_port

__all__ = [
    "FaultHarnessError",
    "FaultProxy",
    "Mode",
    "MotoS3",
    "PrivatePostgres",
    "PrivateRedis",
    "libfaketime",
    "real_clock_env",
]


class FaultHarnessError(RuntimeError):
    """A private dependency could not be made, started or stopped."""


def real_clock_env() -> dict[str, str]:
    """Return this process's environment without libfaketime (for infrastructure processes)."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("FAKETIME", "LD_PRELOAD"))}


def libfaketime() -> str | None:
    """Return the path of Debian's libfaketime (package ``faketime``), or None if absent."""
    found = sorted(Path("/usr/lib").glob("*/faketime/libfaketime.so.1"))
    return str(found[0]) if found else None


def postgres_bin() -> Path | None:
    """Return the directory holding ``initdb`` and ``pg_ctl``, or None if not installed."""
    found = shutil.which("initdb")
    if found is not None:
        return Path(found).parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return versions[-1].parent if versions else None


@attrs.define
class PrivatePostgres:
    """A PostgreSQL cluster of the caller's own, on a free loopback port, trust auth.

    As root, the tools run as the ``postgres`` user (``runuser``), and the
    cluster lives outside any private temporary directory that user cannot reach.
    """

    bin: Path
    directory: Path = attrs.field(
        factory=lambda: Path(tempfile.mkdtemp(prefix="hotpatch-pg-")) / "pg"
    )
    port: int = attrs.field(factory=free_port)

    @classmethod
    def available(cls) -> str | None:
        """Return why a private cluster cannot be made here, or None if it can."""
        if postgres_bin() is None:
            return "initdb is not installed (apt-get install postgresql)"
        if os.geteuid() == 0 and shutil.which("runuser") is None:
            return "as root, initdb needs runuser to run as the postgres user"
        return None

    @property
    def url(self) -> str:
        """The SQLAlchemy URL of its ``postgres`` database."""
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str, check: bool = True) -> None:
        command = [str(self.bin / tool), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(  # noqa: S603 - Debian's PostgreSQL tools
            command, env=real_clock_env(), capture_output=True, text=True, timeout=60, check=False
        )
        if check and done.returncode != 0:
            raise FaultHarnessError(f"{tool} failed: {done.stderr.strip()[-400:]}")

    def init(self) -> None:
        """Create the cluster (``initdb``)."""
        self.directory.parent.chmod(0o755)
        self.directory.mkdir()
        if os.geteuid() == 0:
            shutil.chown(self.directory, "postgres")
        self._run("initdb", "-D", str(self.directory / "data"), "-A", "trust", "-U", "postgres")

    def start(self) -> None:
        """Start it and wait until it accepts connections."""
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off"
        log = str(self.directory / "log")
        self._run("pg_ctl", "-D", str(self.directory / "data"), "-o", options, "-l", log, "-w",
                  "start")  # fmt: skip

    def stop(self) -> None:
        """Stop it (fast shutdown: sessions are disconnected)."""
        self._run("pg_ctl", "-D", str(self.directory / "data"), "-m", "fast", "-w", "stop")

    def remove(self) -> None:
        """Stop it whatever state it is in, and delete its files."""
        self._run("pg_ctl", "-D", str(self.directory / "data"), "-m", "immediate", "stop",
                  check=False)  # fmt: skip
        shutil.rmtree(self.directory.parent, ignore_errors=True)


@attrs.define
class PrivateRedis:
    """A ``redis-server`` of the caller's own on a fixed loopback port, keeping nothing on disk."""

    directory: Path
    port: int = attrs.field(factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @classmethod
    def available(cls) -> str | None:
        """Return why a private Redis cannot be started here, or None if it can."""
        if shutil.which("redis-server") is None:
            return "redis-server is not installed (apt-get install redis-server)"
        return None

    @property
    def url(self) -> str:
        """Its ``redis://`` URL."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start it and wait until it answers PING."""
        self.process = subprocess.Popen(  # noqa: S603 - Debian's redis-server
            [
                str(shutil.which("redis-server")),
                "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no", "--dir", str(self.directory),
            ],
            stdout=subprocess.DEVNULL,
            env=real_clock_env(),
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while not self._answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise FaultHarnessError(f"redis-server did not start on port {self.port}")
            time.sleep(0.1)

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as connection:
                connection.settimeout(1)
                connection.sendall(b"PING\r\n")
                return connection.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        """Stop it (SIGTERM) and wait for it to exit."""
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)
            self.process = None


@attrs.define
class MotoS3:
    """moto's S3 server (``moto_server``, beside this Python) on a free loopback port.

    :meth:`start` also makes :attr:`bucket`; :meth:`objects` lists what it holds.
    Credentials are moto's: any access key and secret work. With
    :attr:`faketime` (a libfaketime offset such as ``"-3h"``) its clock is
    shifted from the real one; otherwise it runs on the caller's clock.
    """

    bucket: str = "hotpatch-bundles"
    port: int = attrs.field(factory=free_port)
    faketime: str | None = None
    process: subprocess.Popen[bytes] | None = None

    @staticmethod
    def executable() -> Path:
        """Where ``moto_server`` is (installed with the test dependencies)."""
        return Path(sys.executable).with_name("moto_server")

    @property
    def endpoint(self) -> str:
        """Its ``http://`` endpoint."""
        return f"http://127.0.0.1:{self.port}"

    def client(self, endpoint: str | None = None) -> Any:
        """Return a boto3 S3 client at ``endpoint`` (default: straight at the server)."""
        return boto3.client(
            "s3",
            endpoint_url=endpoint or self.endpoint,
            aws_access_key_id="test",
            aws_secret_access_key="test",  # noqa: S106 - moto accepts any
            region_name="us-east-1",
        )

    def start(self) -> None:
        """Start it, wait until it answers, and create the bucket."""
        self.process = subprocess.Popen(  # noqa: S603 - moto's console script
            [str(self.executable()), "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=self._environment(),
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    break
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise FaultHarnessError("moto_server did not start") from None
                time.sleep(0.1)
        self.client().create_bucket(Bucket=self.bucket)

    def _environment(self) -> dict[str, str]:
        if self.faketime is None:
            return dict(os.environ)
        library = libfaketime()
        if library is None:
            raise FaultHarnessError("a shifted clock needs libfaketime: apt-get install faketime")
        return real_clock_env() | {"LD_PRELOAD": library, "FAKETIME": self.faketime}

    def objects(self) -> list[str]:
        """Return every object key in the bucket."""
        listing = self.client().list_objects_v2(Bucket=self.bucket)
        return [str(item["Key"]) for item in listing.get("Contents", [])]

    def stop(self) -> None:
        """Stop it."""
        if self.process is not None:
            self.process.terminate()
            self.process.wait(30)
            self.process = None


class Mode(Enum):
    """What a :class:`FaultProxy` does with a connection."""

    #: Forward bytes both ways.
    FORWARD = "forward"
    #: Read the request's head, answer ``503 Slow Down`` (S3's throttling error) and close.
    HTTP_503 = "http-503"
    #: Accept and read, never answer (a timeout for the caller).
    HANG = "hang"
    #: Forward, waiting ``delay`` seconds before each chunk (a slow link).
    SLOW = "slow"
    #: Close every open connection at once, and each new one as it arrives.
    DROP = "drop"


_SLOW_DOWN_BODY = (
    b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
)
_S3_SLOW_DOWN = (
    b"HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\nConnection: close\r\n"
    + f"Content-Length: {len(_SLOW_DOWN_BODY)}\r\n\r\n".encode()
    + _SLOW_DOWN_BODY
)


class FaultProxy:
    """A TCP proxy from a free loopback port to ``target``, faulting on command (:class:`Mode`).

    Each connection is served by two threads; the mode is read per chunk, so a
    change applies to open connections too. Use as a context manager.
    """

    def __init__(self, target: tuple[str, int], delay: float = 0.5) -> None:
        """Forward to ``target``; :attr:`Mode.SLOW` waits ``delay`` seconds per chunk."""
        self.target = target
        self.delay = delay
        self.mode = Mode.FORWARD
        self.connections = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> FaultProxy:
        """Start accepting connections."""
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        """Stop accepting and close every connection."""
        self._closed.set()
        self._listener.close()
        self._drop_all()

    @property
    def address(self) -> str:
        """``127.0.0.1:port``, where callers connect."""
        return f"127.0.0.1:{self.port}"

    def set(self, mode: Mode) -> None:
        """Switch to ``mode``; :attr:`Mode.DROP` also closes what is open now."""
        self.mode = mode
        if mode is Mode.DROP:
            self._drop_all()

    def _drop_all(self) -> None:
        with self._lock:
            for connection in self._open:
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)
                connection.close()
            self._open.clear()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _track(self, *connections: socket.socket) -> None:
        with self._lock:
            self._open.update(connections)

    def _serve(self, client: socket.socket) -> None:
        mode = self.mode
        if mode is Mode.DROP:
            client.close()
            return
        self._track(client)
        if mode is Mode.HTTP_503:
            self._answer_503(client)
            return
        if mode is Mode.HANG:
            self._swallow(client)
            return
        try:
            upstream = socket.create_connection(self.target, timeout=5)
        except OSError:
            client.close()
            return
        upstream.settimeout(None)
        self._track(upstream)
        threading.Thread(target=self._pump, args=(upstream, client), daemon=True).start()
        self._pump(client, upstream)

    def _answer_503(self, client: socket.socket) -> None:
        head = b""
        try:
            while b"\r\n\r\n" not in head and len(head) < 65536:
                chunk = client.recv(65536)
                if not chunk:
                    break
                head += chunk
            client.sendall(_S3_SLOW_DOWN)
        except OSError:
            pass
        finally:
            client.close()

    def _swallow(self, client: socket.socket) -> None:
        try:
            while client.recv(65536):
                if self.mode is not Mode.HANG:
                    break
        except OSError:
            pass
        finally:
            client.close()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                if self.mode is Mode.SLOW:
                    time.sleep(self.delay)
                elif self.mode is Mode.HANG:
                    continue
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)
                end.close()
