"""Slow clients against a real ``hotpatch-server serve`` process (issue 15, item 6).

Before, the server had no header or body deadline and no connection cap:
306 half-open requests from one client made ``/health`` time out. Each test
here holds connections open the way such a client does and asserts that
the server closes them by its deadline and keeps answering meanwhile.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from hotpatch_server.testing import ServerProcess, server_process

#: The deadlines the tests set (seconds); the defaults are 10 and 600.
HEADER_TIMEOUT = 1.0
BODY_TIMEOUT = 1.5


@pytest.fixture(scope="module")
def slow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server process with short deadlines and a cap of 30 connections, for the module."""
    with server_process(
        tmp_path_factory.mktemp("slow") / "data",
        HOTPATCH_HEADER_TIMEOUT=str(HEADER_TIMEOUT),
        HOTPATCH_BODY_TIMEOUT=str(BODY_TIMEOUT),
        HOTPATCH_MAX_CONNECTIONS="30",
    ) as server:
        yield server


def _address(server: ServerProcess) -> tuple[str, int]:
    url = httpx.URL(server.base_url)
    assert url.port is not None
    return url.host, url.port


def _closed_by_server(connection: socket.socket, within: float) -> bool:
    """Whether the server closes ``connection`` (EOF or reset) within ``within`` seconds."""
    connection.settimeout(within)
    try:
        while connection.recv(4096):
            pass  # a response before the close (none is expected) is read and ignored
    except TimeoutError:
        return False
    except OSError:  # reset: closed too
        return True
    return True


@contextlib.contextmanager
def _half_open(server: ServerProcess, count: int, sent: bytes) -> Iterator[list[socket.socket]]:
    connections = []
    try:
        for _ in range(count):
            connection = socket.create_connection(_address(server))
            connection.sendall(sent)
            connections.append(connection)
        yield connections
    finally:
        for connection in connections:
            connection.close()


def test_half_open_requests_are_closed_at_the_header_deadline(slow_server: ServerProcess) -> None:
    """Requests whose headers never end are closed; the server answers others meanwhile."""
    partial = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: "
    with _half_open(slow_server, 20, partial) as connections:
        started = time.monotonic()
        assert httpx.get(f"{slow_server.base_url}/health", timeout=5).status_code == 200
        assert time.monotonic() - started < 2.0
        assert all(_closed_by_server(c, HEADER_TIMEOUT + 3) for c in connections)


def test_an_idle_connection_is_closed_without_a_request(slow_server: ServerProcess) -> None:
    """A connection that sends nothing at all is closed too."""
    with _half_open(slow_server, 1, b"") as (connection,):
        assert _closed_by_server(connection, HEADER_TIMEOUT + 6)  # or by the keep-alive timeout


def test_a_trickled_body_is_cut_off_at_the_body_deadline(slow_server: ServerProcess) -> None:
    """A request that sends its body a few bytes at a time is cut off, complete headers or not."""
    head = (
        b"POST /installations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 100000\r\n\r\n"
    )
    with _half_open(slow_server, 1, head) as (connection,):
        started = time.monotonic()
        connection.settimeout(0.3)
        closed = False
        while time.monotonic() - started < BODY_TIMEOUT + 5:
            try:
                connection.sendall(b" ")
                if connection.recv(4096) == b"":
                    closed = True
                    break
            except TimeoutError:
                continue
            except OSError:
                closed = True
                break
        assert closed, "the trickled body kept the request open"
        assert time.monotonic() - started >= BODY_TIMEOUT - 0.2  # not before its deadline


def test_above_the_connection_cap_requests_get_503_at_once(slow_server: ServerProcess) -> None:
    """With every slot held by a slow client, a request is refused fast, then served again."""
    partial = b"GET /health HTTP/1.1\r\nHost: x\r\n"
    with _half_open(slow_server, 30, partial):
        started = time.monotonic()
        refused = httpx.get(f"{slow_server.base_url}/health", timeout=5)
        assert refused.status_code == 503
        assert time.monotonic() - started < 2.0
    deadline = time.monotonic() + HEADER_TIMEOUT + 5
    while time.monotonic() < deadline:
        if httpx.get(f"{slow_server.base_url}/health", timeout=5).status_code == 200:
            break
        time.sleep(0.2)
    else:
        pytest.fail("the server did not recover once the slow connections were closed")
