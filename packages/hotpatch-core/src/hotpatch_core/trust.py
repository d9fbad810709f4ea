"""The trust root: which keys may sign which releases, and how that changes.

An app embeds a trust root (``root.json`` in an envelope). It lists

- *root keys* and a *threshold*: at least that many distinct root keys must
  sign every version of the trust root itself; they stay offline;
- *publisher keys*, each with a *scope* (apps, platforms, channels, ``*`` for
  any) and an optional expiry: they sign release manifests, typically from CI;
- per-channel *release thresholds* (``{"production": 2}``), default 1;
- an *epoch*: every release manifest must carry the root's epoch, so bumping
  it (with a rotation that revokes a stolen key) invalidates everything that
  key signed, including a fast-forwarded sequence (docs/security.md A4);
- optionally a *timestamp* role: keys the update server holds, certified for
  freshness only. They sign the short-lived channel head
  (:mod:`hotpatch_core.head`) that says which releases are live right now;
  they can never make a device accept content. A root that names them makes
  every device require a valid head with each check answer (A5).

Rotation follows TUF: root version N+1 must be signed by a threshold of
version N's root keys *and* a threshold of its own (:func:`rotate_trust_root`),
so publisher keys rotate, and root keys too, without an app-store release.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Final

import attrs

from hotpatch_core import strictjson, wire
from hotpatch_core.envelope import (
    Envelope,
    SignatureReport,
    check_signatures,
    decode_envelope,
    encode_envelope,
    sign_envelope,
)
from hotpatch_core.errors import (
    BadSignatureError,
    ExpiredError,
    PayloadTypeError,
    RootRotationError,
    SchemaError,
    ThresholdError,
    UnknownKeyError,
    UnsignedError,
    UnsupportedFormatError,
)
from hotpatch_core.keys import PublicKey, SigningKey

__all__ = [
    "MAX_ROOT_BYTES",
    "ROOT_FORMAT",
    "ROOT_PAYLOAD_TYPE",
    "PublisherKey",
    "Scope",
    "TimestampRole",
    "TrustRoot",
    "check_root_fresh",
    "decode_trust_root_body",
    "encode_trust_root",
    "load_trust_root",
    "require_threshold",
    "rotate_trust_root",
    "sign_trust_root",
]

ROOT_PAYLOAD_TYPE: Final = "application/vnd.hotpatch.root+json"
ROOT_FORMAT: Final = 1
MAX_ROOT_BYTES: Final = 512 * 1024
_NAME: Final = re.compile(r"^(\*|[A-Za-z0-9][A-Za-z0-9._-]{0,127})\Z")


def _names(
    _instance: object, attribute: attrs.Attribute[tuple[str, ...]], value: tuple[str, ...]
) -> None:
    if not value:
        raise SchemaError("must list at least one name, or '*'", wire.camel(attribute.name))
    for name in value:
        if not _NAME.match(name):
            raise SchemaError(f"{name[:40]!r} is not a valid name", wire.camel(attribute.name))


@attrs.frozen
class Scope:
    """What a publisher key may sign: apps, platforms and channels (``*`` = any)."""

    apps: tuple[str, ...] = attrs.field(validator=_names)
    platforms: tuple[str, ...] = attrs.field(validator=_names)
    channels: tuple[str, ...] = attrs.field(validator=_names)

    def covers(self, app_id: str, platform: str, channel: str) -> bool:
        """Return whether this scope allows signing for the given target."""
        return (
            _allows(self.apps, app_id)
            and _allows(self.platforms, platform)
            and _allows(self.channels, channel)
        )


def _allows(names: tuple[str, ...], name: str) -> bool:
    return "*" in names or name in names


@attrs.frozen
class PublisherKey:
    """A key that may sign release manifests within its scope until it expires."""

    public_key: PublicKey
    name: str
    scope: Scope
    expires_at: datetime | None = None

    @property
    def key_id(self) -> str:
        """The key's locally computed id."""
        return self.public_key.key_id

    def expired(self, now: datetime) -> bool:
        """Return whether the key is past its expiry at ``now``."""
        return self.expires_at is not None and now >= self.expires_at


def _timestamp_keys(instance: TimestampRole, _attribute: attrs.Attribute[int], _value: int) -> None:
    ids = [k.key_id for k in instance.keys]
    if not ids:
        raise SchemaError("must list at least one key", "keys")
    if len(set(ids)) != len(ids):
        raise SchemaError("a timestamp key is listed twice", "keys")
    if not 1 <= instance.threshold <= len(ids):
        raise SchemaError("must be between 1 and the number of timestamp keys", "threshold")


@attrs.frozen
class TimestampRole:
    """Keys that sign channel heads (freshness only) and how many must sign each."""

    keys: tuple[PublicKey, ...]
    threshold: int = attrs.field(default=1, validator=_timestamp_keys)

    def keyring(self) -> dict[str, PublicKey]:
        """Timestamp keys by id."""
        return {k.key_id: k for k in self.keys}


def _positive(_instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if not 1 <= value <= strictjson.MAX_INT:
        raise SchemaError("must be a positive integer", wire.camel(attribute.name))


def _unique_keys(instance: TrustRoot, attribute: attrs.Attribute[object], _value: object) -> None:
    del attribute
    root_ids = [k.key_id for k in instance.root_keys]
    if len(set(root_ids)) != len(root_ids):
        raise SchemaError("a root key is listed twice", "rootKeys")
    publisher_ids = [p.key_id for p in instance.publishers]
    if len(set(publisher_ids)) != len(publisher_ids):
        raise SchemaError("a publisher key is listed twice", "publishers")
    if instance.timestamp is not None and {k.key_id for k in instance.timestamp.keys} & {
        *root_ids,
        *publisher_ids,
    }:
        # The server holds timestamp keys: one must never be able to sign roots or releases.
        raise SchemaError("a timestamp key may not also be a root or publisher key", "timestamp")
    if not 1 <= instance.root_threshold <= len(root_ids):
        raise SchemaError("must be between 1 and the number of root keys", "rootThreshold")
    for channel, threshold in instance.release_thresholds.items():
        if not 1 <= threshold <= max(len(publisher_ids), 1):
            raise SchemaError(
                f"threshold for {channel!r} must be between 1 and the number of publisher keys",
                "releaseThresholds",
            )


@attrs.frozen
class TrustRoot:
    """Version ``version`` of an app's trust root (see the module docstring)."""

    version: int = attrs.field(validator=_positive)
    epoch: int = attrs.field(validator=_positive)
    root_keys: tuple[PublicKey, ...]
    root_threshold: int
    publishers: tuple[PublisherKey, ...]
    release_thresholds: Mapping[str, int] = attrs.field(factory=dict, validator=_unique_keys)
    expires_at: datetime | None = None
    #: The keys that sign channel heads; None: devices need no head (freshness by expiry only).
    timestamp: TimestampRole | None = None
    format: int = ROOT_FORMAT

    def root_keyring(self) -> dict[str, PublicKey]:
        """Root keys by id."""
        return {k.key_id: k for k in self.root_keys}

    def publisher_keyring(self) -> dict[str, PublicKey]:
        """Return publisher public keys by id, expired or not (expiry is judged per use)."""
        return {p.key_id: p.public_key for p in self.publishers}

    def publisher(self, key_id: str) -> PublisherKey:
        """Return the publisher entry for ``key_id``."""
        return next(p for p in self.publishers if p.key_id == key_id)

    def release_threshold(self, channel: str) -> int:
        """How many distinct publisher keys must sign a release for ``channel``."""
        return self.release_thresholds.get(channel, 1)

    def expired(self, now: datetime) -> bool:
        """Return whether this root is past its expiry at ``now``."""
        return self.expires_at is not None and now >= self.expires_at


def encode_trust_root(root: TrustRoot) -> bytes:
    """Return the canonical JSON body of ``root``."""
    return strictjson.canonical(wire.unstructure(root))


def decode_trust_root_body(body: bytes) -> TrustRoot:
    """Parse a trust root body strictly (after its signatures were checked)."""
    document = strictjson.loads(body)
    if isinstance(document, dict) and document.get("format") != ROOT_FORMAT:
        raise UnsupportedFormatError(
            f"trust root format {document.get('format')!r} is not supported "
            f"(expected {ROOT_FORMAT})"
        )
    return wire.structure(document, TrustRoot)


def sign_trust_root(root: TrustRoot, keys: Iterable[SigningKey]) -> bytes:
    """Sign ``root`` with ``keys`` and return the envelope bytes to publish or embed."""
    return encode_envelope(sign_envelope(ROOT_PAYLOAD_TYPE, encode_trust_root(root), keys))


def require_threshold(
    envelope: Envelope, report: SignatureReport, counted: frozenset[str], threshold: int, what: str
) -> None:
    """Raise the telling error unless ``counted`` (verified eligible keys) meets ``threshold``."""
    if len(counted) >= threshold:
        return
    if not envelope.signatures:
        raise UnsignedError(f"{what} carries no signature")
    if not report.verified:
        if report.bad_known:
            raise BadSignatureError(f"{what}: signature does not verify over these exact bytes")
        raise UnknownKeyError(f"{what}: signed by no key the trust root knows")
    raise ThresholdError(
        f"{what} needs {threshold} distinct trusted signatures, has {len(counted)}"
    )


def _open_root(data: bytes) -> tuple[Envelope, TrustRoot]:
    envelope = decode_envelope(data, max_bytes=MAX_ROOT_BYTES)
    if envelope.payload_type != ROOT_PAYLOAD_TYPE:
        raise PayloadTypeError(f"expected a trust root, got {envelope.payload_type[:80]!r}")
    return envelope, decode_trust_root_body(envelope.payload)


def _self_signed(envelope: Envelope, root: TrustRoot, what: str) -> None:
    report = check_signatures(envelope, root.root_keyring())
    require_threshold(envelope, report, report.verified, root.root_threshold, what)


def load_trust_root(data: bytes) -> TrustRoot:
    """Load the trust root an app embeds: a threshold of its own root keys must sign it.

    The embedded root is trusted because it shipped inside the binary; its
    self-signature check catches corruption and a mis-built root early.
    Expiry is checked where a root is used (:func:`hotpatch_core.release.verify_release`).
    """
    # Signatures are checked before the body is trusted, but their keys come
    # from the body itself: parse once, then verify against what it lists.
    envelope, root = _open_root(data)
    _self_signed(envelope, root, f"trust root v{root.version}")
    return root


def rotate_trust_root(current: TrustRoot, data: bytes) -> TrustRoot:
    """Accept root version N+1 if a threshold of both N's and N+1's root keys signed it."""
    envelope = decode_envelope(data, max_bytes=MAX_ROOT_BYTES)
    if envelope.payload_type != ROOT_PAYLOAD_TYPE:
        raise PayloadTypeError(f"expected a trust root, got {envelope.payload_type[:80]!r}")
    # Verify with the *current* root's keys before reading the new body.
    old_report = check_signatures(envelope, current.root_keyring())
    try:
        require_threshold(
            envelope,
            old_report,
            old_report.verified,
            current.root_threshold,
            f"trust root rotation from v{current.version}",
        )
    except (BadSignatureError, UnknownKeyError, ThresholdError, UnsignedError) as exc:
        raise RootRotationError(f"not signed by the current root's keys: {exc}") from None
    new = decode_trust_root_body(envelope.payload)
    try:
        _self_signed(envelope, new, f"trust root v{new.version}")
    except (BadSignatureError, UnknownKeyError, ThresholdError, UnsignedError) as exc:
        raise RootRotationError(f"not signed by the new root's own keys: {exc}") from None
    if new.version != current.version + 1:
        raise RootRotationError(
            f"trust root v{new.version} does not follow v{current.version} (expected "
            f"v{current.version + 1})"
        )
    if new.epoch < current.epoch:
        raise RootRotationError(f"epoch may not go back from {current.epoch} to {new.epoch}")
    return new


def check_root_fresh(root: TrustRoot, now: datetime) -> None:
    """Raise :class:`ExpiredError` if ``root`` has expired at ``now``."""
    if root.expired(now):
        raise ExpiredError(f"trust root v{root.version} expired at {root.expires_at}")
