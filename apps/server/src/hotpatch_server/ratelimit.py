"""Rate limits (docs/security.md S5): fixed windows, answered with 429 and ``Retry-After``.

Two stores:

- :class:`MemoryLimiter` counts in this process;
- :class:`RedisLimiter` counts in Redis, so several server processes share
  one budget (one ``INCR`` + ``EXPIRE`` round trip, pipelined).

Which store each limit uses is decided in :func:`build_limits`: with
``REDIS_URL`` set, authentication, publishing and installation reports are
shared; the update check stays per process, because it is the hot path and a
device id is chosen by the client anyway (put a per-IP limit in the load
balancer for that). Reports and registrations are also limited per client
address (``telemetry``), since a caller can invent device ids without end.
"""

from __future__ import annotations

import math
from typing import Any, Protocol

import attrs
from litestar import Request
from redis.asyncio import Redis
from redis.exceptions import RedisError

from hotpatch_server.health import DependencyHealth
from hotpatch_server.problems import Problem
from hotpatch_server.redis_health import RedisHealth

__all__ = [
    "Limit",
    "Limiter",
    "Limits",
    "MemoryLimiter",
    "RedisLimiter",
    "build_limits",
    "client_address",
]


class Limiter(Protocol):
    """Counts hits per key and window."""

    async def hit(self, key: str, window: int, now: float) -> int:
        """Record a hit for ``key`` in the window containing ``now``; return the count."""


class MemoryLimiter:
    """Per-process fixed-window counters."""

    def __init__(self) -> None:
        """Start empty."""
        self._counts: dict[tuple[str, int], int] = {}
        self._newest: dict[int, int] = {}

    async def hit(self, key: str, window: int, now: float) -> int:
        """Count locally; a window's counters are dropped once the next window starts."""
        slot = int(now // window)
        if self._newest.get(window, slot) != slot:
            # Once per window change, not per hit: pruning is O(keys).
            self._counts = {k: v for k, v in self._counts.items() if k[1] >= slot}
        self._newest[window] = slot
        count = self._counts.get((key, slot), 0) + 1
        self._counts[(key, slot)] = count
        return count


class RedisLimiter:
    """Fixed-window counters shared through Redis; counted in ``fallback`` while it is away."""

    def __init__(
        self, redis: Redis, prefix: str, health: DependencyHealth, fallback: MemoryLimiter
    ) -> None:
        """Count in ``redis`` under keys starting with ``prefix``."""
        self._redis = redis
        self._prefix = prefix
        self._health = health
        self._fallback = fallback

    async def hit(self, key: str, window: int, now: float) -> int:
        """``INCR`` the window's key (expiring with the window) in one round trip."""
        if not self._health.usable():
            return await self._fallback.hit(key, window, now)
        slot = int(now // window)
        name = f"{self._prefix}:rl:{key}:{slot}"
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.incr(name)
                pipe.expire(name, window + 1)
                count, _ = await pipe.execute()
        except (RedisError, OSError) as exc:
            self._health.failed(exc, "counting a rate limit")
            return await self._fallback.hit(key, window, now)
        self._health.succeeded()
        return int(count)


@attrs.frozen
class Limit:
    """At most ``count`` hits per ``window`` seconds for one key."""

    name: str
    count: int
    window: int
    limiter: Limiter

    async def enforce(self, key: str, now: float) -> None:
        """Raise 429 with ``Retry-After`` when ``key`` is over the limit at ``now`` (epoch s)."""
        if await self.limiter.hit(f"{self.name}:{key}", self.window, now) > self.count:
            retry = max(1, math.ceil(self.window - now % self.window))
            raise Problem(
                429,
                "rate-limited",
                f"too many {self.name} requests; retry in {retry} s",
                headers={"Retry-After": str(retry)},
            )


@attrs.frozen
class Limits:
    """The server's limits, one per kind of request."""

    auth: Limit
    publish: Limit
    check: Limit
    report: Limit
    #: Reports and registrations per client address: device ids are the caller's to choose.
    telemetry: Limit


def build_limits(
    redis: Redis | None,
    *,
    scale: float = 1.0,
    prefix: str = "hotpatch",
    health: DependencyHealth | None = None,
) -> Limits:
    """Default limits; ``scale`` multiplies every budget (tests and big fleets).

    While Redis is away (``health``), the shared limits count in this process.
    """
    local = MemoryLimiter()
    shared: Limiter = (
        RedisLimiter(redis, prefix, health or RedisHealth(), MemoryLimiter())
        if redis is not None
        else local
    )

    def n(count: int) -> int:
        return max(1, int(count * scale))

    return Limits(
        auth=Limit("auth", n(20), 60, shared),
        publish=Limit("publish", n(30), 60, shared),
        check=Limit("check", n(30), 60, local),
        report=Limit("report", n(60), 60, shared),
        telemetry=Limit("telemetry", n(1200), 60, shared),
    )


def client_address(request: Request[Any, Any, Any]) -> str:
    """Return the address a per-client limit counts: the TCP peer (docs/server.md, proxies)."""
    return request.client.host if request.client else "unknown"
