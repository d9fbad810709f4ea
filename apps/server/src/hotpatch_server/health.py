"""Whether a service the server depends on answers: one log line when it goes, one when back.

Used for Redis (:mod:`hotpatch_server.redis_health`) and the database
(:mod:`hotpatch_server.db_outage`). Each user of the service reports
failures and successes here. After a failure the service is not tried again
for ``retry_seconds`` where a caller can do without it, so an outage costs
requests no connection attempts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import attrs

__all__ = ["DependencyHealth"]

log = logging.getLogger(__name__)


@attrs.define
class DependencyHealth:
    """The state of a service the server depends on, as its users last saw it.

    ``name`` and ``effect`` (what users see while it is away) make the one
    line logged when it goes; one more is logged when it is back.
    """

    name: str
    effect: str
    retry_seconds: float = 2.0
    clock: Callable[[], float] = time.monotonic
    down_since: float | None = None
    _retry_at: float = 0.0

    @property
    def up(self) -> bool:
        """Whether the last use succeeded."""
        return self.down_since is None

    def usable(self) -> bool:
        """Whether to try it now: it is up, or its retry pause is over."""
        return self.down_since is None or self.clock() >= self._retry_at

    def failed(self, error: BaseException, doing: str) -> None:
        """Record a failure; log it if the service was up until now."""
        now = self.clock()
        if self.down_since is None:
            self.down_since = now
            log.warning(
                "%s is unavailable (%s while %s: %s); %s, until it is back",
                self.name,
                type(error).__name__,
                doing,
                str(error)[:200],
                self.effect,
            )
        self._retry_at = now + self.retry_seconds

    def succeeded(self) -> bool:
        """Record a success; log and return True if the service was down until now."""
        if self.down_since is None:
            return False
        log.warning("%s is back after %.0f s", self.name, self.clock() - self.down_since)
        self.down_since = None
        return True
