"""Trust root versions for devices: ``GET /apps/{app_id}/roots/{version}``.

A device walks from the root its binary embeds to the newest, one version
at a time, before every update check (docs/security.md A10): it asks for
version N+1 until the answer is 404. Each document is the signed envelope
exactly as it was installed; the device verifies it against the version
before it, so this route needs no credential and the server signs nothing.

A stored version never changes, so it is cached for the life of the process
and served as immutable. That version N+1 does not exist yet is cached for
``ttl`` seconds (the active-release cache lifetime): a rotation made in this
process is seen at once, one made by another (``hotpatch-server
rotate-trust-root``) within that time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final

from litestar import Controller, Response, get
from litestar.di import NamedDependency
from litestar.params import FromPath, SkipValidation
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hotpatch_core.wire import parse_decimal
from hotpatch_server import fields
from hotpatch_server.errors import InvalidInputError, NotFoundError
from hotpatch_server.models import TrustRootVersion

__all__ = ["RootController", "TrustRootCache"]

#: trust_roots.version is a 32-bit INTEGER; a larger version cannot be stored.
_MAX_VERSION: Final = 2**31 - 1
_IMMUTABLE: Final = "public, max-age=31536000, immutable"

Key = tuple[str, int]


class TrustRootCache:
    """Stored root envelopes by (app, version), and recent misses, bounded in number."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        ttl: float,
        *,
        max_entries: int = 4096,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """Read through ``sessions``; remember a miss for ``ttl`` seconds."""
        self._sessions = sessions
        self._ttl = ttl
        self._max = max_entries
        self._monotonic = monotonic
        self._found: dict[Key, bytes] = {}
        self._missing: dict[Key, float] = {}

    async def get(self, app_id: str, version: int) -> bytes | None:
        """Return the envelope of ``app_id``'s root ``version``, or None if there is none."""
        key = (app_id, version)
        found = self._found.get(key)
        if found is not None:
            return found
        now = self._monotonic()
        if self._missing.get(key, 0.0) > now:
            return None
        async with self._sessions() as session:
            row = await session.get(TrustRootVersion, key)
        if row is None:
            if len(self._missing) >= self._max:
                self._missing.clear()  # unknown apps and versions must not grow memory
            self._missing[key] = now + self._ttl
            return None
        if len(self._found) >= self._max:
            self._found.pop(next(iter(self._found)))
        self._found[key] = row.envelope
        return row.envelope

    def forget(self, app_id: str) -> None:
        """Drop the misses of ``app_id``: a new version was just installed."""
        for key in [k for k in self._missing if k[0] == app_id]:
            del self._missing[key]


class RootController(Controller):
    """The trust root chain, for devices: public, as the roots are embedded in every app."""

    path = "/apps/{app_id:str}/roots"
    tags = ["devices"]  # noqa: RUF012 - Litestar reads it as a class attribute

    @get(
        "/{version:str}",
        summary="Fetch one version of an app's trust root",
        description=(
            "The signed trust root envelope (root.json) of this version, as installed. Devices "
            "ask for the version after their newest before every check and verify it against "
            "that one (a threshold of both versions' root keys). 404 when there is no such "
            "version yet."
        ),
        media_type="application/json",
        response_description="The signed trust root envelope.",
    )
    async def root(
        self,
        app_id: FromPath[str],
        version: FromPath[str],
        trust_roots: NamedDependency[SkipValidation[TrustRootCache]],
    ) -> Response[bytes]:
        """Return the envelope of root ``version`` of ``app_id``."""
        number = parse_decimal(version, max_digits=10)
        if number is None or number < 1:
            raise InvalidInputError("version must be a positive integer", field="version")
        fields.app_id(app_id, "appId")
        envelope = None if number > _MAX_VERSION else await trust_roots.get(app_id, number)
        if envelope is None:
            raise NotFoundError(f"no trust root v{number} for {app_id!r}")
        return Response(
            envelope, media_type="application/json", headers={"cache-control": _IMMUTABLE}
        )
