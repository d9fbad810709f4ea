"""Credentials: API keys, short-lived JWT access tokens, rotating refresh tokens.

- **API keys** look like ``hp_<43 url-safe chars><8 hex crc32>``: at least 32
  random bytes, a prefix secret scanners can match, and a checksum that
  rejects typos before touching the database. Only their sha256 is stored
  (docs/security.md S2). Each has a role (admin, publisher, viewer), a list of apps
  (``*`` for all), an optional expiry, and can be revoked.
- **Access tokens** are JWTs with the algorithm pinned to HS256 server-side,
  and ``exp``, ``aud``, ``iss`` and ``sub`` required (S3).
- **Refresh tokens** are opaque, single-use, stored as sha256, and replaced
  on every use. The tokens issued from one API-key exchange form a *family*;
  presenting a refresh token that was already used (someone replayed a
  stolen one, or the holder's copy was stolen after use) revokes the whole
  family at once: its live refresh token and every access token it issued.

A request authenticates with ``Authorization: Bearer <access token or API
key>``; API keys work directly so CI needs no token exchange.
"""

from __future__ import annotations

import enum
import hashlib
import secrets
import uuid
import zlib
from collections.abc import Sequence
from datetime import datetime, timedelta

import attrs
import jwt
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from hotpatch_core.publishing import Tokens
from hotpatch_server.errors import ForbiddenError, UnauthenticatedError
from hotpatch_server.models import ApiKey, RefreshToken, utc

__all__ = [
    "KEY_PREFIX",
    "Action",
    "Principal",
    "Role",
    "authenticate",
    "checksum_ok",
    "create_api_key",
    "hash_secret",
    "issue_tokens",
    "refresh_tokens",
]

KEY_PREFIX = "hp_"
AUDIENCE = "hotpatch-api"
ISSUER = "hotpatch-server"
ALGORITHM = "HS256"


class Role(enum.StrEnum):
    """What a credential may do."""

    ADMIN = "admin"
    PUBLISHER = "publisher"
    VIEWER = "viewer"


class Action(enum.StrEnum):
    """Actions guarded per app."""

    READ = "read"
    PUBLISH = "publish"
    ROLLOUT = "rollout"
    ROLLBACK = "rollback"
    PROMOTE = "promote"
    ADMIN = "admin"


_ALLOWED: dict[Role, frozenset[Action]] = {
    Role.ADMIN: frozenset(Action),
    Role.PUBLISHER: frozenset(Action) - {Action.ADMIN},
    Role.VIEWER: frozenset({Action.READ}),
}


@attrs.frozen
class Principal:
    """Who is calling: the API key behind the credential, its role and apps."""

    key_id: str
    name: str
    role: Role
    apps: tuple[str, ...]

    def can(self, action: Action, app_id: str) -> bool:
        """Return whether this principal may perform ``action`` on ``app_id``."""
        in_scope = "*" in self.apps or app_id in self.apps
        return in_scope and action in _ALLOWED[self.role]

    def may(self, action: Action) -> bool:
        """Return whether this principal's role allows ``action`` on any app at all."""
        return action in _ALLOWED[self.role]

    def require(self, action: Action, app_id: str) -> None:
        """Raise 403 unless this principal may perform ``action`` on ``app_id``."""
        if not self.can(action, app_id):
            raise ForbiddenError(
                f"credential {self.name!r} ({self.role}) may not {action} app {app_id!r}",
            )

    @property
    def label(self) -> str:
        """How the audit log names this principal."""
        return f"{self.name} ({self.key_id})"


def hash_secret(secret: str) -> str:
    """Return what is stored of a key or token: its sha256, in hex."""
    return hashlib.sha256(secret.encode()).hexdigest()


def _crc(body: str) -> str:
    return f"{zlib.crc32(body.encode()) & 0xFFFFFFFF:08x}"


def checksum_ok(key: str) -> bool:
    """Return whether ``key`` has the API-key shape and a valid checksum."""
    if not key.startswith(KEY_PREFIX) or len(key) != len(KEY_PREFIX) + 43 + 8:
        return False
    body, check = key[:-8], key[-8:]
    return secrets.compare_digest(_crc(body), check)


async def create_api_key(
    session: AsyncSession,
    *,
    name: str,
    role: Role,
    apps: Sequence[str],
    now: datetime,
    expires_at: datetime | None = None,
) -> tuple[ApiKey, str]:
    """Create a key; return its row and the plaintext, which is never stored."""
    body = KEY_PREFIX + secrets.token_urlsafe(32)
    plaintext = body + _crc(body)
    row = ApiKey(
        id=uuid.uuid4().hex[:16],
        key_hash=hash_secret(plaintext),
        name=name,
        role=role.value,
        apps=list(apps),
        created_at=now,
        expires_at=expires_at,
    )
    session.add(row)
    await session.flush()
    return row, plaintext


def _principal(row: ApiKey) -> Principal:
    return Principal(row.id, row.name, Role(row.role), tuple(row.apps))


def _usable(row: ApiKey | None, now: datetime) -> ApiKey:
    if row is None:
        raise UnauthenticatedError("unknown credential")
    if row.revoked_at is not None:
        raise UnauthenticatedError(f"API key {row.id} was revoked")
    if row.expires_at is not None and utc(row.expires_at) <= now:
        raise UnauthenticatedError(f"API key {row.id} expired")
    return row


async def principal_for_key(session: AsyncSession, key: str, now: datetime) -> Principal:
    """Authenticate an API key, record its use, return its principal."""
    if not checksum_ok(key):
        raise UnauthenticatedError("malformed API key (wrong prefix, length or checksum)")
    row = _usable(
        (await session.execute(select(ApiKey).where(ApiKey.key_hash == hash_secret(key)))).scalar(),
        now,
    )
    await session.execute(update(ApiKey).where(ApiKey.id == row.id).values(last_used_at=now))
    return _principal(row)


def _access_token(row: ApiKey, family: str, secret: bytes, now: datetime, lifetime: int) -> str:
    claims = {
        "sub": row.id,
        "fam": family,
        "name": row.name,
        "role": row.role,
        "apps": list(row.apps),
        "aud": AUDIENCE,
        "iss": ISSUER,
        "iat": int(now.timestamp()),
        "exp": int((now + timedelta(seconds=lifetime)).timestamp()),
    }
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


async def issue_tokens(
    session: AsyncSession,
    row: ApiKey,
    *,
    secret: bytes,
    now: datetime,
    access: int,
    refresh: int,
    family: str | None = None,
) -> Tokens:
    """Issue an access token and a fresh single-use refresh token for ``row``.

    ``family`` continues a refresh chain; None starts a new one.
    """
    token = secrets.token_urlsafe(32)
    family = family or secrets.token_hex(16)
    session.add(
        RefreshToken(
            token_hash=hash_secret(token),
            api_key_id=row.id,
            expires_at=now + timedelta(seconds=refresh),
            family=family,
        )
    )
    await session.flush()
    return Tokens(
        access_token=_access_token(row, family, secret, now, access),
        refresh_token=token,
        token_type="Bearer",  # noqa: S106 - the scheme's name, not a secret
        expires_in=access,
    )


async def exchange_api_key(
    session: AsyncSession, key: str, *, secret: bytes, now: datetime, access: int, refresh: int
) -> Tokens:
    """``POST /auth/token``: trade an API key for tokens."""
    principal = await principal_for_key(session, key, now)
    row = await session.get(ApiKey, principal.key_id)
    assert row is not None  # noqa: S101 - just authenticated
    return await issue_tokens(session, row, secret=secret, now=now, access=access, refresh=refresh)


async def refresh_tokens(
    session: AsyncSession, token: str, *, secret: bytes, now: datetime, access: int, refresh: int
) -> Tokens:
    """``POST /auth/refresh``: use a refresh token once, get a new pair.

    A token used before revokes its whole family (committed before the 401),
    so a thief and the rightful holder both have to start again from the API key.
    """
    # Mark used atomically so two concurrent refreshes cannot both succeed.
    used = await session.execute(
        update(RefreshToken)
        .where(
            RefreshToken.token_hash == hash_secret(token),
            RefreshToken.used_at.is_(None),
            RefreshToken.revoked_at.is_(None),
        )
        .values(used_at=now)
        .returning(RefreshToken.api_key_id, RefreshToken.expires_at, RefreshToken.family)
    )
    found = used.first()
    if found is None:
        family = await session.scalar(
            select(RefreshToken.family).where(RefreshToken.token_hash == hash_secret(token))
        )
        if family is None:
            raise UnauthenticatedError("unknown refresh token")
        await session.execute(
            update(RefreshToken)
            .where(RefreshToken.family == family, RefreshToken.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        await session.commit()
        raise UnauthenticatedError(
            "refresh token already used: every token of its session is revoked; "
            "exchange the API key again",
        )
    key_id, expires_at, family = found
    if utc(expires_at) <= now:
        raise UnauthenticatedError("refresh token expired")
    row = _usable(await session.get(ApiKey, key_id), now)
    return await issue_tokens(
        session, row, secret=secret, now=now, access=access, refresh=refresh, family=family
    )


async def authenticate(
    session: AsyncSession, authorization: str | None, *, secret: bytes, now: datetime
) -> Principal:
    """Resolve an ``Authorization`` header to a principal, or raise 401."""
    if not authorization or not authorization.startswith("Bearer "):
        raise UnauthenticatedError(
            "send 'Authorization: Bearer <token or API key>'",
            challenge=True,
        )
    credential = authorization.removeprefix("Bearer ").strip()
    if credential.startswith(KEY_PREFIX):
        return await principal_for_key(session, credential, now)
    try:
        # The server's clock is injected (tests move it), so expiry is checked
        # here against ``now`` rather than PyJWT's wall clock.
        claims = jwt.decode(
            credential,
            secret,
            algorithms=[ALGORITHM],
            audience=AUDIENCE,
            issuer=ISSUER,
            options={
                "require": ["exp", "aud", "iss", "sub"],
                "verify_exp": False,
                "verify_iat": False,
            },
        )
    except jwt.InvalidTokenError as exc:
        raise UnauthenticatedError(f"invalid access token: {exc}") from None
    if not isinstance(claims.get("exp"), int) or claims["exp"] <= now.timestamp():
        raise UnauthenticatedError("access token expired; refresh it")
    # Revocation takes effect at once, also for tokens already issued.
    row = _usable(await session.get(ApiKey, str(claims["sub"])), now)
    family = claims.get("fam")
    if family is not None and await session.scalar(
        select(RefreshToken.token_hash)
        .where(RefreshToken.family == str(family), RefreshToken.revoked_at.is_not(None))
        .limit(1)
    ):
        raise UnauthenticatedError("this session was revoked (a refresh token was reused)")
    return _principal(row)
