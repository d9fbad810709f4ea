"""Serving over HTTP/1.1: uvicorn with read deadlines and a connection cap.

Without them a slow or hostile client holds a connection for as long as it
likes: 306 half-open requests from one client made ``/health`` time out.
``hotpatch-server serve`` runs uvicorn with:

- a **header deadline** (``HOTPATCH_HEADER_TIMEOUT``, 10 s): a connection
  whose request line and headers are not complete that long after it
  opened, or after its previous response, is closed;
- a **body deadline** (``HOTPATCH_BODY_TIMEOUT``, 600 s): a request whose
  body is not complete that long after its headers is cut off (the
  handler sees a disconnect; an upload in progress is discarded);
- a **connection cap** (``HOTPATCH_MAX_CONNECTIONS``, 1,000): above it,
  new requests get ``503`` at once instead of queueing;
- uvicorn's keep-alive timeout (5 s) for idle connections between requests.

Behind a reverse proxy, set ``FORWARDED_ALLOW_IPS`` (uvicorn reads it) to
the proxy's address: only then is ``X-Forwarded-For`` believed, and with it
the client address the per-address rate limits use. The default,
``127.0.0.1``, believes a proxy on the same machine.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from hotpatch_server.settings import Settings

__all__ = ["deadline_protocol", "serve"]

log = logging.getLogger(__name__)


class _DeadlineProtocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline on request headers and on request bodies."""

    header_timeout: float = 10.0
    body_timeout: float = 600.0
    _deadline: asyncio.TimerHandle | None = None

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, self._expired)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        state = self.conn.their_state
        if state is h11.IDLE or state is h11.SEND_BODY:
            part = "headers" if state is h11.IDLE else "body"
            log.debug(
                "closing a connection from %s: its request %s were too slow", self.client, part
            )
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Start the header deadline of the first request."""
        super().connection_made(transport)
        self._arm(self.header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        """Drop the deadline with the connection."""
        self._disarm()
        super().connection_lost(exc)

    def handle_events(self) -> None:
        """Once headers are complete, time the body (if any); once it is complete, stop."""
        before = self.conn.their_state
        super().handle_events()
        after = self.conn.their_state
        if after is before:
            return
        if after is h11.SEND_BODY:
            self._arm(self.body_timeout)
        elif after is not h11.IDLE:
            self._disarm()

    def on_response_complete(self) -> None:
        """Time the headers of the next request on this connection."""
        if not self.transport.is_closing():
            self._arm(self.header_timeout)
        super().on_response_complete()


def deadline_protocol(header_timeout: float, body_timeout: float) -> type[H11Protocol]:
    """Return uvicorn's h11 protocol class with these deadlines, in seconds."""
    return type(
        "HotPatchH11Protocol",
        (_DeadlineProtocol,),
        {"header_timeout": header_timeout, "body_timeout": body_timeout},
    )


def serve(app: Any, settings: Settings, host: str, port: int) -> None:
    """Run ``app`` with uvicorn until it is stopped, with the deadlines and cap of ``settings``."""
    uvicorn.run(
        app,
        host=host,
        port=port,
        http=deadline_protocol(settings.header_timeout, settings.body_timeout),
        limit_concurrency=settings.max_connections,
        timeout_keep_alive=5,
        log_level="info",
    )
