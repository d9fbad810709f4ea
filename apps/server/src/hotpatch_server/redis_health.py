"""Whether Redis answers: one log line when it goes away, one when it is back.

Redis is optional and, when configured, only shares what would otherwise be
per process: rate-limit budgets and cache invalidations. While it is away
the server keeps serving (docs/server.md, "When Redis is away"):

- rate limits count in each process (a budget per process, not shared);
- a publish is seen by other processes when their cache entry expires
  (``HOTPATCH_CACHE_SECONDS``) instead of at once; when Redis is back, each
  process drops its whole cache once, since announcements were missed;
- ``/health`` answers ``degraded`` (HTTP 200) and names the cache as
  unavailable.

Each user of Redis reports failures and successes here. After a failure,
Redis is not tried again for ``retry_seconds``, so an outage costs requests
no connection attempts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import attrs

__all__ = ["RedisHealth"]

log = logging.getLogger(__name__)


@attrs.define
class RedisHealth:
    """The state of the server's Redis as its users last saw it."""

    retry_seconds: float = 2.0
    clock: Callable[[], float] = time.monotonic
    down_since: float | None = None
    _retry_at: float = 0.0

    @property
    def up(self) -> bool:
        """Whether the last use of Redis succeeded."""
        return self.down_since is None

    def usable(self) -> bool:
        """Whether to try Redis now: it is up, or its retry pause is over."""
        return self.down_since is None or self.clock() >= self._retry_at

    def failed(self, error: BaseException, doing: str) -> None:
        """Record a failure; log it if Redis was up until now."""
        now = self.clock()
        if self.down_since is None:
            self.down_since = now
            log.warning(
                "Redis is unavailable (%s while %s: %s); rate limits count per process and "
                "other processes see publishes when their cache expires, until it is back",
                type(error).__name__,
                doing,
                error,
            )
        self._retry_at = now + self.retry_seconds

    def succeeded(self) -> bool:
        """Record a success; log and return True if Redis was down until now."""
        if self.down_since is None:
            return False
        log.warning("Redis is back after %.0f s", self.clock() - self.down_since)
        self.down_since = None
        return True
