"""The database schema (SQLAlchemy 2), shared by every slice and by Alembic.

Apps (with every version of their trust root), releases, devices and
installations are the product's core; api_keys,
refresh_tokens, audit_log, patches and embedded_bundles serve auth, audit and
differential updates. Everything
runs unchanged on SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "ApiKey",
    "App",
    "AuditEntry",
    "Base",
    "CodePushDiff",
    "DeploymentKey",
    "Device",
    "ExpoAsset",
    "ExpoDirective",
    "ExpoUpdate",
    "Installation",
    "RefreshToken",
    "Release",
    "TrustRootVersion",
    "utc",
]


def utc(moment: datetime) -> datetime:
    """Return a time read from the database as an aware UTC datetime.

    SQLite gives back naive datetimes for timezone-aware columns; every time
    this server stores is UTC.
    """
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    """Declarative base of every HotPatch table."""


class App(Base):
    """An app: its id (``com.acme.shop``) and its current trust root."""

    __tablename__ = "apps"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    trust_root: Mapped[bytes] = mapped_column(LargeBinary)
    trust_root_version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class TrustRootVersion(Base):
    """One version of an app's trust root, kept for good: devices walk N -> N+1 through them."""

    __tablename__ = "trust_roots"

    app_id: Mapped[str] = mapped_column(ForeignKey("apps.id"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    envelope: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class DeploymentKey(Base):
    """A CodePush deployment key: names one (app, platform, channel); only its sha256 is stored."""

    __tablename__ = "deployment_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    app_id: Mapped[str] = mapped_column(ForeignKey("apps.id"), index=True)
    platform: Mapped[str] = mapped_column(String(16))
    channel: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class Release(Base):
    """A published, signed release; the manifest envelope is stored exactly as uploaded."""

    __tablename__ = "releases"
    __table_args__ = (
        UniqueConstraint("app_id", "platform", "channel", "epoch", "sequence"),
        # Re-publishing a version is a conflict; rollbacks re-use a version label.
        Index(
            "uq_release_version",
            "app_id",
            "platform",
            "channel",
            "version",
            unique=True,
            sqlite_where=text("rollback_of IS NULL"),
            postgresql_where=text("rollback_of IS NULL"),
        ),
        Index("ix_release_lookup", "app_id", "platform", "channel", "active"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    app_id: Mapped[str] = mapped_column(ForeignKey("apps.id"))
    platform: Mapped[str] = mapped_column(String(16))
    channel: Mapped[str] = mapped_column(String(64))
    version: Mapped[str] = mapped_column(String(256))
    binary_range: Mapped[str] = mapped_column(String(256))
    epoch: Mapped[int] = mapped_column(BigInteger)
    sequence: Mapped[int] = mapped_column(BigInteger)
    manifest_id: Mapped[str] = mapped_column(String(64), unique=True)
    manifest: Mapped[bytes] = mapped_column(LargeBinary)
    archive_sha256: Mapped[str] = mapped_column(String(64), index=True)
    archive_length: Mapped[int] = mapped_column(BigInteger)
    mandatory: Mapped[bool] = mapped_column(Boolean, default=False)
    rollout_basis_points: Mapped[int] = mapped_column(Integer, default=10_000)
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    rollback_of: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[str] = mapped_column(String(200))


class CodePushDiff(Base):
    """A CodePush diff zip to a release from one base package (by its CodePush package hash)."""

    __tablename__ = "codepush_diffs"

    target_manifest_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    base_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64))
    length: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ExpoUpdate(Base):
    """A release's Expo Updates manifest: the exact bytes served, and the publisher's signature."""

    __tablename__ = "expo_updates"

    release_id: Mapped[int] = mapped_column(ForeignKey("releases.id"), primary_key=True)
    update_id: Mapped[str] = mapped_column(String(36), unique=True)
    runtime_version: Mapped[str] = mapped_column(String(64))
    manifest: Mapped[bytes] = mapped_column(LargeBinary)
    #: Base64 RSA-SHA256 signature of ``manifest`` (``expo-signature``), when the app checks one.
    signature: Mapped[str | None] = mapped_column(Text, nullable=True)
    key_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[str] = mapped_column(String(200))


class ExpoDirective(Base):
    """An Expo ``rollBackToEmbedded`` directive for one channel and runtime version."""

    __tablename__ = "expo_directives"

    app_id: Mapped[str] = mapped_column(ForeignKey("apps.id"), primary_key=True)
    platform: Mapped[str] = mapped_column(String(16), primary_key=True)
    channel: Mapped[str] = mapped_column(String(64), primary_key=True)
    runtime_version: Mapped[str] = mapped_column(String(64), primary_key=True)
    #: ``YYYY-MM-DDTHH:mm:ss.sssZ``: updates committed before it are not served.
    commit_time: Mapped[str] = mapped_column(String(24))
    body: Mapped[bytes] = mapped_column(LargeBinary)
    signature: Mapped[str | None] = mapped_column(Text, nullable=True)
    key_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[str] = mapped_column(String(200))


class ExpoAsset(Base):
    """A file an Expo manifest lists, stored as a blob of its own and served by sha256."""

    __tablename__ = "expo_assets"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    content_type: Mapped[str] = mapped_column(String(100))
    length: Mapped[int] = mapped_column(BigInteger)


class Device(Base):
    """A device last seen by the update check (written in batches, never on the hot path)."""

    __tablename__ = "devices"

    app_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    device_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    platform: Mapped[str] = mapped_column(String(16))
    channel: Mapped[str] = mapped_column(String(64))
    native_version: Mapped[str] = mapped_column(String(64))
    current_manifest_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    first_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Installation(Base):
    """A device's report: applied, failed or rolled back.

    Idempotent on the client's id *within its app and device*: an id is the
    device's to choose, so a report filed under another app or device can
    never take it (docs/security.md S10).
    """

    __tablename__ = "installations"
    __table_args__ = (Index("ix_installation_device", "app_id", "device_id", "status"),)

    app_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    device_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    release_id: Mapped[int | None] = mapped_column(ForeignKey("releases.id"), nullable=True)
    manifest_id: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(16))
    phase: Mapped[str | None] = mapped_column(String(16), nullable=True)
    reason: Mapped[str] = mapped_column(String(500), default="")
    #: On an applied report: the bundle a patch was applied to (the bytes it saved count).
    patched_from: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ApiKey(Base):
    """An API key: only its sha256 is stored; role and app scope decide what it may do."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    apps: Mapped[list[str]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class RefreshToken(Base):
    """A single-use refresh token (stored as its sha256), rotated on every use."""

    __tablename__ = "refresh_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    api_key_id: Mapped[str] = mapped_column(ForeignKey("api_keys.id"))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    #: The refresh chain this token belongs to; reusing any used token revokes all of it.
    family: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class AuditEntry(Base):
    """Who did what to which target, when, with which hashes."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(64))
    app_id: Mapped[str | None] = mapped_column(String(128), nullable=True, index=True)
    target: Mapped[str] = mapped_column(String(200))
    details: Mapped[dict[str, object]] = mapped_column(JSON)


class Patch(Base):
    """A patch from one release's files to another's, stored as a content-addressed blob."""

    __tablename__ = "patches"
    __table_args__ = (UniqueConstraint("base_manifest_id", "target_manifest_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    app_id: Mapped[str] = mapped_column(ForeignKey("apps.id"))
    base_manifest_id: Mapped[str] = mapped_column(String(64))
    target_manifest_id: Mapped[str] = mapped_column(String(64), index=True)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    length: Mapped[int] = mapped_column(BigInteger)
    archive_length: Mapped[int] = mapped_column(BigInteger)
    downloads: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class EmbeddedBundle(Base):
    """The bundle shipped inside one native version of an app, registered as a patch base."""

    __tablename__ = "embedded_bundles"
    __table_args__ = (UniqueConstraint("app_id", "platform", "native_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    app_id: Mapped[str] = mapped_column(ForeignKey("apps.id"))
    platform: Mapped[str] = mapped_column(String(16))
    native_version: Mapped[str] = mapped_column(String(64))
    base_id: Mapped[str] = mapped_column(String(64), unique=True)
    files: Mapped[list[dict[str, object]]] = mapped_column(JSON)
    archive_sha256: Mapped[str] = mapped_column(String(64))
    archive_length: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
