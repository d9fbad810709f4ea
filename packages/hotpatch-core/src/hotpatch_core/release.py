"""The one verification path for releases.

:func:`verify_release` is the only way to obtain a :class:`VerifiedRelease`,
and installing code requires one (docs/security.md A1, A12). It runs, in order:

1. cap the size and decode the envelope; check its payload type;
2. check the trust root has not expired;
3. verify the signatures over the *exact* bytes received (A13);
4. parse the manifest strictly;
5. check identity: app, platform, channel and native binary range (A11);
6. count distinct, unexpired publisher keys whose scope covers that
   identity against the channel's threshold (A10, A14);
7. check the manifest's epoch equals the root's (A4) and its expiry (A5);
8. check ``(epoch, sequence)`` against the device's high-water mark: lower
   is a rollback, equal with another manifest is equivocation (A8).

:func:`verify_publication` is the server's variant: the same steps without a
device, judging scope against the manifest's own identity.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Final

import attrs

from hotpatch_core.envelope import (
    Envelope,
    SignatureReport,
    check_signatures,
    decode_envelope,
    encode_envelope,
    sign_envelope,
)
from hotpatch_core.errors import (
    EpochError,
    EquivocationError,
    ExpiredError,
    IdentityMismatchError,
    KeyScopeError,
    PayloadTypeError,
    RollbackError,
)
from hotpatch_core.keys import SigningKey
from hotpatch_core.manifest import (
    MAX_MANIFEST_BYTES,
    RELEASE_PAYLOAD_TYPE,
    Platform,
    ReleaseManifest,
    decode_manifest,
    encode_manifest,
    manifest_id,
)
from hotpatch_core.trust import TrustRoot, check_root_fresh, require_threshold
from hotpatch_core.versions import Version

__all__ = [
    "MAX_RELEASE_ENVELOPE_BYTES",
    "DeviceIdentity",
    "HighWaterMark",
    "VerifiedRelease",
    "decode_release_envelope",
    "sign_release",
    "verify_publication",
    "verify_release",
]

# Base64 grows the manifest by 4/3; the envelope adds signatures and keys.
MAX_RELEASE_ENVELOPE_BYTES: Final = MAX_MANIFEST_BYTES * 4 // 3 + 16 * 1024
_TOKEN: Final = object()


@attrs.frozen
class DeviceIdentity:
    """What a device is: the app, platform and channel it follows, and its native version."""

    app_id: str
    platform: Platform
    channel: str
    native_version: Version


@attrs.frozen(order=False)
class HighWaterMark:
    """The newest release a device ever accepted for its (app, platform, channel)."""

    epoch: int
    sequence: int
    manifest_id: str

    def position(self) -> tuple[int, int]:
        """Return the ``(epoch, sequence)`` pair releases are ordered by."""
        return (self.epoch, self.sequence)


@attrs.frozen
class VerifiedRelease:
    """A release whose envelope passed every check of :func:`verify_release`.

    Only this module creates them; installing requires one.
    """

    manifest: ReleaseManifest
    manifest_id: str
    envelope: bytes = attrs.field(repr=False)
    signed_by: frozenset[str]
    _token: object = attrs.field(repr=False, alias="_token")

    def __attrs_post_init__(self) -> None:
        if self._token is not _TOKEN:
            msg = "VerifiedRelease is created only by verify_release / verify_publication"
            raise TypeError(msg)

    def high_water_mark(self) -> HighWaterMark:
        """Return the high-water mark a device records after accepting this release."""
        return HighWaterMark(self.manifest.epoch, self.manifest.sequence, self.manifest_id)


def sign_release(manifest: ReleaseManifest, keys: Iterable[SigningKey]) -> bytes:
    """Sign ``manifest`` with ``keys``; return the envelope bytes to upload."""
    return encode_envelope(sign_envelope(RELEASE_PAYLOAD_TYPE, encode_manifest(manifest), keys))


def decode_release_envelope(data: bytes) -> Envelope:
    """Decode a release envelope, capped at :data:`MAX_RELEASE_ENVELOPE_BYTES` (unverified).

    Use it, not :func:`~hotpatch_core.envelope.decode_envelope`'s general cap,
    wherever a stored or served release is read, so a release the core
    verifies is never refused elsewhere.
    """
    return decode_envelope(data, max_bytes=MAX_RELEASE_ENVELOPE_BYTES)


def _open(data: bytes, root: TrustRoot, now: datetime) -> tuple[Envelope, SignatureReport]:
    envelope = decode_release_envelope(data)
    if envelope.payload_type != RELEASE_PAYLOAD_TYPE:
        raise PayloadTypeError(f"expected a release manifest, got {envelope.payload_type[:80]!r}")
    check_root_fresh(root, now)
    report = check_signatures(envelope, root.publisher_keyring())
    # Nothing is parsed unless at least one known key signed these exact bytes.
    require_threshold(envelope, report, report.verified, 1, "release manifest")
    return envelope, report


def _authorise(
    envelope: Envelope,
    report: SignatureReport,
    manifest: ReleaseManifest,
    root: TrustRoot,
    now: datetime,
) -> frozenset[str]:
    target = (manifest.app_id, manifest.platform.value, manifest.channel)
    in_scope = {k for k in report.verified if root.publisher(k).scope.covers(*target)}
    eligible = frozenset(k for k in in_scope if not root.publisher(k).expired(now))
    threshold = root.release_threshold(manifest.channel)
    if not eligible:
        if in_scope:
            names = ", ".join(sorted(root.publisher(k).name for k in in_scope))
            raise ExpiredError(f"release signed only by expired publisher keys ({names})")
        names = ", ".join(sorted(root.publisher(k).name for k in report.verified))
        raise KeyScopeError(
            f"publisher keys ({names}) may not sign {manifest.app_id}/{manifest.platform}/"
            f"{manifest.channel}"
        )
    require_threshold(envelope, report, eligible, threshold, f"release for {manifest.channel!r}")
    if manifest.epoch != root.epoch:
        raise EpochError(
            f"manifest is from epoch {manifest.epoch}, the trust root is at epoch {root.epoch}"
        )
    if manifest.expires_at is not None and now >= manifest.expires_at:
        raise ExpiredError(f"release manifest expired at {manifest.expires_at}")
    return eligible


def _check_identity(manifest: ReleaseManifest, device: DeviceIdentity) -> None:
    if manifest.app_id != device.app_id:
        raise IdentityMismatchError(
            f"release is for app {manifest.app_id!r}, this device runs {device.app_id!r}", "app_id"
        )
    if manifest.platform != device.platform:
        raise IdentityMismatchError(
            f"release is for {manifest.platform}, this device is {device.platform}", "platform"
        )
    if manifest.channel != device.channel:
        raise IdentityMismatchError(
            f"release is for channel {manifest.channel!r}, this device follows {device.channel!r}",
            "channel",
        )
    if not manifest.binary.contains(device.native_version):
        raise IdentityMismatchError(
            f"release needs native {manifest.binary_range!r}, this device runs "
            f"{device.native_version}",
            "binary_range",
        )


def _check_sequence(manifest: ReleaseManifest, mid: str, mark: HighWaterMark | None) -> None:
    if mark is None:
        return
    position = (manifest.epoch, manifest.sequence)
    if position < mark.position():
        raise RollbackError(
            f"release {position} is older than the newest accepted {mark.position()}"
        )
    if position == mark.position() and mid != mark.manifest_id:
        raise EquivocationError(
            f"a different manifest was already accepted at (epoch, sequence) {position}"
        )


def verify_release(
    data: bytes,
    trust_root: TrustRoot,
    device: DeviceIdentity,
    high_water_mark: HighWaterMark | None,
    now: datetime,
) -> VerifiedRelease:
    """Verify release envelope bytes for this device, or raise the error naming the attack."""
    envelope, report = _open(data, trust_root, now)
    manifest = decode_manifest(envelope.payload)
    _check_identity(manifest, device)
    signed_by = _authorise(envelope, report, manifest, trust_root, now)
    mid = manifest_id(envelope.payload)
    _check_sequence(manifest, mid, high_water_mark)
    return VerifiedRelease(manifest, mid, data, signed_by, _token=_TOKEN)


def verify_publication(data: bytes, trust_root: TrustRoot, now: datetime) -> VerifiedRelease:
    """Verify release envelope bytes on upload: trust and scope, without a device."""
    envelope, report = _open(data, trust_root, now)
    manifest = decode_manifest(envelope.payload)
    signed_by = _authorise(envelope, report, manifest, trust_root, now)
    return VerifiedRelease(manifest, manifest_id(envelope.payload), data, signed_by, _token=_TOKEN)
