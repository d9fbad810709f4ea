"""When the database is away: 503 with ``Retry-After``, one log line, nothing lost that can wait.

A database restart or a dropped connection must not turn into tracebacks,
500s and lost data (docs/server.md, "When the database is away"):

- update checks are answered from each process's cache of active releases
  for the channels it has loaded (the state it last saw); a channel it has
  not loaded, and every other request that needs the database, gets 503
  with ``Retry-After: 5`` (:func:`unavailable_problem`);
- device check-ins stay buffered in memory (up to
  :data:`~hotpatch_server.devices.tracker.MAX_PENDING_DEVICES`) and are written once
  it is back;
- one line is logged when it goes and one when it is back
  (:func:`database_health`), instead of a traceback per request;
- the connection pool reconnects by itself (``pool_pre_ping``): no restart.
"""

from __future__ import annotations

import errno
from typing import Final

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from hotpatch_server.health import DependencyHealth
from hotpatch_server.problems import Problem

__all__ = ["RETRY_AFTER", "database_health", "is_unavailable", "unavailable_problem"]

#: Seconds a client is asked to wait before retrying while the database is away.
RETRY_AFTER: Final = 5
_DRIVERS: Final = ("asyncpg", "sqlalchemy", "aiosqlite")
_UNREACHABLE: Final = frozenset(
    {
        errno.ECONNREFUSED,
        errno.ECONNRESET,
        errno.ECONNABORTED,
        errno.EHOSTUNREACH,
        errno.ENETUNREACH,
        errno.ETIMEDOUT,
        errno.EPIPE,
    }
)


def database_health() -> DependencyHealth:
    """Return the tracker of the database's reachability, with its log lines."""
    return DependencyHealth(
        "The database",
        "update checks are answered from each process's cache for the channels it has loaded, "
        f"other requests get 503 with Retry-After: {RETRY_AFTER}, and device check-ins are kept "
        "in memory",
    )


def _through_driver(exc: BaseException) -> bool:
    """Whether ``exc`` was raised inside the database driver or SQLAlchemy."""
    frame = exc.__traceback__
    while frame is not None:
        if str(frame.tb_frame.f_globals.get("__name__", "")).startswith(_DRIVERS):
            return True
        frame = frame.tb_next
    return False


def _postgres_unavailable(exc: BaseException) -> bool:
    try:
        from asyncpg import exceptions  # type: ignore[import-untyped]  # noqa: PLC0415
    except ImportError:  # pragma: no cover - asyncpg is a dependency of the server
        return False
    # Class 08 (connection exceptions) and 57 (shutting down, starting up).
    return isinstance(
        exc, exceptions.PostgresConnectionError | exceptions.OperatorInterventionError
    )


def is_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` says the database could not be reached, rather than a query was wrong."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, DBAPIError) and (
            current.connection_invalidated or isinstance(current, OperationalError | InterfaceError)
        ):
            return True
        if _postgres_unavailable(current):
            return True
        if isinstance(current, ConnectionError | TimeoutError) or (
            isinstance(current, OSError) and current.errno in _UNREACHABLE
        ):
            return _through_driver(current)
        current = current.__cause__ or current.__context__
    return False


def unavailable_problem() -> Problem:
    """Return the answer to a request that needs the database while it is away."""
    return Problem(
        503,
        "unavailable",
        "the database is unavailable; retry later",
        headers={"Retry-After": str(RETRY_AFTER)},
    )
