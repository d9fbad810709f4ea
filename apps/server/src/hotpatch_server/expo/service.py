"""Expo Updates manifests attached to releases, and roll-back directives: the service.

The manifest's bytes are a function of the signed release
(:func:`hotpatch_core.expo.expo_manifest`), so the server computes them and
the publisher's CLI computes the same bytes to check them and, when the app
checks code signatures, to sign them with the app's RSA key. The server
stores the bytes and the signature, and serves exactly those: it never
holds the key (docs/adr/0005-expo-manifests-are-fixed-at-publish.md).
:class:`ExpoPublisher` raises domain errors and, after each change it
commits, invalidates the channel's cached candidates itself.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Final

import attrs
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID
from sqlalchemy.ext.asyncio import AsyncSession

from hotpatch_core.errors import HotPatchError, VersionSyntaxError
from hotpatch_core.expo import (
    RUNTIME_VERSION,
    commit_time,
    expo_assets,
    expo_manifest,
    roll_back_directive,
    update_id,
)
from hotpatch_core.manifest import Platform, ReleaseManifest, decode_manifest
from hotpatch_core.publishing import (
    ExpoAttachment,
    ExpoDirectiveView,
    ExpoRollBack,
    ExpoUpdateView,
)
from hotpatch_core.release import decode_release_envelope
from hotpatch_core.versions import BinaryRange
from hotpatch_server import fields
from hotpatch_server.audit import record, record_raw
from hotpatch_server.auth import Action, Principal
from hotpatch_server.cache import ActiveReleases
from hotpatch_server.devices.query import CHANNEL, PLATFORM, native_version
from hotpatch_server.errors import (
    DirectiveNotNewerError,
    ExpoSignatureError,
    ExpoUpdateExistsError,
    InvalidInputError,
    NotExpoReleaseError,
    NotFoundError,
    TooLargeInputError,
)
from hotpatch_server.models import App, ExpoAsset, ExpoDirective, ExpoUpdate, Release, utc
from hotpatch_server.patches.service import ExpandsTooFarError, extracted, store_bytes
from hotpatch_server.releases.service import find_release
from hotpatch_server.settings import Settings
from hotpatch_server.storage.blobs import BlobStore

__all__ = ["ExpoPublisher", "attachment_view", "directive_view", "verify_signature"]

#: Key ids travel in structured header strings: keep them plain.
KEY_ID: Final = re.compile(r"[A-Za-z0-9._-]{1,64}")
_MAX_SIGNATURE_CHARS: Final = 2048  # base64 of an RSA-16384 signature
_MAX_CERTIFICATE_CHARS: Final = 16 * 1024


def verify_signature(
    certificate_pem: str, manifest: bytes, signature: bytes, now: datetime
) -> None:
    """Check ``signature`` as expo-updates does; a domain error (422) if a device would refuse.

    The certificate must be valid at ``now``, allow digital signatures and
    code signing, and hold an RSA key under which the signature verifies.
    """
    try:
        cert = x509.load_pem_x509_certificate(certificate_pem.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        raise InvalidInputError(
            "certificate is not a PEM X.509 certificate", field="certificate"
        ) from None
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        raise InvalidInputError(
            f"the certificate is valid from {cert.not_valid_before_utc.isoformat()} to "
            f"{cert.not_valid_after_utc.isoformat()}, not now",
            field="certificate",
        )
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        extended = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        usage, extended = None, None
    if (
        usage is None
        or extended is None
        or not usage.digital_signature
        or ExtendedKeyUsageOID.CODE_SIGNING not in extended
    ):
        raise InvalidInputError(
            "the certificate is not a code-signing certificate (Key Usage digitalSignature, "
            "Extended Key Usage codeSigning); make it with `npx expo-updates codesigning:generate`",
            field="certificate",
        )
    key = cert.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        raise InvalidInputError("the certificate's key is not RSA", field="certificate")
    try:
        key.verify(signature, manifest, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature:
        raise ExpoSignatureError(
            "the signature does not verify with the certificate's key over these manifest bytes",
            field="signature",
        ) from None


def _check_signature(data: ExpoAttachment | ExpoRollBack, signed: bytes, now: datetime) -> None:
    """Check the signature ``data`` carries over ``signed``, if it carries one.

    ``signature``, ``keyId`` and ``certificate`` go together; each is bounded,
    and the signature must verify as a device verifies it (:func:`verify_signature`).
    """
    given = [data.signature is not None, data.key_id is not None, data.certificate is not None]
    if not any(given):
        return
    if not all(given):
        raise InvalidInputError(
            "signature, keyId and certificate go together",
            field="signature" if data.signature is None else "keyId",
        )
    assert data.signature is not None  # noqa: S101 - narrowed above
    assert data.key_id is not None  # noqa: S101
    assert data.certificate is not None  # noqa: S101
    if not KEY_ID.fullmatch(data.key_id):
        raise InvalidInputError("keyId is 1-64 letters, digits, '.', '_' or '-'", field="keyId")
    if len(data.signature) > _MAX_SIGNATURE_CHARS:
        raise InvalidInputError("signature is too long", field="signature")
    if len(data.certificate) > _MAX_CERTIFICATE_CHARS:
        raise InvalidInputError("certificate is too long", field="certificate")
    signature = fields.base64_bytes(data.signature, "signature")
    verify_signature(data.certificate, signed, signature, now)


def _fits(manifest: ReleaseManifest, runtime_version: str) -> None:
    """Refuse a runtime version that is a native version outside the release's binary range."""
    try:
        native = native_version(runtime_version)
    except VersionSyntaxError:
        return  # a fingerprint: matched exactly, not by range
    if not BinaryRange.parse(manifest.binary_range).contains(native):
        raise InvalidInputError(
            f"runtime version {runtime_version} is outside the release's binary range "
            f"{manifest.binary_range}",
            field="runtimeVersion",
        )


def _manifest_bytes(
    release: Release, data: ExpoAttachment, settings: Settings
) -> tuple[ReleaseManifest, bytes]:
    """Return the release's signed manifest and the Expo manifest bytes it makes."""
    if not RUNTIME_VERSION.fullmatch(data.runtime_version):
        raise InvalidInputError(
            "runtimeVersion is 1-64 letters, digits or ._+:()- starting with a letter or digit",
            field="runtimeVersion",
        )
    manifest = decode_manifest(decode_release_envelope(release.manifest).payload)
    _fits(manifest, data.runtime_version)
    try:
        return manifest, expo_manifest(
            manifest,
            release.manifest_id,
            runtime_version=data.runtime_version,
            public_url=settings.public_url,
            expo_client=data.expo_client,
        )
    except HotPatchError as exc:
        raise NotExpoReleaseError(str(exc), field=getattr(exc, "field", None)) from None


def attachment_view(row: ExpoUpdate, release: Release) -> ExpoUpdateView:
    """Return the API's view of a release's Expo manifest."""
    return ExpoUpdateView(
        release_id=release.id,
        update_id=row.update_id,
        runtime_version=row.runtime_version,
        signed=row.signature is not None,
        key_id=row.key_id,
        manifest=row.manifest.decode("utf-8"),
        created_at=utc(row.created_at),
        created_by=row.created_by,
    )


async def _store_assets(
    session: AsyncSession,
    store: BlobStore,
    release: Release,
    manifest: ReleaseManifest,
    settings: Settings,
) -> int:
    """Store every file the Expo manifest lists as a blob of its own; return how many."""
    try:
        side = await extracted(store, release, settings.max_expanded_bytes)
    except ExpandsTooFarError as exc:
        raise TooLargeInputError(
            f"the server does not expand releases this large to serve them as Expo assets: "
            f"{exc} (HOTPATCH_MAX_EXPANDED_BYTES)"
        ) from None
    launch, assets = expo_assets(manifest)
    entries = {entry.path: entry for entry in manifest.files}
    for asset in (launch, *assets):
        data = side.read(entries[asset.path])
        await store_bytes(store, data, settings.data_dir / "tmp")
        if await session.get(ExpoAsset, asset.sha256) is None:
            session.add(
                ExpoAsset(sha256=asset.sha256, content_type=asset.content_type, length=len(data))
            )
    return 1 + len(assets)


#: How far a directive's commit time may be from the server's clock.
_COMMIT_SKEW: Final = timedelta(minutes=10)


def directive_view(row: ExpoDirective) -> ExpoDirectiveView:
    """Return the API's view of a rollBackToEmbedded directive."""
    return ExpoDirectiveView(
        app_id=row.app_id,
        platform=Platform(row.platform),
        channel=row.channel,
        runtime_version=row.runtime_version,
        commit_time=row.commit_time,
        signed=row.signature is not None,
        key_id=row.key_id,
        directive=row.body.decode("utf-8"),
        created_at=utc(row.created_at),
        created_by=row.created_by,
    )


@attrs.define
class ExpoPublisher:
    """An app's Expo manifests and directives, as one principal changes them at one time."""

    session: AsyncSession
    store: BlobStore
    cache: ActiveReleases
    principal: Principal
    settings: Settings
    now: datetime

    async def preview(self, release_id: int, sent: ExpoAttachment) -> bytes:
        """Return the exact manifest bytes an attach of ``sent`` would serve; store nothing."""
        release = await find_release(self.session, release_id, self.principal, Action.PUBLISH)
        _manifest, body = _manifest_bytes(release, sent, self.settings)
        return body

    async def attach(self, release_id: int, sent: ExpoAttachment) -> ExpoUpdateView:
        """Attach the release's Expo manifest (its signature checked first); once only."""
        release = await find_release(self.session, release_id, self.principal, Action.PUBLISH)
        manifest, body = _manifest_bytes(release, sent, self.settings)
        _check_signature(sent, body, self.now)
        existing = await self.session.get(ExpoUpdate, release.id)
        if existing is not None:
            same = existing.manifest == body and existing.signature == sent.signature
            if not same:
                raise ExpoUpdateExistsError(
                    f"release {release.id} already serves Expo update {existing.update_id} "
                    f"(runtime {existing.runtime_version}); an update never changes: publish "
                    "a new release instead",
                )
            return attachment_view(existing, release)
        assets = await _store_assets(self.session, self.store, release, manifest, self.settings)
        row = ExpoUpdate(
            release_id=release.id,
            update_id=update_id(release.manifest_id),
            runtime_version=sent.runtime_version,
            manifest=body,
            signature=sent.signature,
            key_id=sent.key_id,
            created_at=self.now,
            created_by=self.principal.label,
        )
        self.session.add(row)
        record(
            self.session,
            self.principal,
            "expo-attach",
            release,
            self.now,
            {"runtimeVersion": sent.runtime_version, "keyId": sent.key_id, "assets": assets},
        )
        await self.session.commit()
        await self.cache.invalidate(release.app_id, release.platform, release.channel)
        return attachment_view(row, release)

    async def show(self, release_id: int) -> ExpoUpdateView:
        """Return the attached Expo manifest; :class:`NotFoundError` if there is none."""
        release = await find_release(self.session, release_id, self.principal, Action.READ)
        row = await self.session.get(ExpoUpdate, release.id)
        if row is None:
            raise NotFoundError(f"release {release.id} has no Expo manifest")
        return attachment_view(row, release)

    async def roll_back(self, app_id: str, sent: ExpoRollBack) -> ExpoDirectiveView:
        """Store a roll-back directive (its signature checked first); older updates stop."""
        fields.app_id(app_id, "appId")
        self.principal.require(Action.ROLLBACK, app_id)
        if await self.session.get(App, app_id) is None:
            raise NotFoundError(f"no app {app_id!r}")
        if not PLATFORM.fullmatch(sent.platform):
            raise InvalidInputError("platform is android or ios", field="platform")
        if not CHANNEL.fullmatch(sent.channel):
            raise InvalidInputError("channel is not valid", field="channel")
        if not RUNTIME_VERSION.fullmatch(sent.runtime_version):
            raise InvalidInputError("runtimeVersion is not valid", field="runtimeVersion")
        try:
            body = roll_back_directive(sent.commit_time)
        except HotPatchError as exc:
            raise InvalidInputError(str(exc), field="commitTime") from None
        committed = datetime.strptime(sent.commit_time, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
        if abs(committed - self.now) > _COMMIT_SKEW:
            raise InvalidInputError(
                f"commitTime {sent.commit_time} is more than 10 minutes from the server's "
                f"clock ({commit_time(self.now)}); make the directive now",
                field="commitTime",
            )
        _check_signature(sent, body, self.now)
        key = (app_id, sent.platform, sent.channel, sent.runtime_version)
        row = await self.session.get(ExpoDirective, key)
        if row is not None and row.commit_time >= sent.commit_time:
            raise DirectiveNotNewerError(
                f"a rollback to the embedded bundle committed at {row.commit_time} exists; "
                "a new one must be committed later",
                field="commitTime",
            )
        if row is None:
            row = ExpoDirective(
                app_id=app_id,
                platform=sent.platform,
                channel=sent.channel,
                runtime_version=sent.runtime_version,
            )
            self.session.add(row)
        row.commit_time = sent.commit_time
        row.body = body
        row.signature = sent.signature
        row.key_id = sent.key_id
        row.created_at = self.now
        row.created_by = self.principal.label
        record_raw(
            self.session,
            self.principal.label,
            "expo-rollback-to-embedded",
            app_id,
            f"{sent.platform}/{sent.channel}/{sent.runtime_version}",
            self.now,
            {"commitTime": sent.commit_time, "keyId": sent.key_id},
        )
        await self.session.commit()
        await self.cache.invalidate(app_id, sent.platform, sent.channel)
        return directive_view(row)
