"""A9, the device under a slow server: every request ends by its deadline, and the app never waits.

The first tests talk to a real socket that trickles its answer (status
line, headers or body) a byte at a time, through the client
:func:`device_http_client` builds; before it, a trickled status line or
header block kept ``sync()`` running for the life of the process. The last
ones hold the update check while the app launches and confirms its bundle:
before, ``notify_ready()`` waited behind the network, and two launches later
a good release was reverted.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import attrs
import httpx
import pytest

from hotpatch_client import Agent, NetworkError, SyncResult, SyncStatus, device_http_client
from hotpatch_client.http import request_deadline
from hotpatch_client.testing import FakeClock, MemoryFileSystem, RepositorySimulator, sample_bundle
from hotpatch_client.transfer import DownloadPolicy

#: The tests' request deadline; a trickle would otherwise last for ever.
DEADLINE = 1.0
#: How long a test waits for what must end near DEADLINE before calling it stuck.
STUCK = 15.0

HEADERS = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n"


@attrs.define
class Trickler:
    """A TCP server that answers every request with ``answer``, one byte every ``gap`` seconds."""

    answer: bytes
    gap: float = 0.05
    stop: threading.Event = attrs.field(factory=threading.Event)
    listener: socket.socket = attrs.field(factory=socket.socket)

    @property
    def url(self) -> str:
        host, port = self.listener.getsockname()
        return f"http://{host}:{port}"

    def serve(self) -> None:
        self.listener.settimeout(0.1)
        while not self.stop.is_set():
            try:
                connection, _ = self.listener.accept()
            except TimeoutError:
                continue
            threading.Thread(target=self._talk, args=(connection,), daemon=True).start()

    def _talk(self, connection: socket.socket) -> None:
        with connection:
            connection.recv(65536)  # the request
            for index in range(len(self.answer)):
                if self.stop.wait(self.gap):
                    return
                try:
                    connection.sendall(self.answer[index : index + 1])
                except OSError:  # the client gave up: what the test wants
                    return


@pytest.fixture
def trickler() -> Iterator[Trickler]:
    """A trickling server on loopback (its answer set by the test)."""
    server = Trickler(b"")
    server.listener.bind(("127.0.0.1", 0))
    server.listener.listen()
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    yield server
    server.stop.set()
    thread.join(5)
    server.listener.close()


def _in_thread(work: Callable[[], SyncResult]) -> tuple[threading.Thread, list[SyncResult]]:
    out: list[SyncResult] = []

    def run() -> None:
        out.append(work())

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


@pytest.mark.parametrize(
    ("where", "answer"),
    [
        ("status line", b"HTTP/1.1 200 OK\r\n" * 100),
        ("headers", b"HTTP/1.1 200 OK\r\n" + b"X-Slow: a\r\n" * 200),
        ("body", HEADERS + b" " * 100_000),
    ],
)
def test_a9_a_check_answer_trickled_a_byte_at_a_time_ends_at_the_deadline(
    trickler: Trickler, tmp_path: Path, where: str, answer: bytes
) -> None:
    """The check fails with a network error near its deadline wherever the trickle is."""
    trickler.answer = answer
    sim = RepositorySimulator()
    config = sim.config(server_url=trickler.url, download=DownloadPolicy(request_deadline=DEADLINE))
    with (
        device_http_client(timeout=10) as http,
        Agent(config, http=http, storage_dir=tmp_path, clock=FakeClock()) as agent,
    ):
        agent.on_launch()
        started = time.monotonic()
        thread, out = _in_thread(agent.sync)
        thread.join(STUCK)
        assert not thread.is_alive(), f"a trickled {where} kept the sync running"
        elapsed = time.monotonic() - started
    result = out[0]
    assert result.status is SyncStatus.FAILED
    assert isinstance(result.error, NetworkError)
    assert elapsed < DEADLINE + 2.0, f"took {elapsed:.1f} s"


def test_the_deadline_bounds_a_request_made_directly_with_the_device_client(
    trickler: Trickler,
) -> None:
    """``request_deadline`` raises httpx's timeout once the time is spent, even mid-headers."""
    trickler.answer = b"HTTP/1.1 200 OK\r\n" * 100
    with device_http_client(timeout=10) as http:
        started = time.monotonic()
        with pytest.raises(httpx.TimeoutException), request_deadline(0.5):
            http.get(trickler.url)
        assert time.monotonic() - started < 2.5


V1 = sample_bundle("v1")


@attrs.define
class HeldCheck:
    """A network in front of ``sim`` that holds every update check until released."""

    sim: RepositorySimulator
    release: threading.Event = attrs.field(factory=threading.Event)
    holding: threading.Event = attrs.field(factory=threading.Event)

    def handle(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/update/check":
            self.holding.set()
            self.release.wait(STUCK)
        return self.sim.handle(request)


def test_a9_notify_ready_and_apply_do_not_wait_for_a_stuck_check() -> None:
    """While a background sync waits on the server, the app confirms its bundle at once."""
    sim = RepositorySimulator()
    fs = MemoryFileSystem()
    sim.publish(V1)
    network = HeldCheck(sim)
    network.release.set()  # the first sync goes through
    http = httpx.Client(transport=httpx.MockTransport(network.handle))
    with Agent(sim.config(), http=http, fs=fs, clock=FakeClock()) as agent:
        agent.on_launch()
        assert agent.sync().status is SyncStatus.STAGED
        agent.on_launch()  # the next launch runs v1 on trial
        trial = agent.state.trial
        assert trial is not None
        network.release.clear()
        thread, out = _in_thread(agent.sync)
        assert network.holding.wait(STUCK)
        started = time.monotonic()
        agent.notify_ready()  # the first screen rendered
        waited = time.monotonic() - started
        assert not network.release.is_set()  # it returned while the check was still held
        assert waited < 1.0
        assert agent.state.confirmed == trial
        assert agent.state.trial is None
        network.release.set()
        thread.join(STUCK)
        assert not thread.is_alive()
    assert out[0].status is SyncStatus.UP_TO_DATE
