"""The ``/auth`` routes: an API key for a short-lived access token and a refresh token."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Controller, Request, Response, post
from litestar.di import NamedDependency
from litestar.params import JSONBody, SkipValidation

from hotpatch_core.publishing import Tokens
from hotpatch_server.auth import exchange_api_key, refresh_tokens
from hotpatch_server.deps import DbSession, Now, SettingsDep
from hotpatch_server.ratelimit import Limits, client_address
from hotpatch_server.wire_schema import wire_response

__all__ = ["AuthController", "RefreshRequest", "TokenRequest"]


class TokenRequest(msgspec.Struct, rename="camel"):
    """An API key to exchange for tokens."""

    api_key: str


class RefreshRequest(msgspec.Struct, rename="camel"):
    """A refresh token to use once."""

    refresh_token: str


class AuthController(Controller):
    """``/auth``: API key -> short-lived access token + single-use refresh token."""

    path = "/auth"
    tags = ["auth"]  # noqa: RUF012 - Litestar reads it as a class attribute

    @post("/token", status_code=200, summary="Exchange an API key for tokens")
    async def token(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[TokenRequest],
        db_session: DbSession,
        settings: SettingsDep,
        now: Now,
        limits: NamedDependency[SkipValidation[Limits]],
    ) -> Response[Tokens]:
        """Return an access token (JWT) and a refresh token."""
        await limits.auth.enforce(client_address(request), now.timestamp())
        tokens = await exchange_api_key(
            db_session,
            data.api_key,
            secret=settings.jwt_secret,
            now=now,
            access=settings.access_token_seconds,
            refresh=settings.refresh_token_seconds,
        )
        await db_session.commit()
        return wire_response(tokens)

    @post("/refresh", status_code=200, summary="Rotate a refresh token")
    async def refresh(
        self,
        request: Request[Any, Any, Any],
        data: JSONBody[RefreshRequest],
        db_session: DbSession,
        settings: SettingsDep,
        now: Now,
        limits: NamedDependency[SkipValidation[Limits]],
    ) -> Response[Tokens]:
        """Use a refresh token once; return a new access and refresh token."""
        await limits.auth.enforce(client_address(request), now.timestamp())
        tokens = await refresh_tokens(
            db_session,
            data.refresh_token,
            secret=settings.jwt_secret,
            now=now,
            access=settings.access_token_seconds,
            refresh=settings.refresh_token_seconds,
        )
        await db_session.commit()
        return wire_response(tokens)
