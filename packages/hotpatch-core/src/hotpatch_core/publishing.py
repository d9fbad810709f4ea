"""The publisher API's answers and request bodies, defined once (docs/reference/api.md).

The server builds the answers and returns them through the wire converter
(:mod:`hotpatch_core.wire`), with their OpenAPI schemas made from the same
classes; the command-line tool reads the same classes back. The request
bodies (:class:`NewApp`, :class:`NewTrustRoot`, :class:`RolloutChange`,
:class:`Republish`, :class:`NewPatch`, :class:`EmbeddedRegistration`,
:class:`NewDeploymentKey`, :class:`ExpoAttachment`, :class:`ExpoRollBack`)
go the other way: the tool writes them and the server reads them with the
same converter. Binary fields in them (an envelope, a patch, an archive) are
base64 text, which the server decodes itself to name the field at fault. A
field the server adds later is ignored by an older reader; a field it
drops fails the reader's :func:`~hotpatch_core.wire.structure` by name.

None of these documents is trusted by a device: they are what publishers
and dashboards read. What a device verifies is the signed manifest
(``ReleaseView.manifest``, exactly as uploaded). A secret (an API key, a
deployment key) appears in one answer only, the one that created it
(``CreatedApiKey``, ``CreatedDeploymentKey``).
"""

from __future__ import annotations

from datetime import datetime

import attrs

from hotpatch_core.machine import ReportStatus
from hotpatch_core.manifest import Platform
from hotpatch_core.protocol import SHA256_RULE, SHA256_SCHEMA
from hotpatch_core.trust import Scope

__all__ = [
    "ApiKeyView",
    "AppView",
    "AuditEntryView",
    "CreatedApiKey",
    "CreatedDeploymentKey",
    "DeploymentKeyView",
    "EmbeddedFile",
    "EmbeddedRegistration",
    "EmbeddedView",
    "ExpoAttachment",
    "ExpoDirectiveView",
    "ExpoRollBack",
    "ExpoUpdateView",
    "Health",
    "NewApp",
    "NewDeploymentKey",
    "NewPatch",
    "NewTrustRoot",
    "PatchStats",
    "PatchView",
    "PublisherView",
    "RefreshRequest",
    "ReleaseStats",
    "ReleaseView",
    "Republish",
    "RolloutChange",
    "TokenRequest",
    "Tokens",
]


@attrs.frozen
class ReleaseView:
    """A release as the API shows it: what was signed, and how it is rolled out.

    ``manifest`` (the signed envelope, exactly as uploaded) is sent only by
    ``GET /releases/{id}``; lists leave it out.
    """

    id: int
    app_id: str
    platform: Platform
    channel: str
    version: str
    binary_range: str
    epoch: int
    sequence: int
    manifest_id: str = attrs.field(validator=SHA256_RULE, metadata=SHA256_SCHEMA)
    #: The archive's sha256 (hex) and length in bytes.
    hash: str = attrs.field(validator=SHA256_RULE, metadata=SHA256_SCHEMA)
    size: int
    mandatory: bool
    #: The share of devices offered the release, 0 to 100 in steps of 0.01.
    rollout_percent: float
    paused: bool
    #: False once archived: never offered again.
    active: bool
    #: For a rollback: the manifest id of the release whose content it re-activates; else null.
    rollback_of: str | None
    created_at: datetime
    #: Who published it: an API key's or a user's label.
    created_by: str
    #: Where the archive is (a signed URL when the store signs them).
    download_url: str
    #: The signed release envelope, as uploaded (``GET /releases/{id}`` only).
    manifest: bytes | None = None


@attrs.frozen
class PatchView:
    """A stored patch between two releases of one app."""

    id: int
    base_manifest_id: str = attrs.field(validator=SHA256_RULE, metadata=SHA256_SCHEMA)
    target_manifest_id: str = attrs.field(validator=SHA256_RULE, metadata=SHA256_SCHEMA)
    #: The patch's length, and the archive's it replaces, in bytes.
    size: int
    archive_size: int


@attrs.frozen
class PatchStats:
    """One patch to a release: served downloads and confirmed installs."""

    base_manifest_id: str = attrs.field(validator=SHA256_RULE, metadata=SHA256_SCHEMA)
    size: int
    #: Served to the end (counted by local storage only).
    downloads: int
    #: Applied reports naming this patch's base.
    installs: int


@attrs.frozen
class ReleaseStats:
    """How a release is doing on devices (``GET /releases/{id}/stats``)."""

    id: int
    manifest_id: str = attrs.field(validator=SHA256_RULE, metadata=SHA256_SCHEMA)
    #: Installation reports by status (``applied``, ``failed``, ``rolled_back``).
    installations: dict[ReportStatus, int]
    #: The same counts, only from devices this server has seen check for updates.
    installations_from_checked_devices: dict[ReportStatus, int]
    warnings: tuple[str, ...]
    #: Failure and rollback reports by ``status/phase``.
    failures_by_phase: dict[str, int]
    devices_running: int
    rollout_percent: float
    patches: tuple[PatchStats, ...]
    #: Bytes not downloaded thanks to patches devices installed.
    bytes_saved: int


@attrs.frozen
class PublisherView:
    """A publisher key of an app's trust root (its public part and scope)."""

    key_id: str
    name: str
    scope: Scope
    #: When the trust root stops accepting the key's signatures; null: never.
    expires_at: datetime | None


@attrs.frozen
class AppView:
    """An app and its current trust root."""

    id: str
    name: str
    trust_root_version: int
    epoch: int
    publishers: tuple[PublisherView, ...]
    #: The signed trust root, as installed.
    trust_root: bytes
    created_at: datetime


@attrs.frozen
class EmbeddedView:
    """A native version's embedded bundle, registered as a patch base."""

    base_id: str = attrs.field(validator=SHA256_RULE, metadata=SHA256_SCHEMA)
    platform: Platform
    native_version: str
    #: How many files the bundle has.
    files: int


@attrs.frozen
class ApiKeyView:
    """An API key as the API shows it: never its plaintext or its hash."""

    id: str
    name: str
    #: ``admin``, ``publisher`` or ``viewer``.
    role: str
    #: The app ids it acts on (``*``: every app).
    apps: tuple[str, ...]
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None


@attrs.frozen
class CreatedApiKey(ApiKeyView):
    """A new API key: the only answer that holds its plaintext."""

    key: str


@attrs.frozen
class Tokens:
    """A short-lived access token (a JWT) and a single-use refresh token."""

    access_token: str
    refresh_token: str
    token_type: str
    #: Seconds the access token is valid for.
    expires_in: int


@attrs.frozen
class DeploymentKeyView:
    """A CodePush deployment key's target, as the API shows it: never the key after creation."""

    id: str
    app_id: str
    platform: Platform
    channel: str
    name: str
    created_at: datetime
    revoked_at: datetime | None


@attrs.frozen
class CreatedDeploymentKey(DeploymentKeyView):
    """A new deployment key: the only answer that holds the key itself."""

    key: str


@attrs.frozen
class ExpoUpdateView:
    """A release's Expo manifest, as served to expo-updates."""

    release_id: int
    #: The Expo update id (a UUID made from the manifest id).
    update_id: str
    runtime_version: str
    signed: bool
    #: The code signing key id, when signed.
    key_id: str | None
    #: The manifest's exact JSON text.
    manifest: str
    created_at: datetime
    created_by: str


@attrs.frozen
class ExpoDirectiveView:
    """A rollBackToEmbedded directive of one channel and runtime version."""

    app_id: str
    platform: Platform
    channel: str
    runtime_version: str
    #: The directive's commit time, as expo-updates compares it (milliseconds, UTC).
    commit_time: str
    signed: bool
    key_id: str | None
    #: The directive's exact JSON text.
    directive: str
    created_at: datetime
    created_by: str


@attrs.frozen
class EmbeddedFile:
    """One file of an embedded bundle, as the archive holds it."""

    path: str
    sha256: str
    size: int


@attrs.frozen
class EmbeddedRegistration:
    """The bundle shipped in one native version (``POST /apps/{appId}/embedded``).

    ``archive`` is the deterministic archive of ``files`` as base64 text; the
    server checks every file of it against the list with the strict extractor.
    """

    platform: str
    native_version: str
    archive: str
    files: tuple[EmbeddedFile, ...]


@attrs.frozen
class ExpoAttachment:
    """What makes a release's Expo manifest (``PUT /releases/{id}/expo``), maybe signed.

    ``signature``, ``keyId`` and ``certificate`` go together: a base64
    RSASSA-PKCS1-v1_5 SHA-256 signature of the manifest bytes the preview
    route returned, the key id the app expects, and the PEM code-signing
    certificate the app embeds.
    """

    runtime_version: str
    #: The app's public Expo config (``npx expo config --type public --json``).
    expo_client: dict[str, object] | None = None
    signature: str | None = None
    key_id: str | None = None
    certificate: str | None = None


@attrs.frozen
class ExpoRollBack:
    """Roll one channel's runtime version back to the binary's embedded bundle.

    The body of ``PUT /apps/{appId}/expo/roll-back-to-embedded``;
    ``commitTime`` (``YYYY-MM-DDTHH:mm:ss.sssZ``) is part of what is signed.
    """

    platform: str
    runtime_version: str
    commit_time: str
    channel: str = "production"
    signature: str | None = None
    key_id: str | None = None
    certificate: str | None = None


@attrs.frozen
class NewApp:
    """An app to create (``POST /apps``), with its first trust root envelope (base64)."""

    id: str
    trust_root: str
    name: str = ""


@attrs.frozen
class NewTrustRoot:
    """The next version of an app's trust root (``PUT /apps/{appId}/trust-root``), base64."""

    trust_root: str


@attrs.frozen
class RolloutChange:
    """Advisory rollout settings of a release (``PATCH /releases/{id}/rollout``).

    Neither is signed, and neither decides what a device runs: a field left
    out is left as it is.
    """

    rollout_percent: float | None = None
    paused: bool | None = None


@attrs.frozen
class Republish:
    """A new signed manifest (base64 envelope) for content the server stores already.

    The body of a rollback (``PATCH /releases/{id}/rollback``) and of a
    promotion (``POST /releases/{id}/promote``).
    """

    manifest: str
    rollout_percent: float = 100.0


@attrs.frozen
class NewPatch:
    """A patch to a release from an earlier one (``POST /releases/{id}/patches``), base64."""

    base_manifest_id: str
    patch: str


@attrs.frozen
class NewDeploymentKey:
    """A CodePush deployment key to create (``POST /apps/{appId}/deployment-keys``)."""

    platform: str
    channel: str = "production"
    name: str = ""


@attrs.frozen
class TokenRequest:
    """An API key to exchange for tokens (``POST /auth/token``)."""

    api_key: str


@attrs.frozen
class RefreshRequest:
    """A refresh token to use once (``POST /auth/refresh``)."""

    refresh_token: str


@attrs.frozen
class Health:
    """``GET /health``, for operators and load balancers: whether each service answers.

    ``status`` is ``ok``, ``degraded`` (Redis is away: everything is still
    served) or ``unavailable`` (the database is away: the answer is a 503).
    Why a service is away goes to the server's log, never here.
    """

    status: str = attrs.field(metadata={"schema": {"enum": ["ok", "degraded", "unavailable"]}})
    database: str = attrs.field(metadata={"schema": {"enum": ["ok", "unavailable"]}})
    cache: str = attrs.field(metadata={"schema": {"enum": ["ok", "unavailable", "not configured"]}})


@attrs.frozen
class AuditEntryView:
    """One entry of an app's audit log (``GET /audit``): who changed what, and when.

    ``details`` holds what the action changed (for example the rollout, the
    key id, the manifest id); its fields depend on ``action``.
    """

    id: int
    at: datetime
    #: The credential that acted (its name and id), or the server's own command line.
    actor: str
    action: str
    app_id: str
    #: What was acted on: a release, a key, a channel.
    target: str
    details: dict[str, object]
