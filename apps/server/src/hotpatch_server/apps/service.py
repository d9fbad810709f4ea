"""Apps and their trust roots, without HTTP: create, rotate, show."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from hotpatch_core.errors import HotPatchError
from hotpatch_core.keys import SigningKey
from hotpatch_core.publishing import AppView, PublisherView
from hotpatch_core.trust import TrustRoot, load_trust_root, rotate_trust_root
from hotpatch_server import fields
from hotpatch_server.audit import record_raw
from hotpatch_server.errors import (
    AppExistsError,
    InvalidInputError,
    NotFoundError,
    RejectedFieldError,
    RootConflictError,
)
from hotpatch_server.models import App, TrustRootVersion, utc

__all__ = ["add_app", "app_view", "install_trust_root", "rotate_root"]


def app_view(app: App) -> AppView:
    """Return the API's view of an app and its trust root."""
    root = load_trust_root(app.trust_root)
    return AppView(
        id=app.id,
        name=app.name,
        trust_root_version=app.trust_root_version,
        epoch=root.epoch,
        publishers=tuple(
            PublisherView(key_id=p.key_id, name=p.name, scope=p.scope, expires_at=p.expires_at)
            for p in root.publishers
        ),
        trust_root=app.trust_root,
        created_at=utc(app.created_at),
    )


def install_trust_root(app: App | None, envelope: bytes, heads: SigningKey | None) -> TrustRoot:
    """Check a trust root for a new app (self-signed) or as the next rotation of ``app``'s.

    A root that names timestamp keys must name the one this server signs
    channel heads with (``heads``), at a threshold of one: otherwise every
    device that takes it would refuse every answer.
    """
    try:
        root = (
            load_trust_root(envelope)
            if app is None
            else rotate_trust_root(load_trust_root(app.trust_root), envelope)
        )
    except HotPatchError as exc:
        raise RejectedFieldError(exc, "trustRoot") from None
    role = root.timestamp
    if role is None or (
        heads is not None and heads.key_id in role.keyring() and role.threshold == 1
    ):
        return root
    named = ", ".join(k.key_id[:16] for k in role.keys)
    if heads is None:
        server = "has no timestamp key (set HOTPATCH_TIMESTAMP_KEY_FILE)"
    elif heads.key_id not in role.keyring():
        server = f"signs channel heads with key {heads.key_id[:16]}"
    else:
        server = f"signs channel heads with one key, not {role.threshold}"
    raise InvalidInputError(
        f"the trust root names timestamp key(s) {named}, but this server {server}: devices "
        "that take this root would refuse every answer",
        field="trustRoot",
    )


async def add_app(
    session: AsyncSession,
    app_id: str,
    name: str,
    envelope: bytes,
    actor: str,
    now: datetime,
    heads: SigningKey | None,
) -> App:
    """Create an app trusting ``envelope`` (a self-signed trust root); audited.

    ``heads`` is the key this server signs channel heads with (see :func:`install_trust_root`).
    """
    fields.app_id(app_id, "id")
    fields.display_name(name, "name")
    if await session.get(App, app_id) is not None:
        raise AppExistsError(
            f"app {app_id!r} already exists; rotate its trust root instead", field="id"
        )
    root = install_trust_root(None, envelope, heads)
    app = App(
        id=app_id,
        name=name or app_id,
        trust_root=envelope,
        trust_root_version=root.version,
        created_at=now,
    )
    session.add(app)
    session.add(
        TrustRootVersion(app_id=app_id, version=root.version, envelope=envelope, created_at=now)
    )
    record_raw(session, actor, "create-app", app.id, app.id, now, {"rootVersion": root.version})
    return app


async def rotate_root(
    session: AsyncSession,
    app_id: str,
    envelope: bytes,
    actor: str,
    now: datetime,
    heads: SigningKey | None,
) -> App:
    """Move ``app_id`` to trust root N+1 (signed by N's and its own root keys); audited.

    Every version is kept (``trust_roots``): devices walk from the root their
    binary embeds to this one, a version at a time. Of two concurrent
    rotations to the same version, one wins and the other gets a 409.
    """
    app = await session.get(App, app_id)
    if app is None:
        raise NotFoundError(f"no app {app_id!r}")
    root = install_trust_root(app, envelope, heads)
    before = app.trust_root_version
    app.trust_root = envelope
    app.trust_root_version = root.version
    session.add(
        TrustRootVersion(app_id=app_id, version=root.version, envelope=envelope, created_at=now)
    )
    try:
        await session.flush()
    except IntegrityError:
        await session.rollback()
        raise RootConflictError(
            f"trust root v{root.version} of {app_id!r} was installed already"
        ) from None
    record_raw(
        session,
        actor,
        "rotate-trust-root",
        app_id,
        app_id,
        now,
        {"from": before, "to": root.version, "epoch": root.epoch},
    )
    return app
