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

import time
from collections.abc import Callable

from hotpatch_server.health import DependencyHealth

__all__ = ["DependencyHealth", "RedisHealth"]


def RedisHealth(  # noqa: N802 - reads as the class it makes
    retry_seconds: float = 2.0, clock: Callable[[], float] = time.monotonic
) -> DependencyHealth:
    """Return the health of the server's Redis (see the module docstring)."""
    return DependencyHealth(
        "Redis",
        "rate limits count per process and other processes see publishes when their cache expires",
        retry_seconds,
        clock,
    )
