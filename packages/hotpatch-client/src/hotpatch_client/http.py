"""The device's HTTP client: every request ends by its deadline, however slowly the server talks.

A read timeout alone does not bound a request: a server (or a mirror in
the middle) that sends one byte of its status line or headers every few
seconds resets it forever (attack A9). :func:`device_http_client` builds an
``httpx.Client`` whose sockets consult the deadline of the request in
progress, set with :func:`request_deadline`: every connect, write and read
waits at most until that deadline, and one that starts after it fails at
once with a timeout (``httpx.TimeoutException``). Requests made outside a
``request_deadline`` block keep httpx's own timeouts.

:class:`hotpatch_client.Agent` puts every request it makes under a
deadline (``DownloadPolicy.request_deadline`` for checks, roots and
reports; ``DownloadPolicy.deadline`` for a whole archive or patch). With a
client of another kind (an in-memory test transport, say) the agent still
enforces the deadline between body chunks, but cannot interrupt a status
line or headers that trickle in: use :func:`device_http_client` in apps.
"""

from __future__ import annotations

import contextlib
import contextvars
import ssl
import time
from collections.abc import Iterable, Iterator
from typing import Any

import httpcore
import httpx

__all__ = ["DeadlineBackend", "device_http_client", "remaining", "request_deadline"]

_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "hotpatch_request_deadline", default=None
)


@contextlib.contextmanager
def request_deadline(seconds: float) -> Iterator[None]:
    """Bound the requests made in this block (on this thread) to ``seconds`` from now in total.

    Nested blocks keep the earlier of the two deadlines.
    """
    deadline = time.monotonic() + seconds
    outer = _DEADLINE.get()
    token = _DEADLINE.set(deadline if outer is None else min(outer, deadline))
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def remaining() -> float | None:
    """Seconds left before the current block's deadline (never negative), or None outside one."""
    deadline = _DEADLINE.get()
    return None if deadline is None else max(0.0, deadline - time.monotonic())


def _bounded(timeout: float | None, error: type[Exception]) -> float | None:
    """``timeout`` cut to the time left; raise ``error`` when none is left."""
    left = remaining()
    if left is None:
        return timeout
    if left <= 0:
        raise error("the request ran past its deadline")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    """A socket stream whose every operation ends by the current request's deadline."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _bounded(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _bounded(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        bounded = _bounded(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._inner.start_tls(ssl_context, server_hostname, bounded))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class DeadlineBackend(httpcore.NetworkBackend):
    """httpcore's socket backend with :func:`request_deadline` applied to every operation."""

    def __init__(self, inner: httpcore.NetworkBackend | None = None) -> None:
        """Wrap ``inner`` (default: httpcore's synchronous socket backend)."""
        self._inner = inner or httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        """Connect, waiting at most until the deadline."""
        bounded = _bounded(timeout, httpcore.ConnectTimeout)
        stream = self._inner.connect_tcp(host, port, bounded, local_address, socket_options)
        return _DeadlineStream(stream)

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        """Connect to a Unix socket, waiting at most until the deadline."""
        bounded = _bounded(timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._inner.connect_unix_socket(path, bounded, socket_options))

    def sleep(self, seconds: float) -> None:
        """Sleep (httpcore's retry back-off)."""
        self._inner.sleep(seconds)


class _DeadlineTransport(httpx.HTTPTransport):
    """httpx's transport over :class:`DeadlineBackend` sockets (no proxy support).

    httpx builds its connection pool without a way to pass a network
    backend; this replaces that pool with one over :class:`DeadlineBackend`
    (the slow-server tests fail if a new httpx stops using it).
    """

    def __init__(self, *, verify: ssl.SSLContext | bool, limits: httpx.Limits) -> None:
        super().__init__(verify=verify, limits=limits)
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify, trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=DeadlineBackend(),
        )


def device_http_client(
    *,
    verify: ssl.SSLContext | bool = True,
    timeout: float = 30.0,
    limits: httpx.Limits | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Client:
    """Build an ``httpx.Client`` for :class:`hotpatch_client.Agent` that honours its deadlines.

    ``timeout`` is httpx's per-operation timeout (connect, each read, each
    write); the agent's deadlines bound each request as a whole on top of
    it. Proxies from the environment are not used.
    """
    return httpx.Client(
        transport=_DeadlineTransport(verify=verify, limits=limits or httpx.Limits()),
        timeout=timeout,
        headers=headers,
        trust_env=False,
    )
