"""Typed names for the app's dependencies, as handler parameters declare them.

Litestar resolves dependencies by parameter name; ``NamedDependency`` makes
that explicit (inferred dependencies end with Litestar 3). ``SkipValidation``
spares the hot path a per-request type check of objects the app itself built.
"""

from __future__ import annotations

from datetime import datetime
from typing import TypeAlias

from litestar.di import NamedDependency
from litestar.params import SkipValidation
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from hotpatch_server.auth import Principal
from hotpatch_server.cache import ActiveReleases
from hotpatch_server.settings import Settings
from hotpatch_server.storage.blobs import BlobStore

__all__ = [
    "ActiveReleasesDep",
    "BlobStoreDep",
    "DbSession",
    "Now",
    "PrincipalDep",
    "SessionMaker",
    "SettingsDep",
]

DbSession: TypeAlias = NamedDependency[SkipValidation[AsyncSession]]
PrincipalDep: TypeAlias = NamedDependency[SkipValidation[Principal]]
Now: TypeAlias = NamedDependency[SkipValidation[datetime]]
BlobStoreDep: TypeAlias = NamedDependency[SkipValidation[BlobStore]]
SettingsDep: TypeAlias = NamedDependency[SkipValidation[Settings]]
ActiveReleasesDep: TypeAlias = NamedDependency[SkipValidation[ActiveReleases]]
SessionMaker: TypeAlias = NamedDependency[SkipValidation[async_sessionmaker[AsyncSession]]]
