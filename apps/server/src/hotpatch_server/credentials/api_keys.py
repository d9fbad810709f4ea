"""The ``/keys`` routes: create, list and revoke API keys (admin of their apps)."""

from __future__ import annotations

from datetime import datetime

import attrs
import msgspec
from litestar import Controller, Response, delete, get, post
from litestar.params import FromPath, JSONBody
from sqlalchemy import select

from hotpatch_core.publishing import ApiKeyView, CreatedApiKey
from hotpatch_server import fields
from hotpatch_server.audit import record_key_change
from hotpatch_server.auth import Action, Role, create_api_key
from hotpatch_server.deps import DbSession, Now, PrincipalDep
from hotpatch_server.errors import InvalidInputError, NotFoundError
from hotpatch_server.models import ApiKey, utc
from hotpatch_server.wire_schema import wire_response

__all__ = ["KeyController", "NewKey", "key_view"]


class NewKey(msgspec.Struct, rename="camel"):
    """An API key to create."""

    name: str
    role: str
    apps: list[str]
    expires_at: datetime | None = None


def key_view(row: ApiKey) -> ApiKeyView:
    """Return the API's view of a key: never its plaintext or hash."""
    return ApiKeyView(
        id=row.id,
        name=row.name,
        role=row.role,
        apps=tuple(row.apps),
        created_at=utc(row.created_at),
        expires_at=None if row.expires_at is None else utc(row.expires_at),
        revoked_at=None if row.revoked_at is None else utc(row.revoked_at),
        last_used_at=None if row.last_used_at is None else utc(row.last_used_at),
    )


class KeyController(Controller):
    """``/keys``: API keys (admin)."""

    path = "/keys"
    tags = ["keys"]  # noqa: RUF012 - Litestar reads it as a class attribute

    @post("/", status_code=201, summary="Create an API key")
    async def create(
        self, data: JSONBody[NewKey], principal: PrincipalDep, db_session: DbSession, now: Now
    ) -> Response[CreatedApiKey]:
        """Create a key; the plaintext is in this response only."""
        try:
            role = Role(data.role)
        except ValueError:
            raise InvalidInputError("role is admin, publisher or viewer", field="role") from None
        fields.display_name(data.name, "name")
        fields.app_scope(data.apps, "apps")
        for app_id in data.apps:
            principal.require(Action.ADMIN, app_id)
        row, plaintext = await create_api_key(
            db_session,
            name=data.name,
            role=role,
            apps=data.apps,
            now=now,
            expires_at=data.expires_at,
        )
        record_key_change(db_session, principal.label, "create-key", row, now)
        await db_session.commit()
        created = CreatedApiKey(**attrs.asdict(key_view(row), recurse=False), key=plaintext)
        return wire_response(created, status_code=201)

    @get("/", summary="List API keys")
    async def list_keys(
        self, principal: PrincipalDep, db_session: DbSession
    ) -> Response[list[ApiKeyView]]:
        """Keys whose apps the caller administers."""
        rows = (
            await db_session.execute(select(ApiKey).order_by(ApiKey.created_at, ApiKey.id))
        ).scalars()
        return wire_response(
            [key_view(r) for r in rows if all(principal.can(Action.ADMIN, a) for a in r.apps)]
        )

    @delete("/{key_id:str}", status_code=200, summary="Revoke an API key")
    async def revoke(
        self, key_id: FromPath[str], principal: PrincipalDep, db_session: DbSession, now: Now
    ) -> Response[ApiKeyView]:
        """Revoke a key; it stops working at once, also for tokens issued from it."""
        row = await db_session.get(ApiKey, key_id)
        if row is None:
            raise NotFoundError(f"no key {key_id!r}")
        for app_id in row.apps:
            principal.require(Action.ADMIN, app_id)
        row.revoked_at = row.revoked_at or now
        record_key_change(db_session, principal.label, "revoke-key", row, now)
        await db_session.commit()
        return wire_response(key_view(row))
