"""The ``/auth`` routes: an API key for a short-lived access token and a refresh token."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Protocol

from litestar import Controller, Request, Response, post
from litestar.di import NamedDependency
from litestar.params import Body, SkipValidation
from sqlalchemy.ext.asyncio import AsyncSession

from hotpatch_core.publishing import RefreshRequest, TokenRequest, Tokens
from hotpatch_server.auth import exchange_api_key, refresh_tokens
from hotpatch_server.deps import DbSession, Now, SettingsDep
from hotpatch_server.ratelimit import Limits, client_address
from hotpatch_server.settings import Settings
from hotpatch_server.wire_schema import JsonObject, WireBody, read_body, wire_response

__all__ = ["AuthController"]


class _Issuer(Protocol):
    """Turn a credential into tokens (:func:`exchange_api_key`, :func:`refresh_tokens`)."""

    async def __call__(
        self,
        session: AsyncSession,
        credential: str,
        /,
        *,
        secret: bytes,
        now: datetime,
        access: int,
        refresh: int,
    ) -> Tokens: ...


async def _issue(
    request: Request[Any, Any, Any],
    issue: _Issuer,
    credential: str,
    session: AsyncSession,
    settings: Settings,
    now: datetime,
    limits: Limits,
) -> Response[Tokens]:
    """Rate-limit the caller, turn ``credential`` into tokens, commit, answer."""
    await limits.auth.enforce(client_address(request), now.timestamp())
    tokens = await issue(
        session,
        credential,
        secret=settings.jwt_secret,
        now=now,
        access=settings.access_token_seconds,
        refresh=settings.refresh_token_seconds,
    )
    await session.commit()
    return wire_response(tokens)


class AuthController(Controller):
    """``/auth``: API key -> short-lived access token + single-use refresh token."""

    path = "/auth"
    tags = ["auth"]  # noqa: RUF012 - Litestar reads it as a class attribute

    @post("/token", status_code=200, summary="Exchange an API key for tokens")
    async def token(
        self,
        request: Request[Any, Any, Any],
        data: Annotated[JsonObject, Body(), WireBody(TokenRequest)],
        db_session: DbSession,
        settings: SettingsDep,
        now: Now,
        limits: NamedDependency[SkipValidation[Limits]],
    ) -> Response[Tokens]:
        """Return an access token (JWT) and a refresh token."""
        api_key = read_body(data, TokenRequest).api_key
        return await _issue(request, exchange_api_key, api_key, db_session, settings, now, limits)

    @post("/refresh", status_code=200, summary="Rotate a refresh token")
    async def refresh(
        self,
        request: Request[Any, Any, Any],
        data: Annotated[JsonObject, Body(), WireBody(RefreshRequest)],
        db_session: DbSession,
        settings: SettingsDep,
        now: Now,
        limits: NamedDependency[SkipValidation[Limits]],
    ) -> Response[Tokens]:
        """Use a refresh token once; return a new access and refresh token."""
        token = read_body(data, RefreshRequest).refresh_token
        return await _issue(request, refresh_tokens, token, db_session, settings, now, limits)
